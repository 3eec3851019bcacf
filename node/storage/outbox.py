"""The outbox: one row per (peer, envelope) still to deliver, and each peer's delivery lease.

Every function takes an open session; the caller owns the transaction (STYLE.md §10, §12).
Rows are written in the transaction that stored the envelope, so a crash loses nothing; they
are deleted when the peer acknowledged or refused the envelope for good, or when it expired.

**Claiming a peer.** Several node processes may share one PostgreSQL database. Before
sending a batch to a peer, a process claims the peer by moving ``peers.next_attempt_at`` to
the end of a lease with one conditional UPDATE (:func:`claim_peer`): the first write of its
transaction, so on PostgreSQL it takes the peer's row lock (the second claimer waits, then
sees the committed lease and matches nothing) and on SQLite the database write lock. The
lease outlasts any request (connect and total timeouts plus a margin); a process that dies
mid-delivery leaves it to run out, then another process retries the same rows (receivers
de-duplicate by id, SPEC §5.4). When the attempt ends, :func:`finish_attempt` replaces the
lease with the real next attempt time. No column was added for this: the lease *is* the
next attempt time while a batch is in flight. A contact from the peer ends a backoff but
leaves a healthy peer's lease alone (:func:`node.storage.peers.record_contact`); only when
it arrives while a *retry* is in flight may a second process send that batch again, which
the receiver answers ``duplicate``.

**Waking workers.** :func:`note_wake` records, in ``session.info``, which peers have new
work, and :func:`note_contact` which peers reached us (ending their backoff); a listener
installed by the delivery manager (:func:`on_commit`) hands them to the in-process workers
once the transaction has committed, never before, so a worker never looks for rows that are
not visible yet. A rolled-back transaction wakes nobody.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from node.storage import wakeups
from node.storage.models import EnvelopeRow, OutboxEntry, Peer

__all__ = [
    "Pending",
    "claim_peer",
    "count_pending",
    "delete_entries",
    "delete_expired",
    "finish_attempt",
    "list_batch",
    "list_peers_with_pending",
    "mark_attempted",
    "note_contact",
    "note_wake",
    "on_commit",
    "put_entries",
]

_WAKE: Final = "tadamun.outbox.wake"
_CONTACT: Final = "tadamun.outbox.contact"


@dataclass(frozen=True, slots=True)
class Pending:
    """One outbox row with what sending it needs."""

    row_id: int
    envelope_id: bytes
    origin: bytes
    wire: bytes


def note_wake(session: AsyncSession | Session, peers: Iterable[bytes]) -> None:
    """Wake the workers of ``peers`` once this transaction commits (see :func:`on_commit`)."""
    session.info.setdefault(_WAKE, set()).update(peers)


def note_contact(session: AsyncSession | Session, peer: bytes) -> None:
    """``peer`` reached us, which ends its backoff: once this transaction commits, a worker
    waiting out that backoff tries again at once (a peer without rows wakes nothing)."""
    session.info.setdefault(_CONTACT, set()).add(peer)


def on_commit(
    sessions: async_sessionmaker[Any],
    wake: Callable[[Collection[bytes]], None],
    contacted: Callable[[Collection[bytes]], None],
) -> Callable[[], None]:
    """After each commit of a session made by ``sessions``, call ``wake`` with the peers
    noted by :func:`note_wake` and ``contacted`` with those noted by :func:`note_contact`;
    return the function that stops listening."""
    stops = (wakeups.listen(sessions, _WAKE, wake), wakeups.listen(sessions, _CONTACT, contacted))

    def stop() -> None:
        for each in stops:
            each()

    return stop


async def put_entries(
    session: AsyncSession,
    peers: Sequence[bytes],
    envelope_id: bytes,
    *,
    now: int,
    expires_at: int | None,
) -> int:
    """One row per peer for ``envelope_id`` (a row already there is kept); how many were new."""
    if not peers:
        return 0
    values = [
        {"peer": p, "envelope_id": envelope_id, "created_at": now, "expires_at": expires_at,
         "attempts": 0}
        for p in peers
    ]  # fmt: skip
    dialect = session.get_bind().dialect.name
    maker = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = maker(OutboxEntry).values(values).on_conflict_do_nothing()
    result = cast(CursorResult[Any], await session.execute(statement))
    return max(result.rowcount, 0)


async def list_batch(
    session: AsyncSession, peer: bytes, *, limit: int, max_bytes: int
) -> list[Pending]:
    """The oldest rows for ``peer``, in the order they were written, at most ``limit`` of
    them and (after the first) at most ``max_bytes`` of envelope bytes together."""
    rows = await session.execute(
        select(OutboxEntry.id, OutboxEntry.envelope_id, EnvelopeRow.origin, EnvelopeRow.wire)
        .join(EnvelopeRow, EnvelopeRow.id == OutboxEntry.envelope_id)
        .where(OutboxEntry.peer == peer)
        .order_by(OutboxEntry.id)
        .limit(limit)
    )
    batch: list[Pending] = []
    size = 0
    for row_id, envelope_id, origin, wire in rows:
        if wire is None:  # a withheld entry is never enqueued; nothing to send if it were
            continue
        size += len(wire)
        if batch and size > max_bytes:
            break
        batch.append(Pending(row_id, envelope_id, origin, wire))
    return batch


async def mark_attempted(session: AsyncSession, row_ids: Collection[int]) -> None:
    if row_ids:
        await session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.id.in_(tuple(row_ids)))
            .values(attempts=OutboxEntry.attempts + 1)
            .execution_options(synchronize_session=False)
        )


async def delete_entries(session: AsyncSession, row_ids: Collection[int]) -> None:
    if row_ids:
        await session.execute(
            delete(OutboxEntry)
            .where(OutboxEntry.id.in_(tuple(row_ids)))
            .execution_options(synchronize_session=False)
        )


async def delete_expired(session: AsyncSession, peer: bytes, now: int) -> int:
    """Drop ``peer``'s rows whose envelope expired (SPEC §6.5: the only planned drop)."""
    result = cast(
        CursorResult[Any],
        await session.execute(
            delete(OutboxEntry)
            .where(
                OutboxEntry.peer == peer,
                OutboxEntry.expires_at.is_not(None),
                OutboxEntry.expires_at <= now,
            )
            .execution_options(synchronize_session=False)
        ),
    )
    return max(result.rowcount, 0)


async def count_pending(session: AsyncSession, peer: bytes) -> int:
    query = select(func.count()).select_from(OutboxEntry).where(OutboxEntry.peer == peer)
    return int(await session.scalar(query) or 0)


async def list_peers_with_pending(session: AsyncSession, states: Collection[str]) -> list[bytes]:
    """Peers in ``states`` that have rows waiting."""
    query = (
        select(Peer.node_id)
        .where(Peer.state.in_(tuple(states)))
        .where(select(OutboxEntry.id).where(OutboxEntry.peer == Peer.node_id).exists())
    )
    return list(await session.scalars(query))


async def claim_peer(
    session: AsyncSession, peer: bytes, states: Collection[str], *, now: int, lease_until: int
) -> bool:
    """Take ``peer`` for one delivery attempt until ``lease_until``, if it is in ``states``
    and due (``next_attempt_at <= now``); False if it is not due or another process has it."""
    result = cast(
        CursorResult[Any],
        await session.execute(
            update(Peer)
            .where(
                Peer.node_id == peer,
                Peer.state.in_(tuple(states)),
                Peer.next_attempt_at <= now,
            )
            .values(next_attempt_at=lease_until)
            .execution_options(synchronize_session=False)
        ),
    )
    return result.rowcount == 1


async def finish_attempt(
    session: AsyncSession,
    peer: bytes,
    *,
    lease_until: int,
    next_attempt_at: int,
    failures: int | None,
    delivered_at: int | None,
    error: str | None,
) -> None:
    """End the attempt begun under the lease ``lease_until``: set the next attempt time, and
    the failure count (None: unchanged), the last delivery time and the last error when
    given. If the lease is no longer there (a contact from the peer reset it to 0,
    :func:`node.storage.peers.record_contact`), the reset stands and the failure count too."""
    values: dict[str, Any] = {}
    if delivered_at is not None:
        values["last_delivery_at"] = delivered_at
    if error is not None:
        values["last_error"] = error[:256]
    base = update(Peer).where(Peer.node_id == peer).execution_options(synchronize_session=False)
    held = cast(
        CursorResult[Any],
        await session.execute(
            base.where(Peer.next_attempt_at == lease_until).values(
                next_attempt_at=next_attempt_at,
                **({} if failures is None else {"failures": failures}),
                **values,
            )
        ),
    )
    if held.rowcount != 1 and values:
        await session.execute(base.values(**values))
