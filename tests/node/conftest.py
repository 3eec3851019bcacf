"""Fixtures for the node tests: a database URL for SQLite and, when a server is given, for
PostgreSQL too (STYLE.md §19).

``TADAMUN_TEST_POSTGRES_URL`` names a PostgreSQL server and a database to connect to (trust
auth is fine). Each PostgreSQL test gets a fresh database created on it and dropped after;
without the variable the PostgreSQL cases skip locally and fail in CI.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from node.storage.db import create_engine

POSTGRES_ENV = "TADAMUN_TEST_POSTGRES_URL"
SKIP_REASON = (
    "PostgreSQL tests need TADAMUN_TEST_POSTGRES_URL,"
    " e.g. postgresql://postgres@127.0.0.1:5432/test"
)


def _server_url() -> str:
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


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An SQLAlchemy URL of an empty database, on SQLite or on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'tadamun.db'}"
        return
    server = _server_url()
    name = f"tadamun_test_{secrets.token_hex(8)}"
    await _execute(server, f'CREATE DATABASE "{name}"')
    try:
        parts = urlsplit(server)
        yield urlunsplit(("postgresql+asyncpg", parts.netloc, f"/{name}", parts.query, ""))
    finally:
        await _execute(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The node's own engine (WAL and foreign keys on SQLite) for ``database_url``."""
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()
