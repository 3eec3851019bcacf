"""Alembic is the only way the schema changes (STYLE.md §11): on SQLite and PostgreSQL, an
empty database is refused, ``upgrade`` reaches the models exactly, and downgrade/upgrade
round-trips."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import insert, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from node.storage.db import (
    NotMigrated,
    alembic_config,
    downgrade,
    migration_state,
    require_migrated,
    upgrade,
)
from node.storage.models import AuditEntry, Base, Invite, Member, Setting

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()
MODEL_TABLES = set(Base.metadata.tables)


def _schema_diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, Base.metadata))


def _table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return await connection.run_sync(_table_names)


def test_there_is_one_head() -> None:
    assert HEAD is not None
    assert {
        "settings", "key_events", "members", "invites", "audit_log", "sessions", "api_tokens",
        "login_throttle", "governance_policy", "proposals", "proposal_options", "ballots",
        "voter_roll", "envelopes", "origin_heads", "escrow", "fork_evidence", "peers",
        "peer_invites", "outbox", "nonces", "contact_log", "alliances",
        "calls", "call_early_cancels", "call_updates", "call_endorsements", "call_tallies",
        "call_activations", "pledges", "notifications", "coalitions", "coalition_events",
        "coalition_members",
    } == MODEL_TABLES  # fmt: skip


async def test_an_empty_database_is_not_migrated(engine: AsyncEngine) -> None:
    state = await migration_state(engine)
    assert state.current is None
    assert state.head == HEAD
    assert not state.up_to_date
    with pytest.raises(NotMigrated, match="tadamun db upgrade") as caught:
        await require_migrated(engine)
    assert "none" in str(caught.value)
    assert str(HEAD) in str(caught.value)


async def test_upgrade_reaches_head(engine: AsyncEngine) -> None:
    await upgrade(engine)
    state = await migration_state(engine)
    assert state.current == state.head == HEAD
    assert state.up_to_date
    assert await require_migrated(engine) == state
    assert await table_names(engine) == MODEL_TABLES | {"alembic_version"}


async def test_upgrade_twice_is_a_no_op(engine: AsyncEngine) -> None:
    await upgrade(engine)
    await upgrade(engine)
    assert (await migration_state(engine)).up_to_date


async def test_migrated_schema_matches_the_models(engine: AsyncEngine) -> None:
    await upgrade(engine)
    async with engine.connect() as connection:
        diff = await connection.run_sync(_schema_diff)
    assert diff == []


async def test_downgrade_to_base_and_upgrade_again(engine: AsyncEngine) -> None:
    await upgrade(engine)
    # Rows that reference each other, so the downgrade must drop tables in a valid order.
    async with engine.begin() as connection:
        member = await connection.scalar(
            insert(Member)
            .values(
                pseudonym="rima", role="admin", status="active",
                password_hash="x",  # noqa: S106 - a placeholder, not a password
                language="ar", created_at=1,
            )
            .returning(Member.id)
        )  # fmt: skip
        await connection.execute(
            insert(Invite).values(
                token_hash=b"\x01" * 32, role="member", uses_left=1, created_at=1,
                created_by=member,
            )
        )  # fmt: skip
        await connection.execute(
            insert(AuditEntry).values(
                at=1, actor_id=member, actor=f"member:{member}", action="x", detail="{}"
            )
        )
        await connection.execute(insert(Setting).values(key="name", value="n"))

    await downgrade(engine, "base")
    assert (await migration_state(engine)).current is None
    assert await table_names(engine) <= {"alembic_version"}
    with pytest.raises(NotMigrated):
        await require_migrated(engine)
    async with engine.connect() as connection:  # the comparison does see a difference
        missing = await connection.run_sync(_schema_diff)
    assert {(kind, table.name) for kind, table, *_ in missing} >= {
        ("add_table", name) for name in MODEL_TABLES
    }

    await upgrade(engine)
    assert (await migration_state(engine)).up_to_date
    assert await table_names(engine) == MODEL_TABLES | {"alembic_version"}
    async with engine.connect() as connection:
        assert (await connection.execute(select(Member))).all() == []
        assert await connection.run_sync(_schema_diff) == []


async def test_foreign_keys_are_enforced(engine: AsyncEngine) -> None:
    await upgrade(engine)
    with pytest.raises(IntegrityError):
        async with engine.begin() as connection:
            await connection.execute(
                insert(AuditEntry).values(at=1, actor_id=999, actor="member:999", action="x")
            )
    async with engine.connect() as connection:
        assert (await connection.execute(select(AuditEntry))).all() == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sqlite_connections_use_wal_and_foreign_keys(engine: AsyncEngine) -> None:
    # Two connections open at once: the pragmas hold for every connection, not just the first.
    async with engine.connect() as first, engine.connect() as second:
        for connection in (first, second):
            assert (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
            assert (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
