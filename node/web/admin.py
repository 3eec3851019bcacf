"""Handlers of the admin endpoints (members, invites, audit log) and the governance policy.
Thin: parse (done by the route table), call one service, serialise."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from node.services.invites import DEFAULT_EXPIRY_HOURS
from node.web.api import Call, Route, json_response, no_content, page_args, page_response
from node.web.auth import Auth
from node.web.keys import ADMINISTRATION, INVITES, POLICY
from node.web.member_schemas import (
    AUDIT_ENTRY,
    CREATED_INVITE,
    INVITE,
    INVITE_REQUEST,
    MEMBER,
    MEMBER_FILTER,
    POLICY_CHANGE,
    ROLE_CHANGE,
)
from node.web.member_schemas import POLICY as POLICY_SCHEMA

__all__ = ["ADMIN_ROUTES"]


async def list_members(call: Call) -> web.Response:
    after, limit = page_args(call)
    page = await call.app[ADMINISTRATION].members(
        after, limit, status=call.query.get("status"), role=call.query.get("role")
    )
    return page_response(page)


async def _transition(call: Call, action: str) -> web.Response:
    member = await call.app[ADMINISTRATION].transition(
        call.member.actor, call.ids["member_id"], action
    )
    return json_response(member)


async def approve_member(call: Call) -> web.Response:
    return await _transition(call, "approve")


async def suspend_member(call: Call) -> web.Response:
    return await _transition(call, "suspend")


async def reinstate_member(call: Call) -> web.Response:
    return await _transition(call, "reinstate")


async def set_role(call: Call) -> web.Response:
    member = await call.app[ADMINISTRATION].set_role(
        call.member.actor, call.ids["member_id"], call.body["role"]
    )
    return json_response(member)


async def list_invites(call: Call) -> web.Response:
    return page_response(await call.app[INVITES].list(*page_args(call)))


async def create_invite(call: Call) -> web.Response:
    invite = await call.app[INVITES].create(
        call.member.actor,
        call.body.get("role", "member"),
        call.body.get("uses", 1),
        call.body.get("expires_hours", DEFAULT_EXPIRY_HOURS),
    )
    return json_response(invite, status=201)


async def delete_invite(call: Call) -> web.Response:
    await call.app[INVITES].delete(call.member.actor, call.ids["invite_id"])
    return no_content()


async def list_audit(call: Call) -> web.Response:
    return page_response(await call.app[ADMINISTRATION].audit_log(*page_args(call)))


async def get_policy(call: Call) -> web.Response:
    return json_response(await call.app[POLICY].get())


async def put_policy(call: Call) -> web.Response:
    return json_response(await call.app[POLICY].put(call.member.actor, call.body))


TRANSITION_ERRORS: Final = {409: ["invalid_transition", "last_admin"]}
ADMIN_ROUTES: Final = (
    Route("GET", "/members", list_members, "List members", Auth.ADMIN, returns=MEMBER,
          query=MEMBER_FILTER, paginated=True, tag="admin"),
    Route("POST", "/members/{member_id}/approve", approve_member, "Approve a pending member",
          Auth.ADMIN, returns=MEMBER, errors=TRANSITION_ERRORS, tag="admin"),
    Route("POST", "/members/{member_id}/suspend", suspend_member,
          "Suspend a member: their sessions and tokens stop working", Auth.ADMIN, returns=MEMBER,
          errors=TRANSITION_ERRORS, tag="admin"),
    Route("POST", "/members/{member_id}/reinstate", reinstate_member,
          "Reinstate a suspended member", Auth.ADMIN, returns=MEMBER, errors=TRANSITION_ERRORS,
          tag="admin"),
    Route("PUT", "/members/{member_id}/role", set_role, "Set a member's role", Auth.ADMIN,
          returns=MEMBER, body=ROLE_CHANGE, errors=TRANSITION_ERRORS, tag="admin"),
    Route("GET", "/invites", list_invites, "List invites", Auth.ADMIN, returns=INVITE,
          paginated=True, tag="admin"),
    Route("POST", "/invites", create_invite, "Make an invite link (shown once)", Auth.ADMIN, 201,
          CREATED_INVITE, body=INVITE_REQUEST, tag="admin"),
    Route("DELETE", "/invites/{invite_id}", delete_invite, "Withdraw an invite", Auth.ADMIN, 204,
          tag="admin"),
    Route("GET", "/audit", list_audit, "The audit log, newest first", Auth.ADMIN,
          returns=AUDIT_ENTRY, paginated=True, tag="admin"),
    Route("GET", "/policy", get_policy, "The node's governance policy", Auth.MEMBER,
          returns=POLICY_SCHEMA, tag="policy"),
    Route("PUT", "/policy", put_policy, "Replace the governance policy", Auth.ADMIN,
          returns=POLICY_SCHEMA, body=POLICY_CHANGE, tag="policy"),
)  # fmt: skip
