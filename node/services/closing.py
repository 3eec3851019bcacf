"""Closing internal decisions: counting the ballots, sealing secret ones, signing the
``decision.outcome``, recomputing it, and the scheduler that closes proposals on time.

The rules are those of :mod:`node.services.decisions`; this module is the half that runs when
voting ends.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.clock import Clock
from node.services import counting
from node.services.call_votes import on_vote_closed
from node.services.counting import Tally
from node.services.decisions import (
    Code,
    DecisionError,
    proposal_row,
    rule_of,
)
from node.services.signer import Signer, SignerError
from node.storage import decisions as store
from node.storage import wakeups
from node.storage.models import Proposal
from protocol import DecisionOutcome, SignedEnvelope

__all__ = ["close_due", "close_proposal", "get_result", "open_due", "recompute", "run_scheduler"]

log = logging.getLogger(__name__)

MAX_IDLE: Final = 60  # the scheduler looks for new proposals at least this often (seconds)
OUTCOME_AUDIENCE: Final = "allies"
# Proposals hold one title without a language; "und" is BCP 47 for "undetermined".
OUTCOME_LANG: Final = "und"


async def _tally(session: AsyncSession, proposal_id: int, options: int) -> Tally:
    counted = await store.count_ballots(session, proposal_id)
    counts = [0] * options
    for stored, number in counted.items():
        if stored.kind == "option" and stored.position is not None:
            counts[stored.position] += number
    abstain = counted.get(store.StoredChoice("abstain"), 0)
    return Tally(tuple(counts), abstain, counted.get(store.StoredChoice("block"), 0))


async def _outcome(session: AsyncSession, proposal: Proposal, electorate: int) -> DecisionOutcome:
    """The result of a proposal, counted from its stored ballots."""
    labels = await store.list_options(session, proposal.id)
    counted = await _tally(session, proposal.id, len(labels))
    rule = rule_of(proposal)
    result = counting.decide(rule, counted, electorate)
    return DecisionOutcome(
        proposal=proposal.public_id, title={OUTCOME_LANG: proposal.title}, method=rule.method,
        quorum=rule.quorum, fraction=rule.fraction, ballot=proposal.ballot,
        electorate=electorate, turnout=counted.turnout, options=tuple(labels),
        counts=counted.counts, abstain=counted.abstain, blocks=counted.blocks,
        outcome=result.outcome, winner=result.winner,
        opened=proposal.opens_at, closed=proposal.closes_at,
    )  # fmt: skip


async def close_proposal(
    sessions: async_sessionmaker[Any], signer: Signer, proposal_id: int, now: int
) -> bytes | None:
    """Close one proposal whose voting has ended: count, seal the ballots, sign the result.

    Returns its public id, or None if it was already closed or cancelled (by anyone, in any
    process: the conditional UPDATE lets exactly one transaction close it).
    """
    async with sessions.begin() as session:
        if not await store.claim_for_closing(session, proposal_id, now):
            return None
        await store.reseal_ballots(session, proposal_id)
        proposal = await store.get_proposal_by_id(session, proposal_id)
        electorate = await store.count_electorate(session, proposal_id)
        outcome = await _outcome(session, proposal, electorate)
        signed = await signer.append(
            session, type=outcome.TYPE, body=outcome.to_body(), audience=OUTCOME_AUDIENCE, now=now
        )
        await store.put_result(session, proposal_id, signed.to_bytes())
        if proposal.call_id is not None:  # "do we join?": publish the call's verdict
            await on_vote_closed(session, signer, proposal, outcome, outcome_id=signed.id, now=now)
        return proposal.public_id


async def close_due(sessions: async_sessionmaker[Any], signer: Signer, now: int) -> list[bytes]:
    """Close every proposal whose voting has ended by ``now`` (up to 100 a call); the public
    ids of those this call closed. Safe to run at once from several tasks or processes."""
    async with sessions() as session:
        due = await store.list_due(session, now)
    closed = [await close_proposal(sessions, signer, proposal_id, now) for proposal_id in due]
    return [public_id for public_id in closed if public_id is not None]


async def open_due(sessions: async_sessionmaker[Any], now: int) -> int:
    """Mark scheduled proposals open once their time has come (votes do not wait for it)."""
    async with sessions.begin() as session:
        return await store.open_due(session, now)


async def get_result(sessions: async_sessionmaker[Any], public_id: bytes) -> SignedEnvelope:
    """The signed ``decision.outcome`` of a closed proposal."""
    async with sessions() as session:
        proposal = await proposal_row(session, public_id)
    if proposal.result is None:
        raise DecisionError(Code.NOT_CLOSED, "the proposal has no result")
    return SignedEnvelope.from_bytes(proposal.result)


async def recompute(sessions: async_sessionmaker[Any], public_id: bytes) -> DecisionOutcome:
    """Count a closed proposal again from its stored ballots; equal to the signed result.

    The electorate is the one input not in the ballots: a snapshot of membership at close,
    taken from the signed result.
    """
    electorate = (await get_result(sessions, public_id)).envelope.body["electorate"]
    async with sessions() as session:
        return await _outcome(session, await proposal_row(session, public_id), electorate)


# The scheduler


async def run_scheduler(
    clock: Clock, sessions: async_sessionmaker[Any], signer: Signer, stop: asyncio.Event
) -> None:
    """Open and close proposals on time until ``stop`` is set.

    Sleeps (on ``clock``) until the next opening or closing, at most :data:`MAX_IDLE`
    seconds, and wakes at once when a transaction that created a proposal commits (a vote on
    a call that arrived may close within a minute). A failed pass (the database is down, the
    node cannot sign) is logged and retried after :data:`MAX_IDLE` seconds.
    """
    kick = asyncio.Event()
    unlisten = wakeups.on_commit(sessions, wakeups.DECISIONS, kick.set)
    try:
        while not stop.is_set():
            kick.clear()
            delay = await _scheduler_pass(sessions, signer, clock.now())
            await _sleep_or_stop(clock, delay, stop, kick)
    finally:
        unlisten()


async def _scheduler_pass(sessions: async_sessionmaker[Any], signer: Signer, now: int) -> int:
    """Open and close what is due; seconds until the next pass."""
    try:
        await open_due(sessions, now)
        await close_due(sessions, signer, now)
        async with sessions() as session:
            upcoming = await store.next_due_at(session)
    except (SQLAlchemyError, OSError, SignerError):
        log.exception("decision scheduler: pass failed; retrying in %s s", MAX_IDLE)
        return MAX_IDLE
    return MAX_IDLE if upcoming is None else min(max(upcoming - now, 1), MAX_IDLE)


async def _sleep_or_stop(
    clock: Clock, seconds: float, stop: asyncio.Event, kick: asyncio.Event
) -> None:
    waiters = [asyncio.ensure_future(clock.sleep(seconds)),
               asyncio.ensure_future(stop.wait()), asyncio.ensure_future(kick.wait())]  # fmt: skip
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
