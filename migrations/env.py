"""Alembic environment. The node passes an open connection (``tadamun db upgrade``); the
``alembic`` command line works too, given ``-x url=...`` or ``TADAMUN_DATABASE_URL``."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from node.storage.db import create_engine
from node.storage.models import Base

target_metadata = Base.metadata


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_from_url(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(run)
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get(
        "TADAMUN_DATABASE_URL", ""
    )
    if not url:
        raise SystemExit("give the database: alembic -x url=sqlite+aiosqlite:///PATH ...")
    asyncio.run(run_from_url(url))
