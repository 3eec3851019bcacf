"""Test databases (no tests here): fresh ones on the PostgreSQL server that
``TADAMUN_TEST_POSTGRES_URL`` names, for conftest.py's ``database_url`` and the multi-node
helpers; and a snapshot of every row, to show that a refused request changed nothing."""

from __future__ import annotations

import os
import secrets
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

POSTGRES_ENV = "TADAMUN_TEST_POSTGRES_URL"
SKIP_REASON = (
    "PostgreSQL tests need TADAMUN_TEST_POSTGRES_URL,"
    " e.g. postgresql://postgres@127.0.0.1:5432/test"
)


def server_url() -> str:
    """The PostgreSQL server to test against, or a skip (locally) or failure (in CI)."""
    url = os.environ.get(POSTGRES_ENV, "")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{POSTGRES_ENV} is not set: in CI the PostgreSQL tests must run")
        pytest.skip(SKIP_REASON)
    return url


def _asyncpg_url(url: str) -> str:
    """asyncpg takes postgresql:// or postgres://, not SQLAlchemy's postgresql+asyncpg://."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=parts.scheme.split("+")[0]))


async def _execute(url: str, statement: str) -> None:
    connection = await asyncpg.connect(_asyncpg_url(url))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def create_database(server: str) -> tuple[str, str]:
    """A fresh database on ``server``: its name, and its SQLAlchemy URL."""
    name = f"tadamun_test_{secrets.token_hex(8)}"
    await _execute(server, f'CREATE DATABASE "{name}"')
    parts = urlsplit(server)
    return name, urlunsplit(("postgresql+asyncpg", parts.netloc, f"/{name}", parts.query, ""))


async def drop_database(server: str, name: str) -> None:
    await _execute(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def table_rows(
    engine: AsyncEngine, *, skip: Collection[str] = (), queries: Mapping[str, str] | None = None
) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but ``skip``, sorted; ``queries`` replace a table's
    ``SELECT *`` (to leave out columns that change on their own)."""
    async with engine.connect() as connection:
        names = await connection.run_sync(_tables)
        found: dict[str, list[Any]] = {}
        for name in names:
            if name in skip:
                continue
            query = (queries or {}).get(name, f'SELECT * FROM "{name}"')  # noqa: S608
            found[name] = sorted((await connection.execute(text(query))).all(), key=repr)
        return found


def _tables(connection: Connection) -> list[str]:
    return sorted(inspect(connection).get_table_names())
