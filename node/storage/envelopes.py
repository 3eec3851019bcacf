"""Signed logs: envelopes by origin (this node's and others'), and key events (SPEC §4, §5.2).

Every function takes an open session; the caller owns the transaction. Sequence numbers are
allocated under a lock (:func:`lock_own_log`) and the ``seq`` primary key is the last guard:
a second writer of one number gets :class:`Conflict`, never a fork.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from node.storage.errors import Conflict, NotFound
from node.storage.models import EnvelopeRow, KeyEventRow, Setting

__all__ = [
    "count_envelopes",
    "get_envelope",
    "get_last_envelope",
    "get_latest_of_type",
    "get_node_id",
    "list_envelopes",
    "list_key_events",
    "lock_own_log",
    "put_envelope",
]

NODE_ID_SETTING = "node_id"


async def lock_own_log(session: AsyncSession) -> None:
    """Serialise signers until this transaction ends, on SQLite and PostgreSQL alike.

    A no-op UPDATE of the ``node_id`` setting row takes a row lock on PostgreSQL (the next
    signer waits, then reads the committed maximum under READ COMMITTED) and the database
    write lock on SQLite. Call it before reading the last sequence number.
    """
    result = await session.execute(
        update(Setting)
        .where(Setting.key == NODE_ID_SETTING)
        .values(value=Setting.value)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise NotFound("setting node_id: the node is not initialised")


async def get_node_id(session: AsyncSession) -> bytes:
    value = await session.scalar(select(Setting.value).where(Setting.key == NODE_ID_SETTING))
    if value is None:
        raise NotFound("setting node_id: the node is not initialised")
    return bytes.fromhex(value)


async def list_key_events(session: AsyncSession, node_id: bytes) -> list[bytes]:
    """The wire bytes of ``node_id``'s stored key events, by position."""
    rows = await session.scalars(
        select(KeyEventRow.wire).where(KeyEventRow.node_id == node_id).order_by(KeyEventRow.pos)
    )
    return list(rows)


async def get_last_envelope(session: AsyncSession, origin: bytes) -> tuple[int, bytes] | None:
    """The highest sequence number held of ``origin`` and that envelope's id, or None."""
    row = (
        await session.execute(
            select(EnvelopeRow.seq, EnvelopeRow.id)
            .where(EnvelopeRow.origin == origin)
            .order_by(EnvelopeRow.seq.desc())
            .limit(1)
        )
    ).first()
    return None if row is None else (row.seq, row.id)


async def get_latest_of_type(
    session: AsyncSession, origin: bytes, type_: str
) -> EnvelopeRow | None:
    """``origin``'s held (not withheld) envelope of ``type_`` with the highest ``seq``."""
    rows = await session.scalars(
        select(EnvelopeRow)
        .where(
            EnvelopeRow.origin == origin,
            EnvelopeRow.type == type_,
            EnvelopeRow.wire.is_not(None),
        )
        .order_by(EnvelopeRow.seq.desc())
        .limit(1)
    )
    return rows.first()


async def put_envelope(session: AsyncSession, envelope: EnvelopeRow) -> None:
    """Store a signed envelope; an ``(origin, seq)`` or id already held is a Conflict (the
    transaction is then spoilt: the caller rolls it back)."""
    session.add(envelope)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"envelope seq {envelope.seq} of {envelope.origin.hex()} is taken") from exc


async def get_envelope(session: AsyncSession, origin: bytes, seq: int) -> EnvelopeRow:
    envelope = await session.get(EnvelopeRow, (origin, seq))
    if envelope is None:
        raise NotFound(f"envelope seq {seq} of {origin.hex()}")
    return envelope


async def list_envelopes(
    session: AsyncSession, origin: bytes, after: int = 0, limit: int = 100
) -> list[EnvelopeRow]:
    """``origin``'s envelopes with ``seq > after``, in order, at most ``limit`` of them."""
    rows = await session.scalars(
        select(EnvelopeRow)
        .where(EnvelopeRow.origin == origin, EnvelopeRow.seq > after)
        .order_by(EnvelopeRow.seq)
        .limit(limit)
    )
    return list(rows)


async def count_envelopes(session: AsyncSession, origin: bytes) -> int:
    query = select(func.count()).select_from(EnvelopeRow).where(EnvelopeRow.origin == origin)
    return int(await session.scalar(query) or 0)
