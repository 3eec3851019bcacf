"""Other nodes' key logs as this node knows them (SPEC §4.5–4.6, §10.7).

Every key event of every node is a row of ``key_events``; this module is the one place that
turns rows into a verified :class:`~protocol.KeyState` and extends a stored log with events
pushed or fetched. Verifying a whole log checks every officer signature, so verified states
are cached per process, keyed by the stored head (position and digest): one indexed query
per lookup tells whether another process (on a shared PostgreSQL database) has extended the
log since, and a stale state is never used.

A validly signed event that contradicts a held one is a fork of the node's history: the log
is refused and the event kept in ``fork_evidence`` for admins (kind ``key_event``). A log
presented whole that ends before the held head is a rollback and is refused.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from node.storage import envelopes
from node.storage.models import ForkEvidence, KeyEventRow
from node.storage.rawsql import Raw
from protocol import ErrorCode, KeyLogError, KeyState, SignedKeyEvent

__all__ = ["MAX_CACHED", "KeyLogs"]

MAX_CACHED: Final = 1024  # verified states kept per process (least recently used dropped)


class KeyLogs:
    """Verified key states of nodes, read from and written to ``key_events``."""

    def __init__(self, max_cached: int = MAX_CACHED) -> None:
        self._cache: OrderedDict[bytes, KeyState] = OrderedDict()
        self._max = max_cached

    async def state(self, session: AsyncSession, node_id: bytes) -> KeyState | None:
        """The verified key state of ``node_id``, or None if no log of it is stored.

        Raises :class:`~protocol.KeyLogError` if the stored log does not verify (it never
        should: only verified events are stored)."""
        head = await _head(session, node_id)
        if head is None:
            return None
        cached = self.cached(node_id, head)
        if cached is not None:
            return cached
        wires = await envelopes.list_key_events(session, node_id)
        state = KeyState.from_log([SignedKeyEvent.from_bytes(wire) for wire in wires])
        self._remember(state)
        return state

    def cached(self, node_id: bytes, head: tuple[int, bytes]) -> KeyState | None:
        """The state remembered for ``node_id`` if its head is ``head`` (position, digest),
        as a caller that read the stored head itself found it; else None (then
        :meth:`state`). Lets the inbox read many heads in one query."""
        cached = self._cache.get(node_id)
        if cached is None or (cached.position, cached.head) != head:
            return None
        self._cache.move_to_end(node_id)
        return cached

    async def accept(
        self,
        session: AsyncSession,
        node_id: bytes,
        events: Sequence[SignedKeyEvent],
        *,
        now: int,
        complete: bool = False,
    ) -> KeyState:
        """Verify ``events`` against the stored log of ``node_id`` (or as a whole log from its
        inception if none is stored) and store the new ones, in the caller's transaction.

        ``complete``: the events are the node's whole log (a descriptor, a peering), so a log
        shorter than the held one is a rollback. Raises :class:`~protocol.KeyLogError`
        (``keylog_rollback``, ``keylog_duplicity``, ...); on ``keylog_duplicity`` the evidence
        has been added to the session, so the caller commits rather than rolls back.

        A state remembered from a transaction that is then rolled back is harmless: the next
        :meth:`state` finds another head in the database and verifies the log again."""
        known = await self.state(session, node_id)
        if known is None:
            state = KeyState.from_log(events)
            if state.node_id != node_id:
                raise KeyLogError(ErrorCode.KEYLOG_WRONG_NODE, "the log is another node's")
        else:
            try:
                state = known.extend(events, complete=complete)
            except KeyLogError as exc:
                if exc.code == ErrorCode.KEYLOG_DUPLICITY:
                    await _keep_evidence(session, known, events, now)
                raise
        for event in events:
            if known is None or event.event.pos > known.position:
                session.add(
                    KeyEventRow(
                        node_id=node_id,
                        pos=event.event.pos,
                        digest=event.event.digest,
                        wire=event.to_bytes(),
                        received_at=now,
                    )
                )
        await session.flush()
        self._remember(state)
        return state

    def _remember(self, state: KeyState) -> None:
        self._cache[state.node_id] = state
        self._cache.move_to_end(state.node_id)
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)


async def _head(session: AsyncSession, node_id: bytes) -> tuple[int, bytes] | None:
    """Position and digest of the last stored key event of ``node_id``. Plain SQL: the
    transport check of every federation request reads it."""
    rows = await (await Raw.of(session)).fetch(_HEAD, (node_id,))
    return (rows[0][0], rows[0][1]) if rows else None


_HEAD: Final = "SELECT pos, digest FROM key_events WHERE node_id = ? ORDER BY pos DESC LIMIT 1"


async def _keep_evidence(
    session: AsyncSession, known: KeyState, events: Sequence[SignedKeyEvent], now: int
) -> None:
    """Store each presented event that conflicts with a held one and is validly signed
    against the log before it: fabricated "evidence" with bad signatures is not kept."""
    for signed in events:
        pos = signed.event.pos
        if not 0 < pos <= known.position or signed.event.digest == known.events[pos].digest:
            continue
        try:
            KeyState(known.events[:pos]).extend([signed])
        except KeyLogError:
            continue
        if await session.get(ForkEvidence, signed.event.digest) is None:
            session.add(
                ForkEvidence(
                    id=signed.event.digest,
                    kind="key_event",
                    origin=known.node_id,
                    seq=pos,
                    wire=signed.to_bytes(),
                    received_at=now,
                )
            )
    await session.flush()
