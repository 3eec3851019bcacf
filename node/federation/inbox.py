"""The inbox: envelopes and key events from peers, pushed (``POST /federation/v1/inbox``) or
fetched by catch-up (``GET /federation/v1/log``), all through the same checks (SPEC §14).

A batch runs in four steps; the signatures, the bulk of the work, are checked outside the
inbox's turn at the database (:meth:`Inbox.turn`), while the batch before is being written
(its statements are few, and plain SQL: :mod:`node.storage.rawsql`):

1. one read: the sender must be a peer (introduced or allied), else 403 and one contact-log
   row; the key events presented are compared with the held logs; the origins' key states,
   which items are held already, the peers' states;
2. new key events, if any, are stored first (:class:`~node.federation.keyingest.KeyIngest`,
   in the turn), so that a delegation pushed with envelopes applies to them;
3. every item is decoded (before step 1) and verified
   (:func:`~node.federation.batch.preverify`), in slices (:mod:`node.federation.slices`);
4. in the turn, one transaction: the sender's contact recorded (a write first, so SQLite's
   lock is taken before anything is read), the chain state read (heads, escrow: one query
   per question, :mod:`node.storage.inbox`), the batch planned in memory
   (:func:`~node.federation.batch.plan_batch`: policy and order), then written
   (:class:`~node.federation.batchwrite.Writer`: envelopes in one INSERT, escrow, heads,
   fork evidence, the handlers, the relay rows). The coalitions its ``coalition:``
   envelopes address (escrowed ones it releases included) are locked before their
   membership is read, all at once and by id (PostgreSQL), so that two processes never
   deadlock on them. A write that loses a race with another process (a primary key taken
   meanwhile: an IntegrityError; or PostgreSQL's deadlock victim or serialization failure)
   is planned again from fresh reads, up to :data:`ATTEMPTS` times.

One bad item never fails the batch: each item gets its own status. Envelopes are applied in
each origin's ``seq`` order; one that arrives ahead of a gap waits in a bounded escrow
(:data:`ESCROW_PER_ORIGIN`, :data:`ESCROW_TOTAL`) and :func:`gaps` tells catch-up where to
fetch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.federation import batchread, logpages, outbox, senders
from node.federation.batch import (
    Checked,
    Item,
    View,
    plan_batch,
)
from node.federation.batchwrite import ESCROW_PER_ORIGIN, ESCROW_TOTAL, Enqueue, Writer
from node.federation.keyingest import KeyIngest
from node.federation.keylogs import KeyLogs
from node.federation.slices import decode_sliced, preverify_sliced
from node.federation.wire import BatchResult, LogEntry, LogPage
from node.storage import alliances, contact_log, envelopes
from node.storage import inbox as store
from node.storage.inbox import Gap
from protocol import KeyLogError, KeyState

__all__ = ["ESCROW_PER_ORIGIN", "ESCROW_TOTAL", "Enqueue", "FirstWrite", "Gap", "Inbox", "gaps"]

log = logging.getLogger(__name__)

ATTEMPTS: Final = 3
# PostgreSQL's answers to a transaction that lost a race it could not wait out: chosen as
# the victim of a deadlock, or a serialization failure. Like an IntegrityError (a key taken
# meanwhile), the batch is then planned again from fresh reads.
RETRY_SQLSTATES: Final = frozenset({"40P01", "40001"})
# A write made first in a transaction of the batch (the transport nonce); may raise.
FirstWrite = Callable[[AsyncSession], Awaitable[None]]


async def gaps(session: AsyncSession) -> list[Gap]:
    """Origins whose log has a gap before escrowed envelopes: ``(origin, head, via, first)``;
    catch-up asks ``via`` for the log after ``head``."""
    return await store.list_gaps(session)


class Inbox:
    """Receives batches for this node (``node_id``)."""

    def __init__(
        self,
        sessions: async_sessionmaker[Any],
        keylogs: KeyLogs,
        node_id: bytes,
        *,
        enqueue: Enqueue = outbox.enqueue_many,
    ) -> None:
        self._sessions = sessions
        self._keylogs = keylogs
        self._self = node_id
        self._keys = KeyIngest(keylogs, node_id)
        self._enqueue = enqueue
        self._lock = asyncio.Lock()
        self._writers = 0  # batches writing or waiting for the turn to write

    def turn(self) -> asyncio.Lock:
        """The inbox's turn at the database: one writer at a time in this process. Handlers
        also hold it while the transport check writes its nonce: SQLite's writers poll for
        its lock, so without a queue in front of it a stream of batches could starve another
        request for as long as the stream lasts. Verifying signatures happens outside it."""
        return self._lock

    async def receive(
        self,
        sender: bytes,
        items: Sequence[bytes],
        keys: Sequence[bytes],
        *,
        now: int,
        first_write: FirstWrite | None = None,
    ) -> BatchResult:
        """A pushed batch; raises :class:`~node.federation.senders.SenderRefused`.

        ``first_write``: the first statement of the first transaction that writes (the
        transport nonce, SPEC §10.8): what it raises undoes the batch and is raised here."""
        decoded = await decode_sliced(items, self._writing)
        return await self._run(sender, decoded, keys, now, trusted=None, first=_Once(first_write))

    async def record(self, write: FirstWrite) -> None:
        """``write`` alone, in its own transaction, in the inbox's turn (a request that
        changes nothing else still records its transport nonce)."""
        async with self._lock, self._sessions.begin() as session:
            await write(session)

    async def receive_log(
        self,
        sender: bytes,
        origin: bytes,
        entries: Sequence[LogEntry],
        keys: Sequence[bytes],
        *,
        now: int,
    ) -> BatchResult:
        """A catch-up page of ``origin``'s log fetched from ``sender``: each envelope is
        checked exactly as a pushed one, and must be the page's origin, seq and id."""
        decoded = [batchread.from_entry(i, origin, entry) for i, entry in enumerate(entries)]
        trusted = origin if sender == origin else None
        return await self._run(sender, decoded, keys, now, trusted=trusted)

    async def gaps(self) -> list[Gap]:
        async with self._sessions() as session:
            return await gaps(session)

    async def log_page(
        self, requester: bytes, origin: bytes, *, after: int, limit: int, now: int
    ) -> LogPage:
        """What ``requester`` may fetch of ``origin``'s log after ``after`` (a peer only)."""
        await self._admit_or_refuse(requester, now)
        async with self._lock, self._sessions.begin() as session:
            await senders.admit(session, requester, now)
            return await logpages.log_page(session, requester, origin, after=after, limit=limit)

    async def key_log(self, requester: bytes, node: bytes, *, now: int) -> list[bytes]:
        """``node``'s whole key log as held here, for a peer (404 if none is held)."""
        await self._admit_or_refuse(requester, now)
        async with self._lock, self._sessions.begin() as session:
            await senders.admit(session, requester, now)
            keys = await envelopes.list_key_events(session, node)
        if not keys:
            raise logpages.unknown_origin(node)
        return keys

    async def refused(self, node_id: bytes | None, code: str, *, now: int) -> None:
        """Log a contact refused before the sender was known (a bad transport signature)."""
        async with self._lock, self._sessions.begin() as session:
            await contact_log.put_contact(session, node_id, code, now)

    async def _run(
        self,
        sender: bytes,
        decoded: list[Item | str],
        keys: Sequence[bytes],
        now: int,
        *,
        trusted: bytes | None,
        first: _Once | None = None,
    ) -> BatchResult:
        first = first or _Once(None)
        items = [d for d in decoded if isinstance(d, Item) and d.signed is not None]
        origins = {d.origin for d in decoded if isinstance(d, Item)}
        key_batch = self._keys.prepare(keys)
        places = [(i.origin, i.seq, i.id) for i in items]
        async with self._sessions() as session:  # one read: no lock, nothing written
            facts = await store.batch_facts(session, sender, {*origins, *key_batch.groups}, places)
            peers = facts.peers
            refused = senders.refusal_for(peers.get(sender))
            if refused is None:
                await self._keys.check(session, key_batch, facts.key_heads)
                if not key_batch.changing:
                    known = await self._known(session, items, facts)
        if refused is not None:
            async with self._lock, self._sessions.begin() as session:
                await first(session)
                await senders.refuse(session, sender, refused, now)
            raise refused
        if key_batch.changing:  # new key events: stored first, so the items see them
            async with self._lock, self._sessions.begin() as session:
                await first(session)
                await self._keys.apply(session, key_batch, now=now)
            first.committed()
            async with self._sessions() as session:
                known = await self._known(session, items, None)
        checked = await preverify_sliced(items, *known, now, self._writing)  # while others write
        batch = _Batch(decoded, checked, known[0], known[1], peers, trusted)
        self._writers += 1
        try:
            async with self._lock:
                statuses = await self._write(sender, batch, now, first)
        finally:
            self._writers -= 1
        return BatchResult(tuple(statuses), tuple(key_batch.statuses))

    async def _write(self, sender: bytes, batch: _Batch, now: int, first: _Once) -> list[str]:
        """:meth:`_attempt`, again from fresh reads when it lost a race, up to ATTEMPTS."""
        for _ in range(ATTEMPTS - 1):
            try:
                return await self._attempt(sender, batch, now, first)
            except DBAPIError as exc:
                if not _lost_race(exc):
                    raise
                log.info("inbox batch from %s lost a race; planning again", sender.hex())
                batch.held = None  # read again
        return await self._attempt(sender, batch, now, first)  # the last: its error is raised

    def _writing(self) -> bool:
        """Whether a batch is being written, or waits for its turn to be: its statements
        each need a turn of the event loop."""
        return self._writers > 0 or self._lock.locked()

    async def _admit_or_refuse(self, sender: bytes, now: int) -> None:
        async with self._sessions() as session:
            refused = await senders.refusal(session, sender)
        if refused is not None:
            async with self._lock, self._sessions.begin() as session:
                await senders.refuse(session, sender, refused, now)
            raise refused

    async def _known(
        self, session: AsyncSession, items: list[Item], facts: store.BatchFacts | None
    ) -> tuple[dict[bytes, KeyState | None], set[bytes]]:
        """The key states of the items' origins, and which items are held already: from
        ``facts`` read before, or read now."""
        if not items:
            return {}, set()
        states = {}
        for origin in {i.origin for i in items}:
            head = None if facts is None else facts.key_heads.get(origin)
            cached = None if head is None else self._keylogs.cached(origin, head)
            if cached is None and (facts is None or head is not None):
                cached = await self._state(session, origin)
            states[origin] = cached
        if facts is not None:
            return states, facts.held
        return states, await store.held_of(session, [(i.origin, i.seq, i.id) for i in items])

    async def _attempt(self, sender: bytes, batch: _Batch, now: int, first: _Once) -> list[str]:
        """Plan and write the batch, in the inbox's turn: one transaction, whose first
        statement writes (so SQLite's write lock is taken before anything is read)."""
        statuses = [d if isinstance(d, str) else "" for d in batch.decoded]
        items = [d for d in batch.decoded if isinstance(d, Item)]
        async with self._sessions.begin() as session:
            await first(session)
            nodes = {sender, *batch.peer_states, *(item.origin for item in items)}
            batch.peer_states = await store.peer_states(session, nodes)  # as they are now
            refused = senders.refusal_for(batch.peer_states.get(sender))
            if refused is not None:  # blocked (or removed) while the batch was verified
                await senders.refuse(session, sender, refused, now)
            else:
                await senders.admit(session, sender, now)
                view = await self._read(session, items, batch)
                view.checked, view.sender = batch.checked, sender
                plan = plan_batch(items, view, statuses, now=now, trusted=batch.trusted)
                await Writer(session, plan, view, statuses, now).write(sender, self._enqueue)
        first.committed()
        if refused is not None:
            raise refused
        return statuses

    async def _read(self, session: AsyncSession, items: list[Item], batch: _Batch) -> View:
        origins = {item.origin for item in items}
        heads, refs, key_heads = await store.chain_state(session, origins)
        escrow: dict[bytes, dict[int, store.EscrowRef]] = {}
        for ref in refs:
            escrow.setdefault(ref.origin, {})[ref.seq] = ref
        states = batch.states.copy()
        for origin in origins:  # key logs that changed since the batch was verified
            known = states.get(origin)
            if known is None or (known.position, known.head) != key_heads.get(origin):
                states[origin] = await self._state(session, origin)
        held = batch.held
        if held is None:
            held = await store.held_of(session, [(i.origin, i.seq, i.id) for i in items])
        escrowed = await batchread.escrowed(session, heads, escrow, items)
        audiences = [*items, *escrowed.values()]  # escrowed ones are checked again (batch.py)
        return View(
            self_id=self._self,
            states=states,
            peer_states=batch.peer_states,
            declared_us=await self._declared_us(session, audiences),
            coalitions=await batchread.coalition_states(session, audiences),
            held=held,
            heads=heads,
            escrow=escrow,
            escrow_items=escrowed,
        )

    async def _declared_us(self, session: AsyncSession, items: list[Item]) -> set[bytes]:
        """Origins that declared this node allied, among those of ``allies`` envelopes (the
        only audience that asks)."""
        origins = {i.origin for i in items if i.signed is not None and i.audience == "allies"}
        return await alliances.declared_allied(session, origins, self._self) if origins else set()

    async def _state(self, session: AsyncSession, origin: bytes) -> KeyState | None:
        try:
            return await self._keylogs.state(session, origin)
        except KeyLogError:
            log.exception("stored key log of %s does not verify", origin.hex())
            return None


def _lost_race(exc: DBAPIError) -> bool:
    """Whether the transaction failed only because another one got there first: a key taken
    meanwhile, a deadlock, a serialization failure (:data:`RETRY_SQLSTATES`)."""
    if isinstance(exc, IntegrityError):
        return True
    return getattr(exc.orig, "sqlstate", None) in RETRY_SQLSTATES


class _Once:
    """A first write (:data:`FirstWrite`) made in each transaction until one commits."""

    __slots__ = ("_write",)

    def __init__(self, write: FirstWrite | None) -> None:
        self._write = write

    async def __call__(self, session: AsyncSession) -> None:
        if self._write is not None:
            await self._write(session)

    def committed(self) -> None:
        self._write = None


@dataclass(slots=True)
class _Batch:
    """A batch decoded and verified, waiting for its turn. ``held``: its items held already,
    as read before the turn; another batch may have stored some since, which the write finds
    out (an envelope at a place taken by the same id is a duplicate; an id stored twice is an
    IntegrityError, and the batch starts again with ``held`` read anew)."""

    decoded: list[Item | str]
    checked: dict[int, Checked]
    states: dict[bytes, KeyState | None]  # as the items were verified against
    held: set[bytes] | None
    peer_states: dict[bytes, str]  # of the sender, the origins and every allied peer
    trusted: bytes | None  # the origin whose withheld entries are taken on its word
