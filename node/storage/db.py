"""The database engine, sessions and migration state (DESIGN §4).

SQLite (aiosqlite) in the data directory by default, with WAL and foreign keys on for every
connection; PostgreSQL (asyncpg) by URL. Alembic is the only way the schema changes: the
node refuses to serve an unmigrated database and names the command that fixes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session

__all__ = [
    "MIGRATIONS_DIR",
    "MigrationState",
    "NotMigrated",
    "create_engine",
    "downgrade",
    "migration_state",
    "session_factory",
    "upgrade",
]

MIGRATIONS_DIR: Final = Path(__file__).resolve().parents[2] / "migrations"
UPGRADE_HINT: Final = "run `tadamun db upgrade --data-dir DIR` first"


class NotMigrated(RuntimeError):
    """The database schema is not at the head revision."""


@dataclass(frozen=True, slots=True)
class MigrationState:
    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def create_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Deleted rows are overwritten, not left in free pages: erased secret-ballot voter keys
    # must not be recoverable from a seized disk.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[Any]:
    """Sessions on ``engine``. Each factory has its own Session subclass (as a synchronous
    ``sessionmaker`` has), so session events can be listened to for one application alone:
    delivery wakes its workers after commits (``node.storage.outbox.on_commit``)."""
    own_class = type("NodeSession", (Session,), {})
    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=own_class)


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def migration_state(engine: AsyncEngine) -> MigrationState:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("no migrations found in " + str(MIGRATIONS_DIR))
    async with engine.connect() as connection:
        current = await connection.run_sync(_current)
    return MigrationState(current=current, head=head)


async def require_migrated(engine: AsyncEngine) -> MigrationState:
    state = await migration_state(engine)
    if not state.up_to_date:
        raise NotMigrated(
            f"database is at revision {state.current or 'none'}, not {state.head}: {UPGRADE_HINT}"
        )
    return state


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    async with engine.begin() as connection:
        await connection.run_sync(lambda c: command.upgrade(alembic_config(c), revision))


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(lambda c: command.downgrade(alembic_config(c), revision))
