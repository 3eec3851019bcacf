"""Helpers of the peering tests (no tests here): real nodes, each a ``create_app`` served by
aiohttp on 127.0.0.1 (a socket bound to port 0 first, so that the node's public URL names
its real port), over its own migrated database (SQLite files, or fresh PostgreSQL
databases), with the federation client allowed to reach 127.0.0.0/8."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from database_support import create_database, drop_database, server_url, table_rows
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from node.app import create_app
from node.clock import FakeClock
from node.config import Config, load_config
from node.federation.descriptors import DOCUMENT_LIMITS
from node.federation.peer_admin import PeerAdmin
from node.federation.peering import Peering
from node.identity import Identity, new_identity, write_identity
from node.services.members import Actor
from node.services.passwords import Argon2Params, PasswordHasher
from node.services.setup import record_identity
from node.services.signer import Signer
from node.storage.db import create_engine, session_factory, upgrade
from node.storage.models import ContactLogEntry, EnvelopeRow, Peer
from node.web.keys import PEER_ADMIN, PEERING, SIGNER
from protocol import (
    SignedEnvelope,
    SigningKey,
    build_envelope,
    decode,
    encode,
    sign,
)

START = 1_800_000_000
PASSWORD = "correct horse battery"  # noqa: S105 - the test founder's password
CHEAP = Argon2Params(memory_kib=64, iterations=1, lanes=1)
CLI = Actor.cli()
MakeDatabase = Callable[[str], Awaitable[str]]


@pytest.fixture(params=["sqlite", "postgresql"])
async def make_database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[MakeDatabase]:
    """Makes an empty database per node name: an SQLite file, or a fresh PostgreSQL database
    (dropped after the test)."""
    created: list[str] = []
    server = "" if request.param == "sqlite" else server_url()

    async def make(name: str) -> str:
        if not server:
            return f"sqlite+aiosqlite:///{tmp_path / f'{name}.db'}"
        database, url = await create_database(server)
        created.append(database)
        return url

    try:
        yield make
    finally:
        for database in created:
            await drop_database(server, database)


@dataclass
class FedNode:
    name: str
    url: str
    identity: Identity
    config: Config
    clock: FakeClock
    engine: AsyncEngine
    sessions: async_sessionmaker[Any]
    app: web.Application
    runner: web.AppRunner
    founder_invite: str

    async def admin_headers(self) -> dict[str, str]:
        """Register the founder (an admin) through the API; headers with its API token."""
        body = {"invite": self.founder_invite, "pseudonym": "founder", "password": PASSWORD}
        async with aiohttp.ClientSession() as http:
            async with http.post(self.url + "/api/v1/register", json=body) as response:
                assert response.status == 201, await response.text()
            login = {"pseudonym": "founder", "password": PASSWORD}
            async with http.post(self.url + "/api/v1/login", json=login) as response:
                assert response.status == 200, await response.text()
                cookie = response.cookies["tadamun_session"].value
            headers = {"Cookie": f"tadamun_session={cookie}", "Origin": self.url}
            async with http.post(self.url + "/api/v1/me/tokens", json={"name": "t"},
                                 headers=headers) as response:  # fmt: skip
                assert response.status == 201, await response.text()
                token = (await response.json())["token"]
        return {"Authorization": f"Bearer {token}"}

    async def api(
        self, method: str, path: str, headers: dict[str, str], body: Any = None
    ) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as http,
            http.request(
                method, self.url + "/api/v1" + path, json=body, headers=headers
            ) as response,
        ):
            text_body = await response.text()
            return response.status, json.loads(text_body) if text_body else None

    @property
    def node_id(self) -> bytes:
        return self.identity.state.node_id

    @property
    def peering(self) -> Peering:
        return self.app[PEERING]

    @property
    def peer_admin(self) -> PeerAdmin:
        return self.app[PEER_ADMIN]

    @property
    def signer(self) -> Signer:
        return self.app[SIGNER]

    async def peer(self, node_id: bytes) -> Peer | None:
        async with self.sessions() as session:
            peer: Peer | None = await session.get(Peer, node_id)
            return peer

    async def envelopes_of(self, type_: str) -> list[SignedEnvelope]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(EnvelopeRow.wire)
                .where(EnvelopeRow.origin == self.node_id, EnvelopeRow.type == type_)
                .order_by(EnvelopeRow.seq)
            )
            return [SignedEnvelope.from_bytes(wire) for wire in rows if wire is not None]

    async def contacts(self) -> list[tuple[bytes | None, str]]:
        async with self.sessions() as session:
            rows = await session.scalars(select(ContactLogEntry).order_by(ContactLogEntry.id))
            return [(row.node_id, row.code) for row in rows]

    async def snapshot(self, *, skip: tuple[str, ...] = ("contact_log", "nonces")) -> Any:
        """Every row of every table but ``skip``: a refused request changes none of them.
        The node's delivery workers run meanwhile, so what they change (the outbox, the
        peers' delivery health) is left out."""
        return await table_rows(self.engine, skip=(*skip, "outbox"), queries=_SELECT)


_SELECT = {
    "peers": "SELECT node_id, endpoint, name, state, they_allied, created_at, updated_at FROM peers"
}


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def fed_node(
    tmp_path: Path,
    database_url: str,
    name: str,
    clock: FakeClock,
    *,
    officers: int = 1,
    threshold: int = 1,
) -> AsyncIterator[FedNode]:
    """A node as ``tadamun init`` makes it, served on 127.0.0.1 until the context ends."""
    data_dir = tmp_path / name
    data_dir.mkdir(mode=0o700)
    identity = new_identity(officers, threshold, clock.now())
    write_identity(data_dir, identity)
    engine = create_engine(database_url)
    await upgrade(engine)
    sessions = session_factory(engine)
    founder_invite = await record_identity(sessions, identity, name, clock.now())
    sock = free_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    (data_dir / "tadamun.toml").write_text(
        f'[node]\nname = "{name}"\n[federation]\nallow_networks = ["127.0.0.0/8"]\n'
        "connect_timeout = 5\nrequest_timeout = 10\n"
    )
    config = load_config(data_dir, {}, {"database.url": database_url, "server.public_url": url})
    app = create_app(config, clock, hasher=PasswordHasher(CHEAP))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        yield FedNode(
            name, url, identity, config, clock, engine, sessions, app, runner, founder_invite
        )
    finally:
        await runner.cleanup()
        await engine.dispose()
        sock.close()


@asynccontextmanager
async def fed_nodes(
    tmp_path: Path, make_database: MakeDatabase, *names: str, **options: Any
) -> AsyncIterator[list[FedNode]]:
    clock = FakeClock(START)
    async with AsyncExitStack() as stack:
        nodes = [
            await stack.enter_async_context(
                fed_node(tmp_path, await make_database(name), name, clock, **options)
            )
            for name in names
        ]
        yield nodes


async def peer_up(inviter: FedNode, joiner: FedNode) -> dict[str, Any]:
    """``joiner`` answers a fresh invite of ``inviter``; the peer view the join returns."""
    made = await inviter.peering.create_invite(CLI)
    return await joiner.peering.join(CLI, made["invite"])


# --- raw peering requests, as a hostile or careless joiner might send them -----------------


def envelope(
    node: FedNode,
    type_: str,
    body: dict[str, Any],
    *,
    audience: str = "public",
    seq: int = 1,
    prev: bytes | None = None,
    key: SigningKey | None = None,
    kpos: int = 0,
    created: int | None = None,
) -> SignedEnvelope:
    """An envelope of ``node`` signed outside its log (the inviter never checks the chain)."""
    built = build_envelope(
        type=type_, origin=node.node_id, kpos=kpos, seq=seq, prev=prev,
        created=node.clock.now() if created is None else created, body=body, audience=audience,
    )  # fmt: skip
    return sign(built, key or node.identity.operational)


async def post(
    url: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    content_type: str = "application/msgpack",
) -> tuple[int, Any]:
    """POST without signing; the status and the decoded msgpack answer."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            url, data=body, headers={"Content-Type": content_type, **(headers or {})}
        ) as response,
    ):
        raw = await response.read()
        assert response.content_type == "application/msgpack", raw[:200]
        return response.status, decode(raw)


def document(value: dict[str, Any]) -> bytes:
    return encode(value, DOCUMENT_LIMITS)
