"""Admin pages of federation peers: every peer with its fingerprint, state and delivery
health; peering invites (make one, shown once as a string and a QR code, and revoke); joining
another node's invite; and block, unblock and remove, each behind a confirmation box.

Joining takes two steps, so that the admin compares fingerprints *before* anything is sent:
the pasted invite is read here (it names the inviter's node id, hence its fingerprint) and
shown with the inviter's address; only when the admin confirms that the inviting admin read
them the same digits does the node answer it, through the same service as ``tadamun peer
join`` (it introduces itself and the two nodes are allied). The peer's page then shows the
name the other node gave, and its fingerprint once more.

The QR code is an inline ``<svg>`` element: the Content-Security-Policy allows no ``data:``
image, and a separate route would have to serve the invite's secret again, which the
service shows only once.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from typing import Any, Final

import segno
from aiohttp import web
from markupsafe import Markup, escape

from node.errors import NodeError, not_found
from node.federation.invite_codes import InviteCode, InviteCodeError, decode_invite
from node.federation.peer_admin import TRANSITIONS
from node.federation.peering import DEFAULT_INVITE_HOURS, MAX_INVITE_HOURS
from node.web.keys import PEER_ADMIN, PEERING
from node.web.pages.core import redirect, render, require, state_of, submitted
from node.web.pages.forms import Form
from node.web.pages.i18n import N_
from node.web.pages.messages import Msg, message_for
from node.web.pages.routes import PageRoute, query
from node.web.peers import JOIN, PEER_INVITE_REQUEST
from protocol import fingerprint

__all__ = ["ROUTES", "qr_svg"]

NODE_HEX: Final = re.compile(r"[0-9a-f]{64}")
INVITE_HEX: Final = re.compile(r"[0-9a-f]{32}")
ACTIONS: Final = tuple(TRANSITIONS)  # block, unblock, remove
DONE: Final = {"block": "blocked", "unblock": "unblocked", "remove": "removed"}
KEYLOG_MESSAGE: Final = N_(
    "The other node's key log did not verify, so it was not allied. Tell its admin, and do "
    "not ally until it is explained."
)
UNUSABLE_ANSWER: Final = N_("The other node gave an answer this node cannot use. Try again later.")
# What a refusal of these pages means to an admin (other codes: the pages' usual messages).
PEER_ERRORS: Final[Mapping[str, str]] = {
    "invalid_transition": N_("This peer's state does not allow that. Reload the page."),
    "invalid_invite": N_(
        "This is not a peering invite this node can use. Ask the other node's admin for a new one."
    ),
    "url_refused": N_("This node may not connect to the address in the invite."),
    "address_refused": N_("This node may not connect to the address in the invite."),
    "peer_unreachable": N_(
        "The other node could not be reached. Check that its server is running, then try again."
    ),
    "peer_timeout": N_("The other node did not answer in time. Try again later."),
    "peer_bad_response": UNUSABLE_ANSWER,
    "redirect_refused": UNUSABLE_ANSWER,
    "response_too_large": UNUSABLE_ANSWER,
    "peer_wrong_node": N_(
        "The address in the invite serves another node: someone may be in between. Do not "
        "ally; ask for a new invite by another channel."
    ),
    "peering_refused": N_(
        "The other node refused: the invite may be used, expired or revoked. Ask its admin "
        "for a new one."
    ),
}
NOTICES: Final[Mapping[str, str]] = {
    "joined": N_(
        "The two nodes are allied. If this fingerprint is not the one the inviting admin read "
        "to you, remove this peer now: someone is in between."
    ),
    "blocked": N_("The peer is blocked: nothing is accepted from it or sent to it."),
    "unblocked": N_("The peer is unblocked and allied again."),
    "removed": N_("The peer is removed. Only a new invite brings it back."),
    "invite_revoked": N_("The peering invite is revoked."),
}


def refusal(exc: NodeError) -> Msg:
    """The message an admin sees for a refusal of a peer action or of joining."""
    if exc.code.startswith("keylog_"):
        return Msg(KEYLOG_MESSAGE)
    if exc.code in PEER_ERRORS:
        return Msg(PEER_ERRORS[exc.code])
    return message_for(exc)


def _notice(args: Mapping[str, str]) -> Msg | None:
    code = args.get("notice")
    return Msg(NOTICES[code]) if code in NOTICES and code is not None else None


def qr_svg(data: str, label: str) -> Markup:
    """``data`` as a QR code: an ``<svg>`` element to put in the page as it is (paths only:
    no script, no style attribute), named ``label`` for screen readers."""
    out = io.BytesIO()
    segno.make(data, error="m").save(
        out, kind="svg", xmldecl=False, svgns=True, scale=4, border=4, dark="#000",
        light="#fff", svgclass="qr", lineclass=None, nl=False,
    )  # fmt: skip
    svg = out.getvalue().decode("ascii")
    named = f'<svg role="img" aria-label="{escape(label)}" '
    return Markup(svg.replace("<svg ", named, 1))  # noqa: S704 - segno's output, label escaped


# --- the list, and peering invites ---------------------------------------------------------


async def _peers_page(
    request: web.Request, *, status: int = 200, invite_form: Form | None = None,
    join_form: Form | None = None, created: dict[str, Any] | None = None,
    note: Msg | None = None,
) -> web.Response:  # fmt: skip
    peering = request.app[PEERING]
    invites = [
        invite | {"used_by_fingerprint": _fingerprint(invite["used_by"])}
        for invite in await peering.invites()
    ]
    qr = None
    if created is not None:
        qr = qr_svg(created["invite"], state_of(request).lang.gettext("The invite as a QR code"))
    return render(
        request, "admin_peers.html", status=status, peers=await request.app[PEER_ADMIN].list(),
        invites=invites, own_fingerprint=fingerprint(peering.node_id), created=created, qr=qr,
        invite_form=invite_form or Form(values={"expires_hours": str(DEFAULT_INVITE_HOURS)}),
        join_form=join_form or Form(), notice=note, max_hours=MAX_INVITE_HOURS,
    )  # fmt: skip


def _fingerprint(node_hex: str | None) -> str | None:
    return None if node_hex is None else fingerprint(bytes.fromhex(node_hex))


async def peers_page(request: web.Request) -> web.Response:
    require(request, "admin")
    return await _peers_page(request, note=_notice(query(request, ("notice",))))


async def create_invite(request: web.Request) -> web.Response:
    caller = require(request, "admin")
    raw, form = await submitted(request, ("expires_hours",))
    hours = form.text(raw, "expires_hours", PEER_INVITE_REQUEST.fields["expires_hours"])
    if not form.ok:
        return await _peers_page(request, status=400, invite_form=form)
    made = await request.app[PEERING].create_invite(caller.actor, hours or DEFAULT_INVITE_HOURS)
    return await _peers_page(request, status=201, created=made)


async def revoke_invite(request: web.Request) -> web.Response:
    caller = require(request, "admin")
    invite = request.match_info["invite"]
    if not INVITE_HEX.fullmatch(invite):
        raise not_found("peer invite")
    await submitted(request, ())
    await request.app[PEERING].revoke_invite(caller.actor, bytes.fromhex(invite))
    return redirect("/admin/peers?notice=invite_revoked")


# --- joining another node's invite ---------------------------------------------------------


def _read_invite(request: web.Request, raw: Mapping[str, str], form: Form) -> InviteCode | None:
    """The invite pasted in the form; None (and the reason on the form) if it is not one."""
    text = form.text(raw, "invite", JOIN.fields["invite"])
    if text is None:
        return None
    try:
        code = decode_invite(text)
    except InviteCodeError:
        form.fail("invite", Msg(PEER_ERRORS["invalid_invite"]))
        return None
    if code.node == request.app[PEERING].node_id:
        form.fail("invite", Msg(N_("This is this node's own invite: give it to the other node.")))
        return None
    return code


def _join_page(
    request: web.Request, code: InviteCode, form: Form, *, status: int = 200
) -> web.Response:
    return render(
        request, "admin_peers_join.html", status=status, form=form, endpoint=code.endpoint,
        their_fingerprint=fingerprint(code.node),
    )  # fmt: skip


async def check_invite(request: web.Request) -> web.Response:
    """Step one: read the invite and show whose it is, to compare before joining."""
    require(request, "admin")
    raw, form = await submitted(request, ("invite",))
    code = _read_invite(request, raw, form)
    if code is None:
        return await _peers_page(request, status=400, join_form=form)
    return _join_page(request, code, form)


async def join(request: web.Request) -> web.Response:
    """Step two: the admin compared the fingerprints; answer the invite and ally."""
    caller = require(request, "admin")
    raw, form = await submitted(request, ("invite", "compared"))
    code = _read_invite(request, raw, form)
    if code is None:
        return await _peers_page(request, status=400, join_form=form)
    if raw.get("compared") != "yes":
        form.fail("compared", Msg(N_("Tick the box once you have compared the fingerprints.")))
        return _join_page(request, code, form, status=400)
    try:
        peer = await request.app[PEERING].join(caller.actor, raw["invite"])
    except NodeError as exc:
        form.alert = refusal(exc)
        return _join_page(request, code, form, status=exc.status)
    return redirect(f"/admin/peers/{peer['node']}?notice=joined")


# --- one peer ------------------------------------------------------------------------------


async def _peer(request: web.Request) -> dict[str, Any]:
    node = request.match_info["node"]
    if NODE_HEX.fullmatch(node):
        for peer in await request.app[PEER_ADMIN].list():
            if peer["node"] == node:
                return peer
    raise not_found("peer")


def _peer_page(
    request: web.Request, peer: dict[str, Any], *, status: int = 200, form: Form | None = None,
    failed: str = "", note: Msg | None = None,
) -> web.Response:  # fmt: skip
    actions = [action for action in ACTIONS if peer["state"] in TRANSITIONS[action][0]]
    return render(
        request, "admin_peers_peer.html", status=status, peer=peer, actions=actions,
        form=form or Form(), failed=failed, notice=note,
    )  # fmt: skip


async def peer_page(request: web.Request) -> web.Response:
    require(request, "admin")
    args = query(request, ("notice",))
    return _peer_page(request, await _peer(request), note=_notice(args))


async def peer_action(request: web.Request) -> web.Response:
    caller = require(request, "admin")
    action = request.match_info["action"]
    if action not in ACTIONS:
        raise not_found("action")
    peer = await _peer(request)
    raw, form = await submitted(request, ("confirm",))
    if raw.get("confirm") != "yes":
        form.fail("confirm", Msg(N_("Tick the box to confirm.")))
        return _peer_page(request, peer, status=400, form=form, failed=action)
    try:
        await request.app[PEER_ADMIN].change(caller.actor, peer["node"], action)
    except NodeError as exc:
        form.alert = refusal(exc)
        return _peer_page(request, await _peer(request), status=exc.status, form=form,
                          failed=action)  # fmt: skip
    return redirect(f"/admin/peers/{peer['node']}?notice={DONE[action]}")


ROUTES: Final = (
    PageRoute("GET", "/admin/peers", peers_page, "peers"),
    PageRoute("POST", "/admin/peers/invites", create_invite, "peer-invite-create"),
    PageRoute("POST", "/admin/peers/invites/{invite}/revoke", revoke_invite, "peer-invite-revoke"),
    PageRoute("POST", "/admin/peers/check", check_invite, "peer-check"),
    PageRoute("POST", "/admin/peers/join", join, "peer-join"),
    PageRoute("GET", "/admin/peers/{node}", peer_page, "peer"),
    PageRoute("POST", "/admin/peers/{node}/{action}", peer_action, "peer-action"),
)
