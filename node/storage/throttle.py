"""Repository of login-attempt counters, per account (a keyed hash of the pseudonym), never
per IP address. Counting is done in the database so concurrent attempts all count."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from node.storage.models import LoginThrottle

__all__ = [
    "clear_throttle",
    "count_attempt",
    "get_throttle",
    "lock_account",
    "prune_throttle",
]


async def get_throttle(session: AsyncSession, account_key: bytes) -> LoginThrottle | None:
    return await session.scalar(
        select(LoginThrottle).where(LoginThrottle.account_key == account_key)
    )


async def count_attempt(
    session: AsyncSession, account_key: bytes, now: int, window: int
) -> LoginThrottle:
    """Count one login attempt before it is checked, in one upsert, so concurrent attempts
    are all counted; a new window starts once the last one has passed, and attempts made
    while the account is locked are not counted. Returns the row as it now stands."""
    table = LoginThrottle
    stale = table.window_start <= now - window
    locked = table.locked_until > now
    insert = _INSERTS[session.get_bind().dialect.name]
    failures = case((locked, table.failures), (stale, 1), else_=table.failures + 1)
    window_start = case((locked, table.window_start), (stale, now), else_=table.window_start)
    statement = (
        insert(table)
        .values(account_key=account_key, failures=1, window_start=now, locked_until=0)
        .on_conflict_do_update(
            index_elements=[table.account_key],
            set_={"failures": failures, "window_start": window_start},
        )
        .returning(table)
        .execution_options(populate_existing=True)
    )
    row: LoginThrottle = (await session.scalars(statement)).one()
    return row


async def lock_account(session: AsyncSession, account_key: bytes, now: int, until: int) -> None:
    """Lock the account until ``until``; counting starts afresh when the lock ends."""
    await session.execute(
        update(LoginThrottle)
        .where(LoginThrottle.account_key == account_key)
        .values(locked_until=until, failures=0, window_start=now)
        .execution_options(synchronize_session=False)
    )


_INSERTS: dict[str, Any] = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}


async def clear_throttle(session: AsyncSession, account_key: bytes) -> None:
    await session.execute(delete(LoginThrottle).where(LoginThrottle.account_key == account_key))


async def prune_throttle(session: AsyncSession, now: int, window: int) -> None:
    """Forget counters whose window and lock have both passed: they no longer matter."""
    await session.execute(
        delete(LoginThrottle).where(
            LoginThrottle.window_start <= now - window, LoginThrottle.locked_until <= now
        )
    )
