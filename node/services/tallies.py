"""Tallies, activation and voiding (SPEC §9.2, §9.3), and the scheduler that runs them.

- **This node's tally** of a call it issued or endorsed counts its active members' pledges,
  each kind rounded *down* to a multiple of ``bucket`` and reported as 0 below ``k``, so
  small groups cannot be singled out. A change of pledges makes a tally *due*, at most once
  per ``interval`` seconds after the last one (a burst of pledges makes one tally), and no
  later than ``final_margin`` seconds before the threshold's deadline, so the last pledges
  still count; none is published after the deadline, nor when the rounded counts have not
  changed. Its ``seq`` grows by one per call.
- **Activation**: after tallies of a call change, the scheduler checks whether the latest
  tally of each organisation (created by the deadline; an organisation whose latest ``seq``
  is equivocated is left out) meets the threshold; if so, and no valid activation is held,
  it publishes ``call.activate`` naming the non-zero ones (the largest 256).
- **Void**: a call with a threshold still open ``grace`` seconds after its deadline is void:
  members are notified and their conditional pledges deleted. The grace lets tallies made
  at the deadline, and activations built on them, arrive.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.clock import Clock
from node.errors import NodeError
from node.services.call_votes import reply_audience
from node.services.calls_apply import ENGAGED, CallIgnored, publish
from node.services.signer import Signer, SignerError
from node.storage import calls as store
from node.storage import pledges, wakeups
from node.storage.models import CallRow, TallyRow
from protocol import CallActivate, CallTally, ProtocolError

__all__ = [
    "MAX_IDLE",
    "CallScheduler",
    "Progress",
    "TallyRules",
    "bucketed",
    "latest_tallies",
    "progress",
    "proof",
    "run_due",
    "schedule_tally",
]

log = logging.getLogger(__name__)

MAX_IDLE: Final = 30  # the scheduler looks for work left by others at least this often
MAX_PROOF: Final = 256
JOINED: Final = frozenset({"own", "endorsed"})
LIVE: Final = frozenset({"open", "activated"})


@dataclass(frozen=True, slots=True)
class TallyRules:
    """How this node publishes tallies (config section ``[calls]``)."""

    bucket: int = 5
    k: int = 5
    interval: int = 60
    grace: int = 3_600
    final_margin: int = 30


def bucketed(count: int, rules: TallyRules) -> int:
    """``count`` rounded down to a multiple of the bucket; 0 if that is below k."""
    rounded = count // rules.bucket * rules.bucket
    return rounded if rounded >= rules.k else 0


# This node's tally


async def schedule_tally(session: AsyncSession, call: CallRow, now: int, rules: TallyRules) -> None:
    """Pledges of ``call`` changed: make its next tally due (see the module docstring)."""
    due = now if call.tally_at is None else max(now, call.tally_at + rules.interval)
    if call.deadline is not None:
        due = min(due, max(now, call.deadline - rules.final_margin))
    # ``call`` may be a copy read before the scheduler claimed the last due tally (and counted
    # without this pledge): the update compares with the row as it is now, never the copy.
    await store.advance_tally_due(session, call.id, due)


async def _publish_tally(
    sessions: async_sessionmaker[Any], signer: Signer, rules: TallyRules, number: int, now: int
) -> None:
    async with sessions.begin() as session:
        if not await store.claim_tally(session, number, now):
            return
        call = await store.get_call_by_number(session, number)
        if call.stance not in JOINED or call.state not in LIVE:
            return
        if call.deadline is not None and now > call.deadline:
            return
        counts = await pledges.count_pledges(session, number)
        firm, conditional = bucketed(counts["firm"], rules), bucketed(counts["conditional"], rules)
        if (firm, conditional) == (call.tally_firm, call.tally_conditional):
            return
        seq = call.tally_seq + 1
        tally = CallTally(call.call_id, seq, firm, conditional, rules.bucket, rules.k)
        await publish(session, signer, tally, audience=reply_audience(call), now=now)
        await store.set_call(
            session, number, tally_seq=seq, tally_firm=firm, tally_conditional=conditional,
            tally_at=now,
        )  # fmt: skip


# Activation


def latest_tallies(call: CallRow, tallies: Sequence[TallyRow]) -> list[TallyRow]:
    """Each organisation's latest tally created by the deadline, unless that one is
    equivocated (then the organisation is left out)."""
    by_origin: dict[bytes, list[TallyRow]] = {}
    for row in tallies:
        if call.deadline is None or row.created_at <= call.deadline:
            by_origin.setdefault(row.origin, []).append(row)
    latest = []
    for rows in by_origin.values():
        top = max(row.seq for row in rows)
        at_top = [row for row in rows if row.seq == top]
        if not any(row.equivocation for row in at_top):
            latest.append(at_top[0])
    return latest


@dataclass(frozen=True, slots=True)
class Progress:
    pledges: int
    orgs: int
    met: bool


def progress(call: CallRow, tallies: Sequence[TallyRow]) -> Progress | None:
    """Pledges and organisations counted so far by the latest tallies; None without a
    threshold."""
    if call.pledges_needed is None or call.orgs_needed is None:
        return None
    latest = latest_tallies(call, tallies)
    pledged = sum(row.firm + row.conditional for row in latest)
    orgs = sum(1 for row in latest if row.firm + row.conditional > 0)
    return Progress(pledged, orgs, pledged >= call.pledges_needed and orgs >= call.orgs_needed)


def proof(call: CallRow, tallies: Sequence[TallyRow]) -> CallActivate | None:
    """An activation the latest tallies prove, or None if they do not meet the threshold."""
    if call.pledges_needed is None or call.orgs_needed is None:
        return None
    counted = [row for row in latest_tallies(call, tallies) if row.firm + row.conditional]
    counted.sort(key=lambda row: row.firm + row.conditional, reverse=True)
    counted = counted[:MAX_PROOF]
    pledged = sum(row.firm + row.conditional for row in counted)
    if pledged < call.pledges_needed or len(counted) < call.orgs_needed:
        return None
    ids = tuple(sorted(row.id for row in counted))
    return CallActivate(call.call_id, ids, pledged, len(counted))


async def _check_activation(
    sessions: async_sessionmaker[Any], signer: Signer, number: int, now: int
) -> None:
    async with sessions.begin() as session:
        if not await store.claim_recheck(session, number):
            return
        call = await store.get_call_by_number(session, number)
        if call.deadline is None or call.state != "open" or call.activation is not None:
            return
        activate = proof(call, await store.list_tallies(session, call.call_id))
        if activate is not None:
            await publish(session, signer, activate, audience=reply_audience(call), now=now)


# Void


async def _void(sessions: async_sessionmaker[Any], number: int, cutoff: int, now: int) -> None:
    async with sessions.begin() as session:
        if not await store.claim_void(session, number, cutoff):
            return
        call = await store.get_call_by_number(session, number)
        await pledges.notify(session, number, "void", now, everyone=call.stance in ENGAGED)
        await pledges.delete_conditional(session, number)
        await store.set_call(session, number, tally_due_at=None)


# The scheduler


async def run_due(
    sessions: async_sessionmaker[Any], signer: Signer, rules: TallyRules, now: int
) -> int:
    """Publish due tallies, check activations, void calls past their deadline; seconds until
    the next pass. Safe to run at once from several tasks or processes."""
    async with sessions() as session:
        due = await store.list_due_tallies(session, now)
    for number in due:
        await _guarded(_publish_tally(sessions, signer, rules, number, now), number)
    async with sessions() as session:
        rechecks = await store.list_rechecks(session)
    for number in rechecks:
        await _guarded(_check_activation(sessions, signer, number, now), number)
    async with sessions() as session:
        voidable = await store.list_voidable(session, now - rules.grace)
    for number in voidable:
        await _void(sessions, number, now - rules.grace, now)
    async with sessions() as session:
        upcoming = await store.next_due_at(session, rules.grace)
    return MAX_IDLE if upcoming is None else min(max(upcoming - now, 1), MAX_IDLE)


async def _guarded(work: Any, number: int) -> None:
    """One call's failure (a refused envelope: a bug, logged) does not stop the others."""
    try:
        await work
    except (ProtocolError, CallIgnored, NodeError) as exc:
        if isinstance(exc, SignerError):
            raise
        log.error("calls scheduler: call %d: %s", number, exc)


class CallScheduler:
    """Runs :func:`run_due` on time; :meth:`wake` makes it look at once (after pledges)."""

    def __init__(
        self,
        clock: Clock,
        sessions: async_sessionmaker[Any],
        signer: Signer,
        rules: TallyRules,
    ) -> None:
        self.clock, self.sessions, self.signer, self.rules = clock, sessions, signer, rules
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Passes until ``stop``; a commit that changed a call's tallies (one arrived from
        another node) wakes it, so an activation is checked at once."""
        unlisten = wakeups.on_commit(self.sessions, wakeups.CALLS, self.wake)
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    delay = await run_due(self.sessions, self.signer, self.rules, self.clock.now())
                except (SQLAlchemyError, OSError, SignerError):
                    log.exception("calls scheduler: pass failed; retrying in %s s", MAX_IDLE)
                    delay = MAX_IDLE
                await self._sleep(delay, stop)
        finally:
            unlisten()

    async def _sleep(self, seconds: float, stop: asyncio.Event) -> None:
        waiters = [
            asyncio.ensure_future(self.clock.sleep(seconds)),
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(self._wake.wait()),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
