"""Helpers of the outbox, delivery and catch-up tests (no tests here): a node with peers, and
fake peers: small aiohttp servers on 127.0.0.1, port 0, that check the node's transport
signature, record every batch and answer as each test tells them to."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from test_decisions_support import START, Node

from node.config import FederationConfig
from node.federation.client import FederationClient
from node.federation.delivery import Delivery
from node.federation.wire import (
    BatchResult,
    LogEntry,
    LogPage,
    decode_inbox_request,
    encode_batch_result,
    encode_log_page,
)
from node.storage import envelopes
from node.storage.models import Peer
from protocol import SignedEnvelope
from protocol.httpsig import verify_request
from protocol.keys import public_key

Answer = Callable[[list[bytes]], Awaitable[web.StreamResponse]]


def config(**overrides: Any) -> FederationConfig:
    values: dict[str, Any] = {
        "allow_networks": ("127.0.0.0/8",), "connect_timeout": 2.0, "request_timeout": 2.0,
        "retry_base": 10, "retry_cap": 3_600, "delivery_poll": 600,
    }  # fmt: skip
    return FederationConfig(**{**values, **overrides})


async def ok(items: list[bytes]) -> web.StreamResponse:
    return statuses(["ok"] * len(items))


def statuses(results: list[str]) -> web.Response:
    body = encode_batch_result(BatchResult(tuple(results)))
    return web.Response(body=body, content_type="application/msgpack")


async def serve_local(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on 127.0.0.1, port 0: its runner (to clean up) and its base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


@dataclass
class FakePeer:
    """A peer that answers ``POST /federation/v1/inbox`` with ``answer(items)``, after
    checking that the request is signed by ``sender`` and addressed to ``node_id``."""

    node_id: bytes
    sender_key: bytes  # the sending node's operational public key
    clock: Any
    answer: Answer = ok
    batches: list[tuple[list[bytes], list[bytes]]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=4 << 20)
        app.router.add_post("/federation/v1/inbox", self._inbox)
        self._runner, self.url = await serve_local(app)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _inbox(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        verify_request(
            method=request.method, url=self.url + request.raw_path, headers=request.headers,
            body=body, now=self.clock.now(), own_node_id=self.node_id.hex(),
            resolve_key=lambda _: public_key(self.sender_key),
        )  # fmt: skip
        batch = decode_inbox_request(body, 4 << 20)
        self.batches.append((list(batch.items), list(batch.keys)))
        self.arrived.set()
        return await self.answer(list(batch.items))

    def seqs(self) -> list[int]:
        """The sequence numbers received, in order, over every batch."""
        return [
            SignedEnvelope.from_bytes(w).envelope.seq for items, _ in self.batches for w in items
        ]


async def add_peer(
    node: Node, node_id: bytes, endpoint: str, state: str = "allied", **fields: Any
) -> None:
    async with node.sessions.begin() as session:
        session.add(
            Peer(node_id=node_id, endpoint=endpoint, state=state, created_at=START,
                 updated_at=START, **fields)
        )  # fmt: skip


async def get_peer(node: Node, node_id: bytes) -> Peer:
    async with node.sessions() as session:
        peer: Peer | None = await session.get(Peer, node_id)
        assert peer is not None
        return peer


async def publish(node: Node, count: int = 1, audience: str = "public", **extra: Any) -> None:
    """Sign ``count`` envelopes of the node (each in its own transaction)."""
    for _ in range(count):
        async with node.sessions.begin() as session:
            await node.signer.append(
                session, type="node.descriptor", audience=audience, now=node.now(),
                body={"name": {"en": "Union"}, "endpoints": ["https://union.example"]},
                **extra,
            )  # fmt: skip


async def own_key_log(node: Node) -> list[bytes]:
    async with node.sessions() as session:
        return await envelopes.list_key_events(session, node.signer.node_id)


@dataclass
class Running:
    delivery: Delivery
    client: FederationClient

    async def stop(self) -> None:
        await self.delivery.stop()
        await self.client.close()


async def run_delivery(
    node: Node, settings: FederationConfig | None = None, *, stop_grace: float = 1.0
) -> Running:
    settings = settings or config()
    client = FederationClient(settings, node.signer, node.clock)
    await client.start()
    delivery = Delivery(
        node.sessions, client, node.clock, settings, node.signer.node_id, stop_grace=stop_grace
    )
    await delivery.start()
    return Running(delivery, client)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Wait until ``check()`` holds, polling every 10 ms, failing after ``within`` seconds.
    (What is checked is database state or another server's, which signal no event.)"""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110 - state in a database, not an Event
            await asyncio.sleep(0.01)


async def advance_until(clock: Any, check: Callable[[], Awaitable[bool]], step: float) -> None:
    """Advance the fake ``clock`` by ``step`` until ``check()`` holds (a sleeper registered
    late is woken by the next step), failing after 10 seconds."""
    async with asyncio.timeout(10):
        while not await check():
            clock.advance(step)
            await asyncio.sleep(0.01)


@dataclass
class LogServer:
    """A peer that serves ``GET /federation/v1/log`` of the origins it holds (``logs``: origin
    id -> (signed envelope wires by seq from 1, key log)), after checking the signature."""

    node_id: bytes
    sender_key: bytes
    clock: Any
    logs: dict[bytes, tuple[list[bytes], list[bytes]]] = field(default_factory=dict)
    requests: list[tuple[bytes, int]] = field(default_factory=list)
    page_limit: int | None = None  # serve at most this many entries a page
    before_answer: Callable[[], Awaitable[None]] | None = None  # runs before a page is served
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/federation/v1/log", self._log)
        self._runner, self.url = await serve_local(app)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _log(self, request: web.Request) -> web.StreamResponse:
        verify_request(
            method="GET", url=self.url + request.raw_path, headers=request.headers, body=b"",
            now=self.clock.now(), own_node_id=self.node_id.hex(),
            resolve_key=lambda _: public_key(self.sender_key),
        )  # fmt: skip
        origin = bytes.fromhex(request.query["origin"])
        after, limit = int(request.query["after"]), int(request.query["limit"])
        limit = min(limit, self.page_limit or limit)
        self.requests.append((origin, after))
        if origin not in self.logs:
            return web.Response(status=404)
        if self.before_answer is not None:
            await self.before_answer()
        wires, keys = self.logs[origin]
        chosen = wires[after : after + limit]
        entries = tuple(
            LogEntry(after + i + 1, SignedEnvelope.from_bytes(w).id, w)
            for i, w in enumerate(chosen)
        )
        page = LogPage(entries, tuple(keys), more=after + limit < len(wires))
        return web.Response(body=encode_log_page(page), content_type="application/msgpack")
