"""Fixtures for the node tests: a database URL for SQLite and, when a server is given, for
PostgreSQL too (STYLE.md §19).

``TADAMUN_TEST_POSTGRES_URL`` names a PostgreSQL server and a database to connect to (trust
auth is fine). Each PostgreSQL test gets a fresh database created on it and dropped after;
without the variable the PostgreSQL cases skip locally and fail in CI.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from database_support import create_database, drop_database, server_url
from sqlalchemy.ext.asyncio import AsyncEngine
from test_decisions_support import Node, start_node

from node.storage.db import create_engine


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An SQLAlchemy URL of an empty database, on SQLite or on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'tadamun.db'}"
        return
    server = server_url()
    name, url = await create_database(server)
    try:
        yield url
    finally:
        await drop_database(server, name)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The node's own engine (WAL and foreign keys on SQLite) for ``database_url``."""
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def node(engine: AsyncEngine, tmp_path: Path) -> Node:
    """A node's services over ``engine``, with its identity, keys and a fake clock."""
    return await start_node(engine, tmp_path)
