"""Handlers of the internal-decision endpoints: proposals, votes, the voter roll, the signed
result and its recomputation. Thin: parse (done by the route table), call one service,
serialise. The rules are in node.services.decisions; what the API adds is in
node.services.decision_views.

Proposals are named by their public id in hex (``/proposals/{proposal}``). Refusals carry
the decisions service's stable codes: 404 ``proposal_not_found``; 403 ``not_allowed``,
``not_an_active_member``, ``ballot_secret``; 409 ``voting_not_open``, ``voting_closed``,
``proposal_cancelled``, ``not_closed``; 400 ``invalid_choice`` and the draft's
``invalid_*`` codes.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from node.services import decision_views as views
from node.web.api import Call, Route, json_response, page_args, page_response
from node.web.auth import Auth
from node.web.decision_schemas import (
    BALLOT_CHOICE,
    DRAFT,
    MY_VOTE,
    PROPOSAL,
    PROPOSAL_FILTER,
    RESULT_CHECK,
    SIGNED_RESULT,
    VOTE,
    VOTER,
)
from node.web.keys import BALLOT_KEYS, CLOCK, SESSIONS

__all__ = ["DECISION_ROUTES"]

DRAFT_MAX_BODY: Final = 256 * 1024  # 16 KiB of text is up to 6x that as \u-escaped JSON


def _proposal(call: Call) -> bytes:
    return call.public_ids["proposal"]


def _now(call: Call) -> int:
    return call.app[CLOCK].now()


async def create_proposal(call: Call) -> web.Response:
    made = await views.create(
        call.app[SESSIONS], call.body, by=call.member.member_id, now=_now(call)
    )
    return json_response(made, status=201)


async def list_proposals(call: Call) -> web.Response:
    after, limit = page_args(call)
    state = call.query.get("state")
    return page_response(
        await views.proposal_page(call.app[SESSIONS], state, after, limit, _now(call))
    )


async def get_proposal(call: Call) -> web.Response:
    return json_response(await views.proposal(call.app[SESSIONS], _proposal(call), _now(call)))


async def cancel_proposal(call: Call) -> web.Response:
    cancelled = await views.cancel(
        call.app[SESSIONS], _proposal(call), by=call.member.member_id, now=_now(call)
    )
    return json_response(cancelled)


async def cast_vote(call: Call) -> web.Response:
    app = call.app
    cast = await views.vote(
        app[SESSIONS], app[BALLOT_KEYS], _proposal(call), call.member.member_id, call.body,
        now=_now(call),
    )  # fmt: skip
    return json_response(cast)


async def get_my_vote(call: Call) -> web.Response:
    app = call.app
    mine = await views.my_vote(
        app[SESSIONS], app[BALLOT_KEYS], _proposal(call), call.member.member_id
    )
    return json_response(mine)


async def list_voters(call: Call) -> web.Response:
    after, limit = page_args(call)
    return page_response(await views.voter_page(call.app[SESSIONS], _proposal(call), after, limit))


async def list_open_votes(call: Call) -> web.Response:
    after, limit = page_args(call)
    return page_response(
        await views.open_vote_page(call.app[SESSIONS], _proposal(call), after, limit)
    )


async def get_result(call: Call) -> web.Response:
    return json_response(await views.signed_result(call.app[SESSIONS], _proposal(call)))


async def check_result(call: Call) -> web.Response:
    return json_response(
        await views.recompute_check(call.app[SESSIONS], _proposal(call), _now(call))
    )


MEMBER, ORGANISER = Auth.MEMBER, Auth.ORGANISER
ONE = "/proposals/{proposal}"
P = ("proposal",)
NOT_FOUND: Final = {404: ["proposal_not_found"]}
NOT_LIVE: Final = ["voting_not_open", "voting_closed", "proposal_cancelled"]
DRAFT_ERRORS: Final = {
    400: ["invalid_title", "invalid_body", "invalid_options", "invalid_method",
          "invalid_fraction", "invalid_quorum", "invalid_ballot", "invalid_window"],
    403: ["not_an_active_member", "not_allowed"],
}  # fmt: skip
DECISION_ROUTES: Final = (
    Route("POST", "/proposals", create_proposal, "Put a question to the members", ORGANISER,
          201, PROPOSAL, body=DRAFT, errors=DRAFT_ERRORS, max_body=DRAFT_MAX_BODY,
          tag="decisions",
          description="Voting opens at opens_at (default now) and ends at closes_at; the "
          "node then counts the ballots and signs the result."),
    Route("GET", "/proposals", list_proposals, "Proposals, newest first", MEMBER,
          returns=PROPOSAL, query=PROPOSAL_FILTER, paginated=True, tag="decisions"),
    Route("GET", ONE, get_proposal, "A proposal: options, rule, window, state, result", MEMBER,
          returns=PROPOSAL, errors=NOT_FOUND, tag="decisions", public_ids=P),
    Route("POST", ONE + "/cancel", cancel_proposal,
          "Cancel a proposal before voting ends; its ballots are deleted", MEMBER,
          returns=PROPOSAL, public_ids=P, tag="decisions",
          errors={**NOT_FOUND, 403: ["not_allowed", "not_an_active_member"],
                  409: ["voting_closed", "proposal_cancelled"]},
          description="By its creator or an admin."),
    Route("PUT", ONE + "/vote", cast_vote, "Vote, or change your vote", MEMBER,
          returns=MY_VOTE, body=VOTE, public_ids=P, tag="decisions",
          errors={**NOT_FOUND, 400: ["invalid_choice"], 403: ["not_an_active_member"],
                  409: NOT_LIVE},
          description="One ballot per member: voting again replaces your ballot, until "
          "voting closes."),
    Route("GET", ONE + "/vote", get_my_vote, "Your own ballot", MEMBER, returns=MY_VOTE,
          errors=NOT_FOUND, public_ids=P, tag="decisions",
          description="For a secret ballot your choice is shown until close only: closing "
          "erases what linked you to it."),
    Route("GET", ONE + "/voters", list_voters, "Who voted (never how)", MEMBER,
          returns=VOTER, paginated=True, errors=NOT_FOUND, public_ids=P, tag="decisions"),
    Route("GET", ONE + "/votes", list_open_votes, "Who chose what, on an open ballot", MEMBER,
          returns=BALLOT_CHOICE, paginated=True, public_ids=P, tag="decisions",
          errors={**NOT_FOUND, 403: ["ballot_secret"]}),
    Route("GET", ONE + "/result", get_result, "The signed result (decision.outcome)", MEMBER,
          returns=SIGNED_RESULT, public_ids=P, tag="decisions",
          errors={**NOT_FOUND, 409: ["not_closed"]}),
    Route("GET", ONE + "/recompute", check_result,
          "Count the ballots again and check the signed result", MEMBER, returns=RESULT_CHECK,
          public_ids=P, tag="decisions", errors={**NOT_FOUND, 409: ["not_closed"]}),
)  # fmt: skip
