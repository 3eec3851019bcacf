"""Key events pushed with an inbox batch or a log page (SPEC §4.6, §6.4, §14).

Events are grouped by node and applied in the order presented, each with a status: ``ok``
(new, verified and stored), ``duplicate`` (held already), or the code of the first event of
its node that fails; the events after it in that group get the same code, since they cannot
follow it. A group that starts at the inception is that node's whole log, so one ending
before the held head is refused as ``keylog_rollback``. A validly signed event contradicting
a held one is ``keylog_duplicity`` and is kept as fork evidence (by ``KeyLogs.accept``).

Checking is cheap when nothing is new, which is the usual case (senders push each origin's
whole log with every batch): held positions are compared by digest, without a transaction
that writes. Only new or contradicting events open one.

When a new event carries a ``seal`` (SPEC §4.5), envelopes held of that node under earlier
positions and with ``seq`` above the seal are no longer valid (§6.4): from the first of them,
the node's chain is cut back (they are kept as evidence of kind ``revoked``, everything after
them is dropped and fetched again) and escrowed ones are deleted.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.federation.keylogs import KeyLogs
from node.storage import inbox as store
from node.storage.models import EnvelopeRow, EscrowEntry
from protocol import INCEPTION, ErrorCode, KeyLogError, KeyState, ProtocolError, SignedEnvelope
from protocol import SignedKeyEvent as Event

__all__ = ["REVOKED", "KeyBatch", "KeyIngest"]

log = logging.getLogger(__name__)

OK: Final = "ok"
DUPLICATE: Final = "duplicate"
REVOKED: Final = "revoked"  # fork_evidence kind of envelopes cut off by a seal


@dataclass(slots=True)
class _Group:
    events: list[tuple[int, Event]] = field(default_factory=list)


@dataclass(slots=True)
class KeyBatch:
    """Presented key events, checked against what is held: ``statuses`` answers those that
    change nothing; the groups of the nodes in ``changing`` need :meth:`KeyIngest.apply`."""

    statuses: list[str]
    groups: dict[bytes, _Group]
    changing: list[bytes]


class KeyIngest:
    """Applies presented key events through :class:`KeyLogs` (the one place that verifies
    and stores them)."""

    def __init__(self, keylogs: KeyLogs, self_id: bytes):
        self._keylogs = keylogs
        self._self = self_id

    @staticmethod
    def prepare(wires: Sequence[bytes]) -> KeyBatch:
        """Decode and group the events (no database): ``groups`` names their nodes."""
        statuses = [""] * len(wires)
        return KeyBatch(statuses, _group(wires, statuses), [])

    async def check(
        self,
        session: AsyncSession,
        batch: KeyBatch,
        heads: Mapping[bytes, tuple[int, bytes]] | None = None,
    ) -> None:
        """Compare with what is held (a read, no lock taken): answer the groups that change
        nothing, list the others in ``batch.changing``. ``heads``: each node's stored key-log
        head (position, digest) if the caller read them already; a node absent has none."""
        for node, group in batch.groups.items():
            if await self._settle(session, node, group, batch.statuses, heads):
                batch.changing.append(node)

    async def apply(self, session: AsyncSession, batch: KeyBatch, *, now: int) -> None:
        """Apply the changing groups, in the caller's write transaction."""
        for node in batch.changing:
            await self._apply(session, node, batch.groups[node].events, batch.statuses, now)

    async def _known(
        self,
        session: AsyncSession,
        node: bytes,
        heads: Mapping[bytes, tuple[int, bytes]] | None = None,
    ) -> KeyState | None:
        if heads is not None:
            head = heads.get(node)
            if head is None:
                return None
            cached = self._keylogs.cached(node, head)
            if cached is not None:
                return cached
        try:
            return await self._keylogs.state(session, node)
        except KeyLogError:  # a stored log that does not verify: none known (never happens)
            log.exception("stored key log of %s does not verify", node.hex())
            return None

    async def _settle(
        self,
        session: AsyncSession,
        node: bytes,
        group: _Group,
        statuses: list[str],
        heads: Mapping[bytes, tuple[int, bytes]] | None,
    ) -> bool:
        """Answer a group that changes nothing (every event held); True if it needs a write."""
        known = await self._known(session, node, heads)
        if known is None or any(
            e.event.pos > known.position or e.event.digest != known.events[e.event.pos].digest
            for _, e in group.events
        ):
            return True
        first, last = group.events[0][1].event.pos, group.events[-1][1].event.pos
        rollback = first == 0 and last < known.position
        for index, _ in group.events:
            statuses[index] = str(ErrorCode.KEYLOG_ROLLBACK) if rollback else DUPLICATE
        if rollback:
            log.warning("key log of %s presented rolled back", node.hex())
        return False

    async def _apply(
        self,
        session: AsyncSession,
        node: bytes,
        events: list[tuple[int, Event]],
        statuses: list[str],
        now: int,
    ) -> None:
        known = await self._known(session, node)
        state, taken, failure = known, 0, None
        for index, signed in events:
            try:
                before = -1 if state is None else state.position
                state = KeyState.from_log([signed]) if state is None else state.extend([signed])
                statuses[index] = OK if signed.event.pos > before else DUPLICATE
                taken += 1
            except KeyLogError as exc:
                failure = exc
                break
        whole, last = events[0][1].event.pos == 0, events[-1][1].event.pos
        if failure is None and whole and known is not None and last < known.position:
            failure = KeyLogError(ErrorCode.KEYLOG_ROLLBACK, "presented log is shorter")
            taken = 0
        if taken and state is not None and (known is None or state.position > known.position):
            new_state = await self._keylogs.accept(
                session, node, [e for _, e in events[:taken]], now=now
            )
            if known is not None and node != self._self:
                await _revoke_after_seals(session, known.position, new_state, now)
        if failure is not None:
            await self._fail(session, node, events[taken:], failure, statuses, now=now)

    async def _fail(
        self,
        session: AsyncSession,
        node: bytes,
        rest: list[tuple[int, Event]],
        failure: KeyLogError,
        statuses: list[str],
        *,
        now: int,
    ) -> None:
        for index, _ in rest:
            statuses[index] = str(failure.code)
        log.warning("key events of %s refused: %s", node.hex(), failure)
        if failure.code == ErrorCode.KEYLOG_DUPLICITY:
            # stores the evidence when the contradicting event is validly signed
            with contextlib.suppress(KeyLogError):
                await self._keylogs.accept(session, node, [rest[0][1]], now=now)


def _group(wires: Sequence[bytes], statuses: list[str]) -> dict[bytes, _Group]:
    groups: dict[bytes, _Group] = {}
    for index, wire in enumerate(wires):
        try:
            signed = Event.from_bytes(wire)
        except ProtocolError as exc:
            statuses[index] = str(exc.code)
            continue
        event = signed.event
        node = event.digest if event.type == INCEPTION else event.node
        assert node is not None  # noqa: S101 - every event after the inception names its node
        groups.setdefault(node, _Group()).events.append((index, signed))
    return groups


async def _revoke_after_seals(
    session: AsyncSession, old_position: int, state: KeyState, now: int
) -> None:
    for pos in range(old_position + 1, state.position + 1):
        seal = state.events[pos].seal
        if seal is not None:
            await _revoke(session, state.node_id, pos, seal, now)


async def _revoke(session: AsyncSession, node: bytes, pos: int, seal: int, now: int) -> None:
    """Cut ``node``'s chain back before its first envelope above ``seal`` signed under a
    position before ``pos`` (SPEC §6.4), and drop such escrowed envelopes."""
    rows = await session.execute(
        select(EnvelopeRow.seq, EnvelopeRow.id, EnvelopeRow.wire)
        .where(EnvelopeRow.origin == node, EnvelopeRow.seq > seal)
        .order_by(EnvelopeRow.seq)
    )
    bad = [(r.seq, r.id, r.wire) for r in rows if r.wire is not None and _kpos(r.wire) < pos]
    if bad:
        first = bad[0][0]
        for seq, id_, wire in bad:
            await store.put_fork_evidence(
                session, id=id_, kind=REVOKED, origin=node, seq=seq, wire=wire, now=now
            )
        await session.execute(
            delete(EnvelopeRow).where(EnvelopeRow.origin == node, EnvelopeRow.seq >= first)
        )
        before = await session.scalar(
            select(EnvelopeRow.id).where(EnvelopeRow.origin == node, EnvelopeRow.seq == first - 1)
        )
        await store.put_heads(
            session, {node: None if before is None else (first - 1, before)}, known={node}
        )
        log.warning("%d envelopes of %s revoked by the seal at %d", len(bad), node.hex(), pos)
    escrowed = await session.execute(
        select(EscrowEntry.seq, EscrowEntry.wire).where(
            EscrowEntry.origin == node, EscrowEntry.seq > seal
        )
    )
    await store.delete_escrow(session, [(node, r.seq) for r in escrowed if _kpos(r.wire) < pos])


def _kpos(wire: bytes) -> int:
    return SignedEnvelope.from_bytes(wire).envelope.kpos
