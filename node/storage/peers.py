"""Peers: the nodes this one was introduced to, their state and their delivery health.

Every function takes an open session; the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.storage import outbox
from node.storage.models import OutboxEntry, Peer
from node.storage.rawsql import Raw

__all__ = [
    "ALLIED",
    "BLOCKED",
    "INTRODUCED",
    "REMOVED",
    "STATES",
    "delete_outbox_of",
    "get_peer",
    "list_peers",
    "pending_by_peer",
    "put_peer",
    "record_contact",
]

INTRODUCED: Final = "introduced"  # keys exchanged; an admin has not confirmed the alliance
ALLIED: Final = "allied"
BLOCKED: Final = "blocked"  # nothing accepted from it, nothing sent to it
REMOVED: Final = "removed"  # as if never introduced, but its key log is kept
STATES: Final = (INTRODUCED, ALLIED, BLOCKED, REMOVED)


async def get_peer(session: AsyncSession, node_id: bytes) -> Peer | None:
    return await session.get(Peer, node_id)


async def list_peers(
    session: AsyncSession, states: Collection[str] = STATES, *, after: bytes = b"", limit: int = 100
) -> list[Peer]:
    """Peers in any of ``states``, by node id, after ``after``, at most ``limit``."""
    rows = await session.scalars(
        select(Peer)
        .where(Peer.state.in_(tuple(states)), Peer.node_id > after)
        .order_by(Peer.node_id)
        .limit(limit)
    )
    return list(rows)


async def record_contact(session: AsyncSession, node_id: bytes, now: int) -> None:
    """An authenticated request came from ``node_id``: note it, and reset delivery backoff
    (DESIGN §4: any authenticated contact from a peer ends its backoff). A peer that is not
    failing keeps its next attempt time, which may be a delivery lease in flight
    (:func:`node.storage.outbox.claim_peer`)."""
    raw = await Raw.of(session)  # plain SQL: the inbox runs this once per batch
    await raw.execute(_CONTACT, (now, node_id))
    outbox.note_contact(session, node_id)  # a worker waiting out the backoff retries now


_CONTACT: Final = (
    "UPDATE peers SET last_contact_at = ?, failures = 0,"
    " next_attempt_at = CASE WHEN failures > 0 THEN 0 ELSE next_attempt_at END"
    " WHERE node_id = ?"
)


async def put_peer(session: AsyncSession, peer: Peer) -> Peer:
    """Add a new peer row (the caller has checked there is none)."""
    session.add(peer)
    await session.flush()
    return peer


async def pending_by_peer(session: AsyncSession) -> dict[bytes, int]:
    """Outbox entries still to deliver, per peer (peers with none are absent)."""
    rows = await session.execute(select(OutboxEntry.peer, func.count()).group_by(OutboxEntry.peer))
    return {peer: int(count) for peer, count in rows}


async def delete_outbox_of(session: AsyncSession, node_id: bytes) -> int:
    """Drop what was still to deliver to ``node_id`` (it was removed); returns how many."""
    result = await session.execute(
        delete(OutboxEntry)
        .where(OutboxEntry.peer == node_id)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
