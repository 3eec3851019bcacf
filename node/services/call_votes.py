"""This node's verdict on another node's call: ``call.endorse`` (it joins) or ``call.decline``,
carrying how it decided (SPEC §8.5 decision summary). Two ways, as the governance policy's
``endorsement_by`` says:

- ``admins`` or ``organisers``: one of them decides through the API for the organisation.
  The summary says so: ``by`` the policy value, ``electorate`` the active members who could
  have decided (admins; or organisers and admins), ``turnout`` 1, and one yes or one no.
- ``vote``: the "do we join?" proposal opened when the call arrived
  (node.services.call_proposals) decides. When it closes (node.services.closing calls
  :func:`on_vote_closed`) the node endorses if "yes" was adopted and declines otherwise
  (rejected, no quorum, or "no" adopted); the summary carries the vote's method, electorate,
  turnout and counts, and the id of the signed ``decision.outcome``.

A verdict is given once (``already_decided``), only on another node's call (``own_call``)
that is still open or activated (``call_closed``). Verdicts, like tallies and activations,
go to the call's audience.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.services.calls import CallError, Code, call_row, checked
from node.services.calls_apply import publish
from node.services.members import Actor, audit
from node.services.policy import defaults
from node.services.signer import Signer
from node.storage import calls as store
from node.storage.errors import NotFound
from node.storage.members import get_member
from node.storage.models import CallRow, Proposal
from node.storage.policy import get_policy
from protocol import CallDecline, CallEndorse, DecisionOutcome, DecisionSummary

__all__ = ["DECIDER_ROLES", "decide", "on_vote_closed", "reply_audience"]

log = logging.getLogger(__name__)

DECIDER_ROLES: Final = {
    "admins": frozenset({"admin"}),
    "organisers": frozenset({"organiser", "admin"}),
}
LIVE: Final = frozenset({"open", "activated"})


def reply_audience(call: CallRow) -> str:
    """The audience of this node's envelopes about a call: the call's own, except that a
    call addressed to this node alone is answered to its issuer alone."""
    if call.audience.startswith("node:"):
        return f"node:{call.origin.hex()}"
    return call.audience


async def _verdict(
    session: AsyncSession,
    signer: Signer,
    call: CallRow,
    join: bool,
    summary: DecisionSummary,
    *,
    now: int,
    note: Mapping[str, str] | None = None,
) -> None:
    kind = CallEndorse if join else CallDecline
    message = checked(kind, call=call.call_id, decision=summary, note=note)
    await publish(session, signer, message, audience=reply_audience(call), now=now)


async def _decider(session: AsyncSession, member_id: int, roles: frozenset[str]) -> None:
    try:
        member = await get_member(session, member_id)
    except NotFound:
        member = None
    if member is None or member.status != "active":
        raise CallError(Code.NOT_ACTIVE_MEMBER, "only active members may do this")
    if member.role not in roles:
        raise CallError(Code.NOT_ALLOWED, "the governance policy gives this decision to others")


def _check_decidable(call: CallRow, signer: Signer) -> None:
    if call.origin == signer.node_id:
        raise CallError(Code.OWN_CALL, "this node issued the call")
    if call.state not in LIVE:
        raise CallError(Code.CALL_CLOSED, f"the call is {call.state}")


async def decide(
    sessions: async_sessionmaker[Any],
    signer: Signer,
    number: int,
    join: bool,
    note: Mapping[str, str] | None,
    *,
    by: int,
    now: int,
) -> None:
    """An admin's or organiser's decision for the organisation, where the policy says so."""
    async with sessions.begin() as session:
        call = await call_row(session, number)
        _check_decidable(call, signer)
        policy = await get_policy(session) or defaults()
        if policy.endorsement_by not in DECIDER_ROLES:
            raise CallError(Code.DECIDED_BY_VOTE, "the members decide this by vote")
        roles = DECIDER_ROLES[policy.endorsement_by]
        await _decider(session, by, roles)
        if call.stance != "undecided":
            raise CallError(Code.ALREADY_DECIDED, f"the organisation has decided ({call.stance})")
        stance = "endorsed" if join else "declined"
        if not await store.claim_stance(session, call.id, "undecided", stance):
            raise CallError(Code.ALREADY_DECIDED, "the organisation has just decided")
        summary = DecisionSummary(
            by=policy.endorsement_by, electorate=await store.count_deciders(session, roles),
            turnout=1, yes=int(join), no=int(not join),
        )  # fmt: skip
        await _verdict(session, signer, call, join, summary, now=now, note=note)
        await audit(session, now, Actor.member(by), f"call.{stance}", call=call.call_id.hex())


async def on_vote_closed(
    session: AsyncSession,
    signer: Signer,
    proposal: Proposal,
    outcome: DecisionOutcome,
    *,
    outcome_id: bytes,
    now: int,
) -> None:
    """Publish the verdict of a closed "do we join?" vote, in the closing transaction."""
    call = None if proposal.call_id is None else await store.get_call(session, proposal.call_id)
    if call is None or call.stance != "voting" or call.state not in LIVE:
        return
    if len(outcome.counts) != 2:
        log.warning("call %s: its vote has %d options", call.call_id.hex(), len(outcome.counts))
        return
    join = outcome.outcome == "adopted" and outcome.winner == 0
    if not await store.claim_stance(session, call.id, "voting", "endorsed" if join else "declined"):
        return
    summary = DecisionSummary(
        by="vote", method=outcome.method, electorate=outcome.electorate,
        turnout=outcome.turnout, yes=outcome.counts[0], no=outcome.counts[1],
        abstain=outcome.abstain, blocks=outcome.blocks, decision=outcome_id,
    )  # fmt: skip
    await _verdict(session, signer, call, join, summary, now=now)
