"""Admin pages: members (approve, suspend, reinstate, role), invites (make one and show its
link once, withdraw), the governance policy, and the audit log."""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from node.errors import NodeError
from node.services.invites import DEFAULT_EXPIRY_HOURS
from node.services.members import ROLES, STATUSES
from node.services.policy import DECIDERS, VOTE_METHODS
from node.web.keys import ADMINISTRATION, INVITES, POLICY
from node.web.member_schemas import FRACTION, INVITE_REQUEST, QUORUM, VOTE_RULE
from node.web.pages.core import redirect, render, require, submitted
from node.web.pages.forms import Form
from node.web.pages.messages import Msg, notice
from node.web.pages.routes import PageRoute, cursor, path_id, query

__all__ = ["ROUTES"]

PAGE_SIZE: Final = 25
ACTIONS: Final = {"approve": "approved", "suspend": "suspended", "reinstate": "reinstated"}
INVITE_FIELDS: Final = ("role", "uses", "expires_hours")
POLICY_FIELDS: Final = (
    "approval_required", "call_issuers", "endorsement_by", "method", "fraction_num",
    "fraction_den", "quorum_num", "quorum_den", "hours",
)  # fmt: skip

POLICY_ERRORS: Final = {"vote.fraction": "fraction_num", "vote.quorum": "quorum_num"}


# --- members -------------------------------------------------------------------------------


def _filters(args: dict[str, str]) -> dict[str, str]:
    filters = {name: args[name] for name in ("status", "role") if args.get(name)}
    if (
        filters.get("status", "pending") not in STATUSES
        or filters.get("role", "member") not in ROLES
    ):
        raise NodeError(400, "invalid_form", "unknown status or role")
    return filters


async def _members_page(
    request: web.Request, args: dict[str, str], *, status: int = 200, alert: Msg | None = None
) -> web.Response:
    filters = _filters(args)
    after = cursor(args.get("after"))
    page = await request.app[ADMINISTRATION].members(after, PAGE_SIZE, **filters)
    next_link = None
    if page.after is not None:
        next_link = "/admin/members?" + urlencode(filters | {"after": str(page.after)})
    first_link = None if after is None else "/admin/members?" + urlencode(filters)
    back = urlencode(filters)
    return render(
        request, "admin_members.html", status=status, page=page, filters=filters,
        next_link=next_link, first_link=first_link, back=back, form=Form(alert=alert),
        notice=notice(args.get("notice")), roles=ROLES, statuses=STATUSES,
        here="/admin/members" + (f"?{back}" if back else ""),
    )  # fmt: skip


async def members_page(request: web.Request) -> web.Response:
    require(request, "admin")
    return await _members_page(request, query(request, ("status", "role", "after", "notice")))


def _back(raw: dict[str, str]) -> dict[str, str]:
    """The filters of the list the admin acted from, to go back to it."""
    return {k: v for k, v in parse_qsl(raw.get("back", ""))[:2] if k in ("status", "role")}


async def member_action(request: web.Request) -> web.Response:
    caller = require(request, "admin")
    action = request.match_info["action"]
    member_id = path_id(request, "member", "member")
    raw, _ = await submitted(request, ("back", "role"))
    filters = _filters(_back(raw))
    admin = request.app[ADMINISTRATION]
    try:
        if action == "role":
            role = raw.get("role", "")
            if role not in ROLES:
                raise NodeError(400, "invalid_field", "field 'role': not a role")
            await admin.set_role(caller.actor, member_id, role)
        elif action in ACTIONS:
            await admin.transition(caller.actor, member_id, action)
        else:
            raise NodeError(404, "not_found", "no such action")
    except NodeError as exc:
        form = Form()
        form.refuse(exc)
        return await _members_page(request, filters, status=exc.status, alert=form.alert)
    done = "role_changed" if action == "role" else ACTIONS[action]
    return redirect("/admin/members?" + urlencode(filters | {"notice": done}))


# --- invites -------------------------------------------------------------------------------


async def _invites_page(
    request: web.Request, after: int | None, *, form: Form | None = None,
    created: dict[str, Any] | None = None, status: int = 200, note: Msg | None = None,
) -> web.Response:  # fmt: skip
    page = await request.app[INVITES].list(after, PAGE_SIZE)
    next_link = None if page.after is None else f"/admin/invites?after={page.after}"
    first_link = None if after is None else "/admin/invites"
    form = form or Form(values={"role": "member", "uses": "1",
                                "expires_hours": str(DEFAULT_EXPIRY_HOURS)})  # fmt: skip
    return render(
        request, "admin_invites.html", status=status, page=page, next_link=next_link,
        first_link=first_link, form=form,
        created=created, roles=ROLES, notice=note,
    )  # fmt: skip


async def invites_page(request: web.Request) -> web.Response:
    require(request, "admin")
    args = query(request, ("after", "notice"))
    return await _invites_page(request, cursor(args.get("after")), note=notice(args.get("notice")))


async def create_invite(request: web.Request) -> web.Response:
    caller = require(request, "admin")
    raw, form = await submitted(request, INVITE_FIELDS)
    fields = INVITE_REQUEST.fields
    role = form.choice(raw, "role", ROLES)
    uses = form.text(raw, "uses", fields["uses"])
    hours = form.text(raw, "expires_hours", fields["expires_hours"])
    if not form.ok or role is None or uses is None or hours is None:
        return await _invites_page(request, None, form=form, status=400)
    created = await request.app[INVITES].create(caller.actor, role, uses, hours)
    return await _invites_page(request, None, created=created, status=201)


async def withdraw_invite(request: web.Request) -> web.Response:
    caller = require(request, "admin")
    invite_id = path_id(request, "invite", "invite")
    await submitted(request, ())
    await request.app[INVITES].delete(caller.actor, invite_id)
    return redirect("/admin/invites?notice=invite_withdrawn")


# --- governance policy ---------------------------------------------------------------------


def _policy_form(policy: dict[str, Any]) -> Form:
    vote = policy["vote"]
    fraction = vote["fraction"] or {"num": "", "den": ""}
    return Form(values={
        "approval_required": "yes" if policy["approval_required"] else "",
        "call_issuers": policy["call_issuers"], "endorsement_by": policy["endorsement_by"],
        "method": vote["method"], "fraction_num": str(fraction["num"]),
        "fraction_den": str(fraction["den"]), "quorum_num": str(vote["quorum"]["num"]),
        "quorum_den": str(vote["quorum"]["den"]), "hours": str(vote["hours"]),
    })  # fmt: skip


def _policy_page(
    request: web.Request, form: Form, *, status: int = 200, note: Msg | None = None
) -> web.Response:
    return render(
        request, "admin_policy.html", status=status, form=form, deciders=DECIDERS,
        methods=VOTE_METHODS, notice=note,
    )  # fmt: skip


async def policy_page(request: web.Request) -> web.Response:
    require(request, "admin")
    args = query(request, ("notice",))
    form = _policy_form(await request.app[POLICY].get())
    return _policy_page(request, form, note=notice(args.get("notice")))


def _policy(raw: dict[str, str], form: Form) -> dict[str, Any]:
    method = form.choice(raw, "method", VOTE_METHODS)
    fraction = None
    if method == "supermajority" or raw.get("fraction_num") or raw.get("fraction_den"):
        fraction = {
            "num": form.text(raw, "fraction_num", FRACTION.fields["num"]),
            "den": form.text(raw, "fraction_den", FRACTION.fields["den"]),
        }
    return {
        "approval_required": raw.get("approval_required") == "yes",
        "call_issuers": form.choice(raw, "call_issuers", DECIDERS),
        "endorsement_by": form.choice(raw, "endorsement_by", DECIDERS),
        "vote": {
            "method": method,
            "fraction": fraction,
            "quorum": {
                "num": form.text(raw, "quorum_num", QUORUM.fields["num"]),
                "den": form.text(raw, "quorum_den", QUORUM.fields["den"]),
            },
            "hours": form.text(raw, "hours", VOTE_RULE.fields["hours"]),
        },
    }


async def save_policy(request: web.Request) -> web.Response:
    caller = require(request, "admin")
    raw, form = await submitted(request, POLICY_FIELDS)
    policy = _policy(raw, form)
    if not form.ok:
        return _policy_page(request, form, status=400)
    try:
        await request.app[POLICY].put(caller.actor, policy)
    except NodeError as exc:
        form.refuse(exc, POLICY_ERRORS)
        return _policy_page(request, form, status=exc.status)
    return redirect("/admin/policy?notice=saved")


# --- audit log -----------------------------------------------------------------------------


async def audit_page(request: web.Request) -> web.Response:
    require(request, "admin")
    args = query(request, ("before",))
    page = await request.app[ADMINISTRATION].audit_log(cursor(args.get("before")), PAGE_SIZE)
    before = cursor(args.get("before"))
    next_link = None if page.after is None else f"/admin/audit?before={page.after}"
    first_link = None if before is None else "/admin/audit"
    return render(
        request, "admin_audit.html", page=page, next_link=next_link, first_link=first_link
    )


ROUTES: Final = (
    PageRoute("GET", "/admin/members", members_page, "members"),
    PageRoute("POST", "/admin/members/{member}/{action}", member_action, "member-action"),
    PageRoute("GET", "/admin/invites", invites_page, "invites"),
    PageRoute("POST", "/admin/invites", create_invite, "invite-create"),
    PageRoute("POST", "/admin/invites/{invite}/withdraw", withdraw_invite, "invite-withdraw"),
    PageRoute("GET", "/admin/policy", policy_page, "policy"),
    PageRoute("POST", "/admin/policy", save_policy, "policy-save"),
    PageRoute("GET", "/admin/audit", audit_page, "audit"),
)
