"""What the operator's sub-commands (members, peers, keys, calls) share: loading the node's
configuration, opening its migrated database, and running a command so that a refusal is
printed, not a traceback."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .config import CONFIG_FILE, Config, load_config
from .errors import NodeError
from .storage.db import NotMigrated, create_engine, require_migrated, session_factory

__all__ = ["EXIT_USAGE", "add_node_arguments", "node_config", "open_sessions", "run_command"]

EXIT_USAGE: Final = 2


def add_node_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every sub-command that works on a node's data directory takes."""
    parser.add_argument("--data-dir", required=True, help="the node's data directory")
    parser.add_argument("--database-url", help="override database.url")


def node_config(args: argparse.Namespace, flags: Mapping[str, str | None] | None = None) -> Config:
    """The configuration of the node in ``--data-dir``, with ``--database-url`` and ``flags``."""
    given = {"database.url": args.database_url, **(flags or {})}
    return load_config(Path(args.data_dir), os.environ, given)


@asynccontextmanager
async def open_sessions(config: Config) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the node's database, once its schema is at the head migration."""
    engine = create_engine(config.database.url)
    try:
        await require_migrated(engine)
        yield session_factory(engine)
    finally:
        await engine.dispose()


def run_command(
    args: argparse.Namespace,
    main: Callable[[], Awaitable[None]],
    *,
    unusable: str = "the database",
    usage_errors: tuple[type[Exception], ...] = (),
) -> int:
    """Run ``main()`` for the node in ``args.data_dir``; the exit status is 0, 1 for a
    refusal or an unusable database, 2 for a missing node or schema (or ``usage_errors``)."""
    if not (Path(args.data_dir) / CONFIG_FILE).exists():
        print(f"tadamun: {args.data_dir} holds no node; run `tadamun init`", file=sys.stderr)
        return EXIT_USAGE

    async def run() -> None:
        await main()

    usage: tuple[type[Exception], ...] = (NotMigrated, *usage_errors)
    try:
        asyncio.run(run())
    except (SQLAlchemyError, OSError) as exc:
        print(f"tadamun: {unusable} cannot be used: {exc}", file=sys.stderr)
        return 1
    except usage as exc:
        print(f"tadamun: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NodeError as exc:
        print(f"tadamun: {exc.message} ({exc.code})", file=sys.stderr)
        return 1
    return 0
