"""Plain SQL for the inbox's hot path, in the caller's session and transaction.

A statement run through the ORM costs the event loop several hundred µs: building it, its
compiled form looked up, its result processed, and on SQLite three or four hops to
aiosqlite's thread and back (a cursor, the statement, its rows, the cursor closed), each
some tens of µs of the loop's time. An inbox batch of 256 envelopes runs a handful, which
cost the loop as much as decoding the batch. Here a statement is a fixed SQL string with
``?`` markers and a tuple of plain values (bytes, str, int, None: what the columns hold, no
type processing): on SQLite one hop (aiosqlite's ``execute_fetchall``), elsewhere
(PostgreSQL) ``exec_driver_sql`` with the markers numbered.

Errors are SQLAlchemy's (an ``IntegrityError`` for a key taken), as they would be from the
ORM, so callers handle one kind. Pending ORM objects are flushed first, as the ORM would;
objects the session holds are not refreshed by a statement here (like an ORM ``update()``
with ``synchronize_session=False``). :class:`Raw` is valid for the transaction it was
opened in.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Final, cast

from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

__all__ = ["Raw", "marks"]

Params = Sequence[Any]

_MARK: Final = re.compile(r"\?")
_HELD: Final = "rawsql.Raw"  # session.info: (the transaction, its Raw)


def marks(count: int) -> str:
    """``?, ?, ...``: ``count`` markers, for an ``IN (...)`` list."""
    return ", ".join("?" * count)


@lru_cache(maxsize=512)
def _numbered(sql: str) -> str:
    """``?`` markers as ``$1, $2, ...`` (asyncpg's paramstyle). The statements here hold no
    ``?`` other than markers."""
    count = iter(range(1, sql.count("?") + 1))
    return _MARK.sub(lambda _: f"${next(count)}", sql)


class Raw:
    """The driver connection behind a session's transaction."""

    __slots__ = ("_connection", "_sqlite")

    def __init__(self, connection: AsyncConnection, sqlite: Any) -> None:
        self._connection = connection
        self._sqlite = sqlite  # aiosqlite.Connection, or None on another database

    @classmethod
    async def of(cls, session: AsyncSession) -> Raw:
        """The connection of ``session``'s transaction (begun if it was not), with the
        session's pending objects flushed first, as the ORM would before a statement."""
        if session.new or session.dirty or session.deleted:
            await session.flush()
        transaction = session.sync_session.get_transaction()
        held = session.info.get(_HELD)
        if held is not None and transaction is not None and held[0] is transaction:
            return cast(Raw, held[1])  # the same transaction: the same connection
        connection = await session.connection()
        raw = cls(connection, None)
        sync = connection.sync_connection  # checked out just now: reading it does no I/O
        if connection.dialect.driver == "aiosqlite" and sync is not None:
            raw._sqlite = sync.connection.driver_connection
        session.info[_HELD] = (session.sync_session.get_transaction(), raw)
        return raw

    async def fetch(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """The rows of ``sql`` (any statement: one that returns none gives ``[]``)."""
        if self._sqlite is None:
            result = await self._connection.exec_driver_sql(_numbered(sql), tuple(params))
            return [tuple(row) for row in result] if result.returns_rows else []
        try:
            return list(await self._sqlite.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise _wrapped(sql, params, exc) from exc

    async def execute(self, sql: str, params: Params = ()) -> None:
        await self.fetch(sql, params)


def _wrapped(sql: str, params: Any, exc: sqlite3.Error) -> StatementError:
    """The SQLAlchemy exception the ORM would raise for ``exc`` (IntegrityError, ...)."""
    return DBAPIError.instance(sql, params, exc, sqlite3.Error)
