"""Transport-signature nonces already accepted (SPEC §10.8), one table for every process.

Every function takes an open session; the caller owns the transaction. The primary key
``(keyid, nonce)`` is what detects a replay, also between processes on one PostgreSQL
database: a second insert of a pair waits for the first transaction and then fails.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from node.storage.errors import Conflict
from node.storage.models import Nonce
from node.storage.rawsql import Raw

__all__ = ["PURGE_BATCH", "count_nonces", "delete_expired_nonces", "put_nonce"]

PURGE_BATCH: Final = 1_000  # a bound on one purge; more than a process accepts in a second


async def put_nonce(session: AsyncSession, keyid: bytes, nonce: str, expires_at: int) -> None:
    """Record a nonce; one recorded already is a :class:`Conflict` (the transaction is then
    spoilt: the caller rolls it back). Plain SQL: every federation request runs it."""
    raw = await Raw.of(session)
    try:
        await raw.execute(_PUT, (keyid, nonce, expires_at))
    except IntegrityError as exc:
        raise Conflict(f"nonce {nonce!r} of {keyid.hex()} was seen before") from exc


_PUT: Final = "INSERT INTO nonces (keyid, nonce, expires_at) VALUES (?, ?, ?)"


async def delete_expired_nonces(session: AsyncSession, now: int, limit: int = PURGE_BATCH) -> int:
    """Delete at most ``limit`` nonces with ``expires_at < now``; returns how many.

    On PostgreSQL rows another process is deleting are skipped (``SKIP LOCKED``), so two
    purges never wait for, or deadlock with, each other; SQLite has one writer anyway."""
    expired = (
        select(Nonce.keyid, Nonce.nonce)
        .where(Nonce.expires_at < now)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        delete(Nonce)
        .where(tuple_(Nonce.keyid, Nonce.nonce).in_(expired))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def count_nonces(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Nonce)) or 0)
