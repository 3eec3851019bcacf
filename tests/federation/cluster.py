"""Real nodes for the federation tests and the propagation benchmark: ``tadamun init`` and
``tadamun serve`` as subprocesses on 127.0.0.1, peered with ``tadamun peer invite`` and
``tadamun peer join``, killed with SIGTERM or SIGKILL. Every wait has a deadline.

The test process reads each node's database directly to see what it holds, and makes
envelopes through the storage layer (:meth:`NodeProcess.publish`: the node's own signer on
its own database, as a service in the node would); the serving process finds the outbox
rows within ``delivery_poll`` and delivers them the real way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from node.federation.keylogs import KeyLogs
from node.federation.wire import BatchResult, decode_inbox_request, encode_batch_result
from node.identity import Identity, new_identity
from node.services.signer import load_signer
from node.storage.db import create_engine, session_factory
from node.storage.models import EnvelopeRow, KeyEventRow, OriginHead, OutboxEntry, Peer, Setting
from protocol import KeyState, SignedEnvelope, SignedKeyEvent
from protocol.httpsig import verify_request
from protocol.keys import public_key

CLI: Final = (sys.executable, "-m", "node.cli")
DEADLINE: Final = 60.0  # seconds for one command, a start or a stop
SERVING: Final = re.compile(rb"serving .* on http://127\.0\.0\.1:(\d+)")
JOIN_LINK: Final = re.compile(r"/join/(\S+)")
NOTE: Final = "org.example.note"  # an extension type: stored and relayed, never applied
# Fast retries and polls, so that the tests wait seconds, not hours.
FEDERATION: Final = {
    "allow_networks": ["127.0.0.0/8"], "retry_base": 1, "retry_cap": 4, "delivery_poll": 1,
    "catchup_interval": 2, "connect_timeout": 2, "request_timeout": 5,
}  # fmt: skip

T = TypeVar("T")


def free_port() -> int:
    """A port nothing listens on now (bound on 127.0.0.1 with port 0, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def environment() -> dict[str, str]:
    """This environment without TADAMUN_* settings that would override a node's."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TADAMUN_")}


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


async def run(*args: str | Path, check: bool = True) -> str:
    """Run a ``tadamun`` command; its standard output (a failure raises with both)."""
    process = await asyncio.create_subprocess_exec(
        *CLI, *map(str, args), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=environment(),
    )  # fmt: skip
    async with asyncio.timeout(DEADLINE):
        out, err = await process.communicate()
    if check and process.returncode != 0:
        raise AssertionError(f"tadamun {args[0]} failed ({process.returncode}):\n{out!r}\n{err!r}")
    return out.decode()


async def poll(check: Callable[[], Awaitable[bool]], within: float = 30.0, what: str = "") -> None:
    """Wait until ``check()`` holds, every 50 ms, failing after ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            while not await check():  # noqa: ASYNC110 - other processes' state, no Event
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {within}s: {what or check}") from None


@dataclass
class NodeProcess:
    """One node: a data directory, a port, a database, and while running, its process."""

    name: str
    data_dir: Path
    port: int = field(default_factory=free_port)
    database_url: str | None = None  # None: SQLite in the data directory
    federation: dict[str, Any] = field(default_factory=dict)
    calls: dict[str, Any] = field(default_factory=dict)  # the [calls] settings, if any
    public: str = ""  # the URL it is reached at (server.public_url), if not its own
    process: asyncio.subprocess.Process | None = None
    node_id: bytes = b""
    starts: int = 0
    serve_flags: tuple[str, ...] = ()  # "--port": serve on this object's port, not the file's
    admin_invite: str = ""  # the token of the admin invite ``init`` printed

    @property
    def base_url(self) -> str:
        """Where peers (and a browser's ``Origin``) reach it: ``public``, else ``url``."""
        return self.public or self.url

    def _flags(self) -> list[str]:
        return ["--port", str(self.port)] if "--port" in self.serve_flags else []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.name}.log"

    @property
    def db_url(self) -> str:
        """The SQLAlchemy URL of its database (with the driver the node uses)."""
        if self.database_url:
            return self.database_url.replace("postgresql://", "postgresql+asyncpg://", 1)
        return f"sqlite+aiosqlite:///{self.data_dir / 'tadamun.db'}"

    async def init(self) -> None:
        extra = ("--database-url", self.database_url) if self.database_url else ()
        out = await run("init", "--data-dir", self.data_dir, "--name", self.name, *extra)
        found = JOIN_LINK.search(out)
        self.admin_invite = found.group(1) if found else ""
        settings = {**FEDERATION, **self.federation}
        text = (
            f'\n[server]\nhost = "127.0.0.1"\nport = {self.port}\n'
            f'public_url = "{self.base_url}"\n'
            "\n[federation]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in settings.items())
        )
        if self.calls:
            text += "\n[calls]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in self.calls.items())
        with (self.data_dir / "tadamun.toml").open("a", encoding="utf-8") as config:
            config.write(text)
        self.node_id = await self.read(_node_id)

    def twin(self, name: str) -> NodeProcess:
        """A second process of this node: same data directory and database, another port."""
        return NodeProcess(name, self.data_dir, database_url=self.database_url,
                           node_id=self.node_id, serve_flags=("--port",))  # fmt: skip

    async def start(self) -> None:
        """Start ``tadamun serve`` and wait until it listens."""
        assert self.process is None, f"{self.name} is running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            log.flush()
            self.process = await asyncio.create_subprocess_exec(
                *CLI, "serve", "--data-dir", str(self.data_dir), *self._flags(), stdout=log,
                stderr=log, env=environment(),
            )  # fmt: skip
        await poll(self._listening, DEADLINE, f"{self.name} listening")

    async def _listening(self) -> bool:
        assert self.process is not None
        if self.process.returncode is not None:
            raise AssertionError(f"{self.name} exited:\n{self.log()}")
        marker = f"--- start {self.starts}\n".encode()
        text = self.log_path.read_bytes().rsplit(marker, 1)[-1]
        return SERVING.search(text) is not None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def stop(self) -> None:
        """SIGTERM, and wait for the process to end."""
        await self._end(signal.SIGTERM)

    async def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye."""
        await self._end(signal.SIGKILL)

    async def _end(self, signum: int) -> None:
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signum)
        async with asyncio.timeout(DEADLINE):
            await process.wait()

    # --- the CLI ---------------------------------------------------------------------------

    async def invite(self) -> str:
        out = await run("peer", "invite", "--data-dir", self.data_dir, "--no-qr")
        return next(line.strip() for line in out.splitlines() if "tadamun-peer:" in line)

    async def join(self, invite: str) -> str:
        return await run("peer", "join", "--data-dir", self.data_dir, invite)

    # --- its database, from the test process -------------------------------------------------

    async def read(self, query: Callable[[AsyncSession], Awaitable[T]]) -> T:
        engine = create_engine(self.db_url)
        try:
            async with session_factory(engine)() as session:
                return await query(session)
        finally:
            await engine.dispose()

    async def publish(self, count: int = 1, audience: str = "public", *, now: int) -> None:
        """Sign ``count`` envelopes as the node does (its signer, its database, one
        transaction); the outbox rows are written with them."""
        signer = load_signer(self.data_dir)
        engine = create_engine(self.db_url)
        try:
            async with session_factory(engine).begin() as session:
                for index in range(count):
                    body = {"text": f"{self.name} note {index}"}
                    await signer.append(session, type=NOTE, body=body, audience=audience, now=now)
        finally:
            await engine.dispose()

    async def held(self, origin: NodeProcess, type: str = NOTE) -> list[int]:
        """Sequence numbers of ``origin``'s envelopes of ``type`` held here, in order."""

        async def query(session: AsyncSession) -> list[int]:
            rows = await session.scalars(
                select(EnvelopeRow.seq)
                .where(EnvelopeRow.origin == origin.node_id, EnvelopeRow.type == type)
                .where(EnvelopeRow.wire.is_not(None))
                .order_by(EnvelopeRow.seq)
            )
            return list(rows)

        return await self.read(query)

    async def head(self, origin: NodeProcess) -> int:
        async def query(session: AsyncSession) -> int:
            head = await session.get(OriginHead, origin.node_id)
            return 0 if head is None else head.seq

        return await self.read(query)

    async def pending(self, peer: NodeProcess | bytes | None = None) -> int:
        async def query(session: AsyncSession) -> int:
            statement = select(OutboxEntry.id)
            if peer is not None:
                target = peer if isinstance(peer, bytes) else peer.node_id
                statement = statement.where(OutboxEntry.peer == target)
            return len(list(await session.scalars(statement)))

        return await self.read(query)

    async def peer_row(self, peer: NodeProcess | bytes) -> Peer:
        target = peer if isinstance(peer, bytes) else peer.node_id

        async def query(session: AsyncSession) -> Peer:
            row = await session.get(Peer, target)
            assert row is not None, f"{self.name} has no peer {target.hex()}"
            return row

        return await self.read(query)

    async def key_log(self, of: NodeProcess | None = None) -> list[bytes]:
        target = (of or self).node_id

        async def query(session: AsyncSession) -> list[bytes]:
            rows = await session.scalars(
                select(KeyEventRow.wire).where(KeyEventRow.node_id == target)
                .order_by(KeyEventRow.pos)
            )  # fmt: skip
            return list(rows)

        return await self.read(query)

    async def last_seq(self) -> int:
        """The sequence number of this node's newest envelope."""

        async def query(session: AsyncSession) -> int:
            found = await session.scalar(
                select(func.max(EnvelopeRow.seq)).where(EnvelopeRow.origin == self.node_id)
            )
            return int(found or 0)

        return await self.read(query)

    async def forget_outbox(self, peer: NodeProcess) -> None:
        """Delete what this node still had to send to ``peer`` (pushes lost, for a test)."""
        engine = create_engine(self.db_url)
        try:
            async with session_factory(engine).begin() as session:
                await session.execute(delete(OutboxEntry).where(OutboxEntry.peer == peer.node_id))
        finally:
            await engine.dispose()

    async def wire(self, origin: NodeProcess, seq: int) -> bytes:
        async def query(session: AsyncSession) -> bytes:
            row = await session.get(EnvelopeRow, (origin.node_id, seq))
            assert row is not None
            assert row.wire is not None
            return row.wire

        return await self.read(query)


async def _node_id(session: AsyncSession) -> bytes:
    value = await session.scalar(select(Setting.value).where(Setting.key == "node_id"))
    assert value is not None, "the node has no id: init failed"
    return bytes.fromhex(value)


async def peer(inviter: NodeProcess, joiner: NodeProcess) -> None:
    """``peer invite`` on the inviter, ``peer join`` on the joiner (the inviter must run)."""
    out = await joiner.join(await inviter.invite())
    assert "Allied with" in out, out


@dataclass
class Cluster:
    """Nodes made for one test; every process is ended when the test ends."""

    root: Path
    postgres: str | None = None  # a server URL: databases are created on it
    nodes: list[NodeProcess] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)

    async def make(
        self,
        count: int,
        *,
        database: str = "sqlite",
        calls: dict[str, Any] | None = None,
        public: Sequence[str] = (),
        **federation: Any,
    ) -> list[NodeProcess]:
        """``count`` new nodes, initialised concurrently (not started); ``calls``: their
        ``[calls]`` settings; ``public``: the URLs they are reached at, in order (a proxy's)."""
        made = []
        for index in range(count):
            name = f"n{len(self.nodes)}"
            url = await self.new_database() if database == "postgresql" else None
            node = NodeProcess(
                name, self.root / name, database_url=url, federation=federation,
                calls=calls or {}, public=public[index] if public else "",
            )  # fmt: skip
            self.nodes.append(node)
            made.append(node)
        await asyncio.gather(*(node.init() for node in made))
        return made

    async def new_database(self) -> str:
        assert self.postgres is not None, "no PostgreSQL server given"
        name = f"tadamun_fed_{secrets.token_hex(6)}"
        await _postgres(self.postgres, f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        parts = urlsplit(self.postgres)
        return urlunsplit(("postgresql", parts.netloc, f"/{name}", parts.query, ""))

    async def start(self, nodes: Sequence[NodeProcess]) -> None:
        await asyncio.gather(*(node.start() for node in nodes))

    async def close(self) -> None:
        await asyncio.gather(*(node.kill() for node in self.nodes), return_exceptions=True)
        for name in self.databases:
            assert self.postgres is not None
            with contextlib.suppress(Exception):
                await _postgres(self.postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def logs(self) -> str:
        return "\n".join(f"===== {node.name}\n{node.log()[-6000:]}" for node in self.nodes)


async def _postgres(server: str, statement: str) -> None:
    import asyncpg  # type: ignore[import-untyped]  # noqa: PLC0415 - only with PostgreSQL

    parts = urlsplit(server)
    connection = await asyncpg.connect(urlunsplit(parts._replace(scheme="postgresql")))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def cluster(root: Path, postgres: str | None = None) -> AsyncIterator[Cluster]:
    made = Cluster(root, postgres)
    try:
        yield made
    finally:
        await made.close()


@dataclass
class FakeNode:
    """A peer that is not a Tadamun node: a small aiohttp server on 127.0.0.1 with a real
    identity, which checks the sender's transport signature and then answers ``POST
    /federation/v1/inbox`` as ``answer(items)`` says (by default: all ``ok``)."""

    sender_key: bytes  # the sending node's operational public key
    answer: Callable[[list[bytes]], Awaitable[web.StreamResponse]] | None = None
    identity: Identity = field(default_factory=lambda: new_identity(1, 1, int(time.time())))
    delay: float = 0.0  # seconds each answer takes: a slow peer
    received: list[bytes] = field(default_factory=list)  # envelope ids, in arrival order
    requests: int = 0
    url: str = ""
    _runner: web.AppRunner | None = None

    @property
    def node_id(self) -> bytes:
        return self.identity.state.node_id

    async def start(self) -> None:
        app = web.Application(client_max_size=4 << 20)
        app.router.add_post("/federation/v1/inbox", self._inbox)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _inbox(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        verify_request(
            method="POST", url=self.url + request.raw_path, headers=request.headers, body=body,
            now=int(time.time()), own_node_id=self.node_id.hex(),
            resolve_key=lambda _: public_key(self.sender_key),
        )  # fmt: skip
        self.requests += 1
        items = list(decode_inbox_request(body, 4 << 20).items)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.answer is not None:
            return await self.answer(items)
        self.received.extend(SignedEnvelope.from_bytes(item).id for item in items)
        answer = BatchResult(tuple("ok" for _ in items))
        return web.Response(body=encode_batch_result(answer), content_type="application/msgpack")


async def add_fake_peer(node: NodeProcess, fake: FakeNode) -> None:
    """Make ``fake`` an allied peer of ``node`` in its database, with its key log."""
    engine = create_engine(node.db_url)
    try:
        async with session_factory(engine).begin() as session:
            at = int(time.time())
            session.add(Peer(node_id=fake.node_id, endpoint=fake.url, name="fake",
                             state="allied", created_at=at, updated_at=at))  # fmt: skip
            await KeyLogs().accept(session, fake.node_id, [fake.identity.inception], now=at)
    finally:
        await engine.dispose()


async def remove_peer(node: NodeProcess, peer_id: bytes) -> None:
    """Take a peer out of ``node``'s database, with what was queued for it."""
    engine = create_engine(node.db_url)
    try:
        async with session_factory(engine).begin() as session:
            await session.execute(delete(OutboxEntry).where(OutboxEntry.peer == peer_id))
            await session.execute(
                update(Peer).where(Peer.node_id == peer_id).values(state="removed")
            )
    finally:
        await engine.dispose()


async def operational_key(node: NodeProcess) -> bytes:
    """The node's current operational public key, from its key log."""
    state = KeyState.from_log([SignedKeyEvent.from_bytes(w) for w in await node.key_log()])
    return state.op


POSTGRES_ENV: Final = "TADAMUN_TEST_POSTGRES_URL"


def postgres_or_skip() -> str:
    """The PostgreSQL server to make databases on, or a skip (locally) or failure (in CI)."""
    import pytest  # noqa: PLC0415 - the benchmark uses this module without pytest

    url = os.environ.get(POSTGRES_ENV, "")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{POSTGRES_ENV} is not set: in CI the PostgreSQL tests must run")
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}")
    return url
