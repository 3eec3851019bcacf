"""The ``tadamun`` command line. Each subcommand is one small function; ``--help`` lists them."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from protocol import fingerprint

from .app import create_app, settle_heap
from .cli_calls import add_call_commands
from .cli_coalitions import add_coalition_commands
from .cli_keys import add_key_commands
from .cli_members import add_member_commands
from .cli_peers import add_peer_commands
from .clock import SystemClock
from .config import CONFIG_FILE, DB_FILE, Config, ConfigError, load_config
from .demo import add_demo_command
from .identity import Identity, new_identity, write_identity
from .selfcheck import run_selfcheck
from .services.secrets import SecretMissing
from .services.setup import record_identity
from .services.signer import SignerError
from .storage.db import (
    NotMigrated,
    create_engine,
    migration_state,
    require_migrated,
    session_factory,
    upgrade,
)

__all__ = ["main"]

EXIT_USAGE = 2
FLAG_SETTINGS = {
    "name": "node.name",
    "host": "server.host",
    "port": "server.port",
    "public_url": "server.public_url",
    "database_url": "database.url",
}


def _version() -> str:
    try:
        return version("tadamun")
    except PackageNotFoundError:
        return "unknown"


def _config(args: argparse.Namespace) -> Config:
    flags = {setting: getattr(args, dest, None) for dest, setting in FLAG_SETTINGS.items()}
    return load_config(Path(args.data_dir), os.environ, flags)


def _selfcheck(_: argparse.Namespace) -> int:
    return 0 if run_selfcheck(SystemClock().now(), print) else 1


def _config_check(args: argparse.Namespace) -> int:
    config = _config(args)
    print(f"configuration in {config.data_dir} is valid")
    print(f"  node name:  {config.node.name}")
    print(f"  listens on: {config.server.host}:{config.server.port} ({config.server.base_url})")
    print(f"  database:   {config.database.url.split('://')[0]}")
    return 0


def _init(args: argparse.Namespace) -> int:
    """Validate everything first, store the identity, and write files last (the config file
    marks a data directory as holding a node), so a refused or failed init can be retried."""
    data_dir = Path(args.data_dir)
    if not 1 <= args.threshold <= args.officers <= 16:
        print("tadamun: need 1 <= --threshold <= --officers <= 16", file=sys.stderr)
        return EXIT_USAGE
    if (data_dir / CONFIG_FILE).exists():
        print(
            f"tadamun: {data_dir} already holds a node; refusing to overwrite it", file=sys.stderr
        )
        return EXIT_USAGE
    config = _config(args)  # raises ConfigError before anything is written
    return asyncio.run(_init_async(config, args))


async def _init_async(config: Config, args: argparse.Namespace) -> int:
    now = SystemClock().now()
    identity = new_identity(args.officers, args.threshold, now)
    config.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    database_file = config.data_dir / DB_FILE
    had_database = database_file.exists()
    engine = create_engine(config.database.url)
    try:
        await upgrade(engine)
        token = await record_identity(session_factory(engine), identity, config.node.name, now)
    except (SQLAlchemyError, OSError) as exc:
        print(f"tadamun: init failed, nothing was kept: {exc}", file=sys.stderr)
        if config.database.is_sqlite and not had_database:
            database_file.unlink(missing_ok=True)
        return 1
    finally:
        await engine.dispose()
    officers_dir = write_identity(config.data_dir, identity)
    (config.data_dir / CONFIG_FILE).write_text(_config_text(args), encoding="utf-8")
    _print_welcome(config, identity, officers_dir, token)
    return 0


def _config_text(args: argparse.Namespace) -> str:
    """The node's tadamun.toml; json.dumps writes a valid TOML basic string."""
    text = f"[node]\nname = {json.dumps(args.name, ensure_ascii=False)}\n"
    if args.database_url:
        text += f"\n[database]\nurl = {json.dumps(args.database_url, ensure_ascii=False)}\n"
    return text


def _print_welcome(config: Config, identity: Identity, officers_dir: Path, token: str) -> None:
    node_id = identity.state.node_id
    event = identity.inception.event
    print(f"Created node {config.node.name!r} in {config.data_dir}")
    print(f"  node id:     {node_id.hex()}")
    print(f"  fingerprint: {fingerprint(node_id)}")
    print(
        f"\nOfficer keys: {len(event.officers)}, any {event.threshold} of which act together "
        f"for the node; with {len(event.next)} pre-committed next-officer keys, they are in:"
    )
    print(f"  {officers_dir}")
    print("MOVE THEM OFFLINE NOW: give each officer their own key file on their own device,")
    print("keep the next-officer keys apart from the current ones, then delete the directory")
    print("from this server. Whoever seizes the server must not find them.")
    print("\nOne-time admin invite (valid 7 days):")
    print(f"  {config.server.base_url}/join/{token}")
    print(f"\nStart the node with: tadamun serve --data-dir {config.data_dir}")


def _db_upgrade(args: argparse.Namespace) -> int:
    async def run() -> None:
        engine = create_engine(_config(args).database.url)
        try:
            await upgrade(engine)
            state = await migration_state(engine)
        finally:
            await engine.dispose()
        print(f"database schema at revision {state.current} (head {state.head})")

    asyncio.run(run())
    return 0


def _serve(args: argparse.Namespace) -> int:
    config = _config(args)
    try:
        asyncio.run(_check_schema(config))
        app = create_app(config)  # reads the local secret
    except (NotMigrated, SecretMissing) as exc:
        print(f"tadamun: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SignerError as exc:  # the operational key file is missing or unreadable
        print(f"tadamun: {exc}", file=sys.stderr)
        return EXIT_USAGE
    asyncio.run(_serve_async(config, app))
    return 0


async def _check_schema(config: Config) -> None:
    engine = create_engine(config.database.url)
    try:
        await require_migrated(engine)
    finally:
        await engine.dispose()


async def _serve_async(config: Config, app: web.Application) -> None:
    # No access log: it would record members' IP addresses (privacy by default, DESIGN §4).
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=config.server.shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, config.server.host, config.server.port)
    await site.start()
    settle_heap()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    for address in runner.addresses:  # the real port, also when asked for port 0
        host, port = address[:2]
        print(f"tadamun: serving {config.node.name!r} on http://{host}:{port}", flush=True)
    await stop.wait()
    print("tadamun: shutting down", flush=True)
    await runner.cleanup()


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", required=True, help="the node's data directory")


def _add_server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (server.host)")
    parser.add_argument("--port", type=int, help="port to listen on, 0 for any (server.port)")
    parser.add_argument("--public-url", help="URL the node is reached at (server.public_url)")


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_: str,
    handler: Callable[[argparse.Namespace], int],
) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_, description=help_)
    parser.set_defaults(handler=handler)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tadamun",
        description="Tadamun: a federated organising server for independent organisations.",
    )
    parser.add_argument("--version", action="version", version=f"tadamun {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = _command(commands, "init", "create a node: data directory, keys, database", _init)
    _add_data_dir(init)
    init.add_argument("--name", default="Tadamun node", help="the organisation's name")
    init.add_argument("--officers", type=int, default=1, help="officer keys to create (n)")
    init.add_argument("--threshold", type=int, default=1, help="officers who act together (k)")
    init.add_argument("--database-url", help="PostgreSQL URL; default: SQLite in the data dir")

    serve = _command(commands, "serve", "run the node's HTTP server", _serve)
    _add_data_dir(serve)
    _add_server_flags(serve)
    serve.add_argument("--database-url", help="override database.url")

    db = _command(commands, "db", "database maintenance", lambda _: EXIT_USAGE)
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    db_upgrade = _command(db_commands, "upgrade", "migrate the schema to the latest", _db_upgrade)
    _add_data_dir(db_upgrade)
    db_upgrade.add_argument("--database-url", help="override database.url")

    config = _command(commands, "config", "configuration", lambda _: EXIT_USAGE)
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="SUB")
    check = _command(config_commands, "check", "validate the configuration", _config_check)
    _add_data_dir(check)
    _add_server_flags(check)
    check.add_argument("--database-url", help="override database.url")

    _command(commands, "selfcheck", "prove the protocol core works on this machine", _selfcheck)
    add_member_commands(commands)
    add_call_commands(commands)
    add_peer_commands(commands)
    add_coalition_commands(commands)
    add_key_commands(commands)
    add_demo_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    os.umask(0o077)  # databases, WAL files and keys are for the node's user alone
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print("tadamun: the configuration has problems:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
