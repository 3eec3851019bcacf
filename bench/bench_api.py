"""JSON API throughput of a real node: listing proposals, and casting (changing) votes, by
many concurrent clients (issue 3).

The node runs in its own process (``create_app`` on an aiohttp server at 127.0.0.1, port 0),
on SQLite in a temporary directory, and on PostgreSQL too when ``--postgres URL`` or
``TADAMUN_TEST_POSTGRES_URL`` names a server (a fresh database is created there and dropped
afterwards). The clients run in this process: each has its own aiohttp session and its own
member's API token. Setup goes through the API: the founder registers with the node's first
invite, members join with invites and make tokens, the founder opens proposals.

Then, per database, ``--clients`` clients run each scenario for ``--seconds`` (or until
``--max-requests``), and the table shows requests per second and p50/p99 latency:

- ``GET /proposals``: the first page (50) of proposals, as a member's app would load it;
- ``PUT .../vote``: a vote on a random open proposal, a random choice: after each client's
  first vote on a proposal, every vote changes an existing ballot.

Passwords use cheap Argon2 parameters (login is not measured). Figures are printed, never
asserted. Run: ``python bench/bench_api.py [--postgres URL] [--clients 50] [--seconds 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import random
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg  # type: ignore[import-untyped]
from aiohttp import web

from node.app import create_app
from node.config import load_config
from node.identity import new_identity, write_identity
from node.services.passwords import Argon2Params, PasswordHasher
from node.services.setup import record_identity
from node.storage.db import create_engine, session_factory, upgrade

POSTGRES_ENV = "TADAMUN_TEST_POSTGRES_URL"
PASSWORD = "a bench password"  # noqa: S105 - the bench members' password
CHEAP = Argon2Params(memory_kib=64, iterations=1, lanes=1)
DAY = 86_400
BODY = "The committee proposes that we join the regional strike. " * 8  # ~450 bytes


# --- the node, in its own process -------------------------------------------------------------


def serve(database_url: str, data_dir: str, pipe: Connection) -> None:
    """The child process: set up a node, tell the parent its port and first invite, serve
    until the parent says stop. A failure is sent to the parent, which stops the process."""
    try:
        asyncio.run(_serve(database_url, Path(data_dir), pipe))
    except Exception as exc:
        pipe.send(f"the node failed: {exc!r}")
        raise


async def _serve(database_url: str, data_dir: Path, pipe: Connection) -> None:
    identity = new_identity(1, 1, int(time.time()))
    write_identity(data_dir, identity)
    engine = create_engine(database_url)
    await upgrade(engine)
    invite = await record_identity(
        session_factory(engine), identity, "Bench union", int(time.time())
    )
    await engine.dispose()
    config = load_config(data_dir, {}, {"database.url": database_url})
    runner = web.AppRunner(create_app(config, hasher=PasswordHasher(CHEAP)), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    pipe.send((port, invite, config.server.base_url))
    try:
        while await asyncio.to_thread(pipe.recv) == "cpu":  # else "stop"
            pipe.send(time.process_time())  # all of the node's threads
    except EOFError:  # the parent is gone
        pass
    finally:
        await runner.cleanup()


# --- clients ----------------------------------------------------------------------------------


@dataclass
class Api:
    base: str
    session: aiohttp.ClientSession
    token: str = ""
    origin: str = ""  # the node's own origin, which cookie-authenticated writes must name

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if self.origin:
            headers["Origin"] = self.origin
        async with self.session.request(
            method, self.base + path, json=body, headers=headers
        ) as response:
            return response.status, await response.json(content_type=None)

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = await self.call(method, path, body)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: {status} {answer}")
        return answer


async def member_token(api: Api, invite: str, pseudonym: str) -> str:
    """Join with ``invite``, log in and make an API token."""
    await api.ok("POST", "/register", {"invite": invite, "pseudonym": pseudonym,
                                       "password": PASSWORD})  # fmt: skip
    jar = aiohttp.CookieJar(unsafe=True)  # keeps cookies of an IP address host
    async with aiohttp.ClientSession(cookie_jar=jar) as own:
        logged_in = Api(api.base, own, origin=api.origin)
        await logged_in.ok("POST", "/login", {"pseudonym": pseudonym, "password": PASSWORD})
        return str((await logged_in.ok("POST", "/me/tokens", {"name": "bench"}))["token"])


async def populate(
    base: str, origin: str, invite: str, members: int, proposals: int
) -> tuple[list[str], list[str]]:
    """The members' tokens and the open proposals' ids."""
    async with aiohttp.ClientSession() as session:
        admin = Api(base, session, origin=origin)
        admin.token = await member_token(admin, invite, "founder")
        joined = await admin.ok("POST", "/invites", {"uses": members, "expires_hours": 24})
        tokens = await asyncio.gather(
            *(member_token(Api(base, session, origin=origin), joined["token"], f"member{i:04d}")
              for i in range(members))
        )  # fmt: skip
        now = int(time.time())
        ids = []
        for i in range(proposals):
            draft = {
                "title": f"Proposal {i}: join the strike?", "body": BODY,
                "options": ["yes", "no", "later"], "method": "majority",
                "quorum": {"num": 1, "den": 4}, "ballot": "secret" if i % 2 else "open",
                "closes_at": now + DAY,
            }  # fmt: skip
            ids.append((await admin.ok("POST", "/proposals", draft))["id"])
        return list(tokens), ids


@dataclass
class Figures:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed: float = 0.0
    cpu: float = 0.0  # seconds of the node process's CPU time

    def row(self, database: str, scenario: str) -> str:
        done = len(self.latencies)
        ordered = sorted(self.latencies) or [0.0]
        p50 = statistics.median(ordered) * 1000
        p99 = ordered[min(len(ordered) - 1, int(done * 0.99))] * 1000
        rate = done / self.elapsed
        cpu = self.cpu / max(done, 1) * 1000
        return (f"{database:<10} {scenario:<26} {done:>8} {rate:>8.0f} {p50:>8.1f} {p99:>8.1f}"
                f" {cpu:>9.2f} {self.errors:>7}")  # fmt: skip


Request = Callable[[Api, random.Random], Awaitable[int]]


async def node_cpu(pipe: Connection) -> float:
    pipe.send("cpu")
    return float(await asyncio.to_thread(pipe.recv))


async def run_clients(
    base: str, tokens: list[str], request: Request, seconds: float, max_requests: int
) -> Figures:
    """Each token is one client with its own connection; all run until time or count is up."""
    figures = Figures()
    deadline = time.perf_counter() + seconds
    budget = [max_requests]

    async def client(token: str, seed: int) -> None:
        rng = random.Random(seed)  # choosing test traffic, not secrets
        async with aiohttp.ClientSession() as session:
            api = Api(base, session, token)
            while time.perf_counter() < deadline and budget[0] > 0:
                budget[0] -= 1
                started = time.perf_counter()
                status = await request(api, rng)
                figures.latencies.append(time.perf_counter() - started)
                figures.errors += status >= 300

    started = time.perf_counter()
    await asyncio.gather(*(client(token, i) for i, token in enumerate(tokens)))
    figures.elapsed = time.perf_counter() - started
    return figures


def list_proposals() -> Request:
    async def request(api: Api, _: random.Random) -> int:
        return (await api.call("GET", "/proposals"))[0]

    return request


def vote(proposals: list[str]) -> Request:
    async def request(api: Api, rng: random.Random) -> int:
        choice = rng.choice([{"choice": "option", "option": rng.randrange(3)},
                             {"choice": "abstain"}])  # fmt: skip
        return (await api.call("PUT", f"/proposals/{rng.choice(proposals)}/vote", choice))[0]

    return request


# --- one database -------------------------------------------------------------------------------


async def bench_database(name: str, database_url: str, args: argparse.Namespace) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="tadamun-bench-") as tmp:
        data_dir = Path(tmp) / "node"
        data_dir.mkdir(mode=0o700)
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(target=serve, args=(database_url, str(data_dir), child))
        process.start()
        try:
            started = await asyncio.to_thread(parent.recv)
            if isinstance(started, str):
                raise SystemExit(started)
            port, invite, origin = started
            base = f"http://127.0.0.1:{port}/api/v1"
            tokens, proposals = await populate(base, origin, invite, args.clients, args.proposals)
            rows = []
            for scenario, request in (("GET /proposals", list_proposals()),
                                      ("PUT /proposals/{id}/vote", vote(proposals))):  # fmt: skip
                cpu = await node_cpu(parent)
                figures = await run_clients(base, tokens, request, args.seconds, args.max_requests)
                figures.cpu = await node_cpu(parent) - cpu
                rows.append(figures.row(name, scenario))
            return rows
        finally:
            with contextlib.suppress(OSError):  # BrokenPipeError if the node has died
                parent.send("stop")
            await asyncio.to_thread(process.join, 10)
            if process.is_alive():
                process.terminate()


def _asyncpg_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=parts.scheme.split("+")[0]))


async def _execute(url: str, statement: str) -> None:
    connection = await asyncpg.connect(_asyncpg_url(url))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def bench_postgres(server: str, args: argparse.Namespace) -> list[str]:
    name = f"tadamun_bench_{secrets.token_hex(6)}"
    await _execute(server, f'CREATE DATABASE "{name}"')
    try:
        parts = urlsplit(server)
        url = urlunsplit(("postgresql+asyncpg", parts.netloc, f"/{name}", parts.query, ""))
        return await bench_database("postgresql", url, args)
    finally:
        await _execute(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def main_async(args: argparse.Namespace) -> None:
    header = (f"{'database':<10} {'scenario':<26} {'requests':>8} {'req/s':>8} {'p50 ms':>8}"
              f" {'p99 ms':>8} {'node CPU':>9} {'errors':>7}")  # fmt: skip
    print(f"{args.clients} clients, {args.seconds:g} s per scenario (at most "
          f"{args.max_requests} requests), {args.proposals} open proposals, "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    print(header + "\n" + " " * (len(header) - 18) + "ms/request")
    with tempfile.TemporaryDirectory(prefix="tadamun-bench-db-") as tmp:
        for row in await bench_database("sqlite", f"sqlite+aiosqlite:///{tmp}/tadamun.db", args):
            print(row, flush=True)
    server = args.postgres or os.environ.get(POSTGRES_ENV, "")
    if server:
        for row in await bench_postgres(server, args):
            print(row, flush=True)
    else:
        print(f"(PostgreSQL skipped: pass --postgres URL or set {POSTGRES_ENV})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--postgres", default="", help="a PostgreSQL server to create a database on"
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0, help="per scenario")
    parser.add_argument("--max-requests", type=int, default=50_000, help="per scenario")
    parser.add_argument("--proposals", type=int, default=20, help="open proposals")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
