"""Admin pages of coalitions (SPEC §15): the coalitions this node knows with its standing in
each, founding one, the invitations to this node (accept from the list), and one coalition's
page: who is in it, inviting one of this node's allied peers, accepting or declining an
invite, leaving.

Thin: every action is one call of the same service as the JSON API and ``tadamun
coalition`` (node.services.coalitions), which signs the ``coalition.*`` envelope and writes
the audit log; its refusals are shown next to the form, translated, and change nothing.
A coalition is named by this node's number for it, as in the API. Names and purposes are
typed in Arabic, Sorani and English fields, at least one name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from aiohttp import web

from node.errors import NodeError
from node.services.coalitions import Code
from node.web.keys import COALITIONS, PEER_ADMIN
from node.web.pages.call_forms import LANGS, NEEDS_ONE
from node.web.pages.calls import in_language
from node.web.pages.core import redirect, render, require, state_of, submitted
from node.web.pages.forms import LARGE_FORM, Form
from node.web.pages.i18n import N_
from node.web.pages.messages import Msg, message_for
from node.web.pages.routes import PageRoute, path_id, query
from node.web.schema import Field, string
from protocol import fingerprint
from protocol.coalitions import MAX_MEMBERS
from protocol.fields import MAX_TEXT, MAX_TITLE

__all__ = ["ROUTES", "refusal"]

NAME: Final = string(required=False, max_length=MAX_TITLE)  # bytes checked too
PURPOSE: Final = string(required=False, max_length=MAX_TEXT, multiline=True)
FOUND_FIELDS: Final = (*(f"name_{c}" for c in LANGS), *(f"purpose_{c}" for c in LANGS))
TOO_LONG: Final = N_(
    "This is too long: at most %(max)s bytes (a letter of Arabic script takes two)."
)
# What a refusal of these pages means to an admin (other codes: the pages' usual messages).
COALITION_ERRORS: Final[Mapping[str, str]] = {
    Code.NOT_MEMBER: N_("Only a member of the coalition can invite, and this node is not one."),
    Code.ALREADY_MEMBER: N_("That node is a member of the coalition already."),
    Code.ALREADY_INVITED: N_("That node has an open invite to the coalition already."),
    Code.NOT_INVITED: N_(
        "No open invite names this node. Ask a member of the coalition for a new one."
    ),
    Code.NOT_IN_COALITION: N_("This node is not in the coalition."),
    Code.COALITION_FULL: N_("The coalition is full: it has at most %(max)s members."),
    Code.BLOCKED_NODE: N_("That node is blocked here. Unblock it on its peer page first."),
    Code.UNKNOWN_NODE: N_("That node is not one of this node's peers."),
    Code.AMBIGUOUS: N_("Several nodes match. Choose one from the list."),
    Code.OWN_NODE: N_("This node is in the coalition already."),
}
DONE_LEAVING: Final = {"member": "left", "invited": "declined"}
JOINED_ALREADY: Final = N_("This node is a member of the coalition already.")
NOTICES: Final[Mapping[str, str]] = {
    "founded": N_("The coalition is founded, with this node its first member. Invite allied "
                  "nodes to it below."),
    "invited": N_("The invite is sent. The other node's admins accept or decline it on their "
                  "pages."),
    "joined": N_("This node is a member of the coalition now. Calls can be sent to it."),
    "left": N_("This node has left the coalition. Only a new invite brings it back."),
    "declined": N_("The invite is declined."),
}  # fmt: skip


def refusal(exc: NodeError) -> Msg:
    """The message an admin sees for a refusal of a coalition action."""
    if exc.code == Code.COALITION_FULL:
        return Msg(COALITION_ERRORS[exc.code], {"max": MAX_MEMBERS})
    if exc.code in COALITION_ERRORS:
        return Msg(COALITION_ERRORS[exc.code])
    return message_for(exc)


def _notice(args: Mapping[str, str]) -> Msg | None:
    code = args.get("notice")
    return Msg(NOTICES[code]) if code in NOTICES and code is not None else None


def _shown(request: web.Request) -> Callable[[Mapping[str, str] | None], tuple[str, str]]:
    """For templates: a coalition's name or purpose in the reader's language, as (text,
    language), or in another language it has."""
    code = state_of(request).lang.code
    return lambda texts: in_language(texts or {}, code)


def _with_founder(coalition: dict[str, Any]) -> dict[str, Any]:
    """A coalition with who founded it (its member entry: name, fingerprint) and how many
    members it has, as the pages show them."""
    founder = next((m for m in coalition["members"] if m["node"] == coalition["founder"]), None)
    if founder is None:  # not named here (it left before the invite's snapshot)
        node = coalition["founder"]
        founder = {"node": node, "fingerprint": fingerprint(bytes.fromhex(node)), "name": "",
                   "self": False}  # fmt: skip
    count = sum(1 for m in coalition["members"] if m["state"] == "member")
    return coalition | {"founder_member": founder, "member_count": count}


def _texts(
    raw: Mapping[str, str], form: Form, prefix: str, spec: Field, limit: int
) -> dict[str, str]:
    """The ``prefix_<lang>`` fields that are filled in, by language."""
    found = {}
    for code in LANGS:
        name = f"{prefix}_{code}"
        value = form.text(raw, name, spec)
        if value is None:
            continue
        value = value.replace("\r\n", "\n")
        if len(value.encode()) > limit:
            form.fail(name, Msg(TOO_LONG, {"max": limit}))
            continue
        found[code] = value
    return found


# --- the list, and founding ------------------------------------------------------------------


async def _list_page(
    request: web.Request, *, status: int = 200, form: Form | None = None,
    note: Msg | None = None,
) -> web.Response:  # fmt: skip
    coalitions = [_with_founder(c) for c in await request.app[COALITIONS].list()]
    invitations = [c for c in coalitions if c["standing"] == "invited"]
    return render(
        request, "admin_coalitions.html", status=status, coalitions=coalitions,
        invitations=invitations, form=form or Form(), notice=note, shown=_shown(request),
    )  # fmt: skip


async def coalitions_page(request: web.Request) -> web.Response:
    require(request, "admin")
    return await _list_page(request, note=_notice(query(request, ("notice",))))


async def found(request: web.Request) -> web.Response:
    caller = require(request, "admin")
    raw, form = await submitted(request, FOUND_FIELDS, limit=LARGE_FORM)
    name = _texts(raw, form, "name", NAME, MAX_TITLE)
    purpose = _texts(raw, form, "purpose", PURPOSE, MAX_TEXT)
    if not name and not any(f"name_{code}" in form.errors for code in LANGS):
        form.fail("name", Msg(NEEDS_ONE))
    if not form.ok:
        return await _list_page(request, status=400, form=form)
    try:
        made = await request.app[COALITIONS].found(caller.actor, name, purpose or None)
    except NodeError as exc:
        form.alert = refusal(exc)
        return await _list_page(request, status=exc.status, form=form)
    return redirect(f"/admin/coalitions/{made['id']}?notice=founded")


# --- one coalition -------------------------------------------------------------------------


async def _invitable(request: web.Request, coalition: Mapping[str, Any]) -> list[dict[str, Any]]:
    """This node's allied peers that the coalition does not name as members or invitees."""
    taken = {m["node"] for m in coalition["members"] if m["state"] in ("member", "invited")}
    allied = [p for p in await request.app[PEER_ADMIN].list() if p["state"] == "allied"]
    return [peer for peer in allied if peer["node"] not in taken]


async def _coalition_page(
    request: web.Request, number: int, *, status: int = 200, form: Form | None = None,
    failed: str = "", note: Msg | None = None,
) -> web.Response:  # fmt: skip
    coalition = _with_founder(await request.app[COALITIONS].get(number))
    standing = coalition["standing"]
    actions = {"member": ("invite", "leave"), "invited": ("join", "leave")}.get(standing, ())
    peers = await _invitable(request, coalition) if "invite" in actions else []
    return render(
        request, "admin_coalitions_one.html", status=status, c=coalition, actions=actions,
        peers=peers, form=form or Form(), failed=failed, notice=note, shown=_shown(request),
    )  # fmt: skip


async def coalition_page(request: web.Request) -> web.Response:
    require(request, "admin")
    args = query(request, ("notice",))
    number = path_id(request, "coalition", "coalition")
    return await _coalition_page(request, number, note=_notice(args))


async def invite(request: web.Request) -> web.Response:
    caller = require(request, "admin")
    number = path_id(request, "coalition", "coalition")
    raw, form = await submitted(request, ("node",))
    allied = [p["node"] for p in await request.app[PEER_ADMIN].list() if p["state"] == "allied"]
    node = form.choice(raw, "node", allied)
    if node is None:
        return await _coalition_page(request, number, status=400, form=form, failed="invite")
    try:
        await request.app[COALITIONS].invite(caller.actor, number, node)
    except NodeError as exc:
        form.alert = refusal(exc)
        form.errors["node"] = form.alert
        return await _coalition_page(request, number, status=exc.status, form=form,
                                     failed="invite")  # fmt: skip
    return redirect(f"/admin/coalitions/{number}?notice=invited")


async def join(request: web.Request) -> web.Response:
    caller = require(request, "admin")
    number = path_id(request, "coalition", "coalition")
    _, form = await submitted(request, ())
    try:
        await request.app[COALITIONS].join(caller.actor, number)
    except NodeError as exc:
        form.alert = refusal(exc)
        if exc.code == Code.ALREADY_MEMBER:
            form.alert = Msg(JOINED_ALREADY)
        return await _coalition_page(request, number, status=exc.status, form=form,
                                     failed="join")  # fmt: skip
    return redirect(f"/admin/coalitions/{number}?notice=joined")


async def leave(request: web.Request) -> web.Response:
    caller = require(request, "admin")
    number = path_id(request, "coalition", "coalition")
    raw, form = await submitted(request, ("confirm",))
    if raw.get("confirm") != "yes":
        form.fail("confirm", Msg(N_("Tick the box to confirm.")))
        return await _coalition_page(request, number, status=400, form=form, failed="leave")
    service = request.app[COALITIONS]
    was = (await service.get(number))["standing"]
    try:
        await service.leave(caller.actor, number)
    except NodeError as exc:
        form.alert = refusal(exc)
        return await _coalition_page(request, number, status=exc.status, form=form,
                                     failed="leave")  # fmt: skip
    return redirect(f"/admin/coalitions/{number}?notice={DONE_LEAVING.get(was, 'left')}")


ROUTES: Final = (
    PageRoute("GET", "/admin/coalitions", coalitions_page, "coalitions"),
    PageRoute("POST", "/admin/coalitions", found, "coalition-found"),
    PageRoute("GET", "/admin/coalitions/{coalition}", coalition_page, "coalition"),
    PageRoute("POST", "/admin/coalitions/{coalition}/invite", invite, "coalition-invite"),
    PageRoute("POST", "/admin/coalitions/{coalition}/join", join, "coalition-join"),
    PageRoute("POST", "/admin/coalitions/{coalition}/leave", leave, "coalition-leave"),
)
