"""Handlers of the call endpoints: calls to action, this organisation's decision on others'
calls, members' pledges, and notifications. Thin: parse (done by the route table), call one
service, serialise. The rules are in node.services.calls (issuing and changing this node's
calls), call_votes (deciding), pledges and tallies.

Calls are named by this node's number for them (``/calls/{call_id}``); their protocol id is
``call`` in every answer (and a filter of the list). Refusals carry the calls service's
stable codes: 404 ``call_not_found``, ``no_pledge``; 403 ``not_allowed``,
``not_an_active_member``; 409 ``not_issuer``, ``call_closed``, ``own_call``,
``decided_by_vote``, ``already_decided``, ``not_joined``, ``pledges_closed``; 400
``invalid_field``, ``audience_unsupported``, ``no_threshold``.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from node.services import call_views, calls, pledges
from node.services.call_votes import decide
from node.web.api import Call, Route, json_response, no_content, page_args, page_response
from node.web.auth import Auth
from node.web.call_schemas import (
    CALL,
    CALL_CHANGES,
    CALL_DRAFT,
    CALL_FILTER,
    CALL_SUMMARY,
    CANCELLATION,
    CONCLUSION,
    DECISION,
    MY_PLEDGE,
    NEWS,
    NOTIFICATION,
    PLEDGE,
)
from node.web.keys import CALL_SCHEDULER, CLOCK, SESSIONS, SIGNER, TALLY_RULES

__all__ = ["CALL_ROUTES"]

CALL_MAX_BODY: Final = 512 * 1024  # six 16 KiB texts, \u-escaped, fit


def _number(call: Call) -> int:
    return call.ids["call_id"]


def _now(call: Call) -> int:
    return call.app[CLOCK].now()


async def _detail(call: Call, number: int, status: int = 200) -> web.Response:
    view = await call_views.call_detail(
        call.app[SESSIONS], number, call.member.member_id, admin=call.member.role == "admin"
    )
    return json_response(view, status)


def _draft(body: dict[str, Any]) -> calls.CallDraft:
    where = body.get("location") or {}
    threshold = body.get("threshold")
    return calls.CallDraft(
        kind=body["kind"], title=body["title"], text=body["text"],
        audience=body.get("audience", "allies"), starts=body.get("starts"),
        ends=body.get("ends"), region=where.get("region"), place=where.get("place"),
        meeting_point=body.get("meeting_point"), sectors=tuple(body.get("sectors", ())),
        regions=tuple(body.get("regions", ())),
        threshold=None if threshold is None else (
            threshold["pledges"], threshold["orgs"], threshold["deadline"]),
    )  # fmt: skip


async def list_calls(call: Call) -> web.Response:
    before, limit = page_args(call)
    wanted = call.query.get("call")
    page = await call_views.call_page(
        call.app[SESSIONS], state=call.query.get("state"),
        call=None if wanted is None else bytes.fromhex(wanted), own=call.query.get("own"),
        before=before, limit=limit,
    )  # fmt: skip
    return page_response(page)


async def issue_call(call: Call) -> web.Response:
    app = call.app
    number = await calls.issue_call(
        app[SESSIONS], app[SIGNER], _draft(call.body), by=call.member.member_id, now=_now(call)
    )
    return await _detail(call, number, 201)


async def get_call(call: Call) -> web.Response:
    return await _detail(call, _number(call))


async def amend_call(call: Call) -> web.Response:
    app = call.app
    await calls.amend_call(
        app[SESSIONS], app[SIGNER], _number(call), call.body, by=call.member.member_id,
        now=_now(call),
    )  # fmt: skip
    return await _detail(call, _number(call))


async def cancel_call(call: Call) -> web.Response:
    app = call.app
    await calls.cancel_call(
        app[SESSIONS], app[SIGNER], _number(call), call.body.get("reason"),
        by=call.member.member_id, now=_now(call),
    )  # fmt: skip
    return await _detail(call, _number(call))


async def post_update(call: Call) -> web.Response:
    app = call.app
    await calls.update_call(
        app[SESSIONS], app[SIGNER], _number(call), call.body["text"], by=call.member.member_id,
        now=_now(call),
    )  # fmt: skip
    return await _detail(call, _number(call), 201)


async def conclude_call(call: Call) -> web.Response:
    app = call.app
    await calls.conclude_call(
        app[SESSIONS], app[SIGNER], _number(call), call.body["outcome"], call.body.get("text"),
        by=call.member.member_id, now=_now(call),
    )  # fmt: skip
    return await _detail(call, _number(call))


async def decide_call(call: Call) -> web.Response:
    app = call.app
    await decide(
        app[SESSIONS], app[SIGNER], _number(call), call.body["join"], call.body.get("note"),
        by=call.member.member_id, now=_now(call),
    )  # fmt: skip
    app[CALL_SCHEDULER].wake()
    return await _detail(call, _number(call))


async def get_pledge(call: Call) -> web.Response:
    mine = await pledges.my_pledge(call.app[SESSIONS], _number(call), call.member.member_id)
    return json_response(mine)


async def put_pledge(call: Call) -> web.Response:
    app = call.app
    mine = await pledges.pledge(
        app[SESSIONS], app[TALLY_RULES], _number(call), call.member.member_id,
        call.body["kind"], now=_now(call),
    )  # fmt: skip
    app[CALL_SCHEDULER].wake()
    return json_response(mine)


async def withdraw_pledge(call: Call) -> web.Response:
    app = call.app
    await pledges.withdraw(
        app[SESSIONS], app[TALLY_RULES], _number(call), call.member.member_id, now=_now(call)
    )
    app[CALL_SCHEDULER].wake()
    return no_content()


async def list_notifications(call: Call) -> web.Response:
    before, limit = page_args(call)
    page = await pledges.notification_page(call.app[SESSIONS], call.member.member_id, before, limit)
    return page_response(page)


async def read_notification(call: Call) -> web.Response:
    await pledges.read_notifications(
        call.app[SESSIONS], call.member.member_id, [call.ids["notification_id"]], now=_now(call)
    )
    return no_content()


async def read_all_notifications(call: Call) -> web.Response:
    await pledges.read_all(call.app[SESSIONS], call.member.member_id, now=_now(call))
    return no_content()


MEMBER, ORGANISER = Auth.MEMBER, Auth.ORGANISER
ONE = "/calls/{call_id}"
NOT_FOUND: Final = ["call_not_found"]
ISSUERS: Final = ["not_allowed", "not_an_active_member"]
CHANGING: Final = {404: NOT_FOUND, 400: ["invalid_field"], 403: ISSUERS,
                   409: ["not_issuer", "call_closed"]}  # fmt: skip
PLEDGING: Final = {404: NOT_FOUND, 403: ["not_an_active_member"],
                   409: ["not_joined", "call_closed", "pledges_closed"]}  # fmt: skip
CALL_ROUTES: Final = (
    Route("GET", "/calls", list_calls, "Calls to action this node holds, newest first", MEMBER,
          returns=CALL_SUMMARY, query=CALL_FILTER, paginated=True, tag="calls"),
    Route("POST", "/calls", issue_call, "Issue a call to action", ORGANISER, 201, CALL,
          body=CALL_DRAFT, max_body=CALL_MAX_BODY, tag="calls",
          errors={400: ["invalid_field", "audience_unsupported"], 403: ISSUERS},
          description="Who may issue is the governance policy's call_issuers (admins, or "
          "organisers and admins). The call is signed and sent to its audience; the "
          "meeting point stays on this node."),
    Route("GET", ONE, get_call, "A call, each organisation's verdict, tallies, progress",
          MEMBER, returns=CALL, errors={404: NOT_FOUND}, tag="calls"),
    Route("PATCH", ONE, amend_call, "Amend this node's call", ORGANISER, returns=CALL,
          body=CALL_CHANGES, max_body=CALL_MAX_BODY, errors=CHANGING, tag="calls",
          description="Titles, texts, times, location, sectors, regions (signed as "
          "call.amend); meeting_point alone changes only this node's copy."),
    Route("POST", ONE + "/cancel", cancel_call, "Cancel this node's call", ORGANISER,
          returns=CALL, body=CANCELLATION, max_body=CALL_MAX_BODY, errors=CHANGING,
          tag="calls"),
    Route("POST", ONE + "/updates", post_update, "Post news about this node's call",
          ORGANISER, 201, CALL, body=NEWS, max_body=CALL_MAX_BODY,
          errors=CHANGING, tag="calls"),
    Route("POST", ONE + "/conclude", conclude_call, "Conclude this node's call", ORGANISER,
          returns=CALL, body=CONCLUSION, max_body=CALL_MAX_BODY, errors=CHANGING,
          tag="calls"),
    Route("POST", ONE + "/decision", decide_call,
          "Decide whether the organisation joins another node's call", ORGANISER,
          returns=CALL, body=DECISION, max_body=CALL_MAX_BODY, tag="calls",
          errors={404: NOT_FOUND, 400: ["invalid_field"], 403: ISSUERS,
                  409: ["own_call", "call_closed", "decided_by_vote", "already_decided"]},
          description="Where the governance policy's endorsement_by is admins or "
          "organisers; under a member vote, the \"do we join?\" proposal decides."),
    Route("GET", ONE + "/pledge", get_pledge, "Your pledge to a call", MEMBER,
          returns=MY_PLEDGE, errors={404: NOT_FOUND}, tag="calls"),
    Route("PUT", ONE + "/pledge", put_pledge, "Pledge, or change your pledge", MEMBER,
          returns=MY_PLEDGE, body=PLEDGE, tag="calls",
          errors={**PLEDGING, 400: ["invalid_field", "no_threshold"]},
          description="To a call your organisation issued or endorsed, until the "
          "threshold's deadline (or the start). Only bucketed counts leave the node."),
    Route("DELETE", ONE + "/pledge", withdraw_pledge, "Withdraw your pledge", MEMBER, 204,
          errors={**PLEDGING, 404: ["call_not_found", "no_pledge"]}, tag="calls"),
    Route("GET", "/notifications", list_notifications, "Your notifications, newest first",
          MEMBER, returns=NOTIFICATION, paginated=True, tag="calls"),
    Route("POST", "/notifications/{notification_id}/read", read_notification,
          "Mark a notification read", MEMBER, 204, tag="calls"),
    Route("POST", "/notifications/read", read_all_notifications,
          "Mark all your notifications read", MEMBER, 204, tag="calls"),
)  # fmt: skip
