"""The inbox endpoints over real HTTP (node.web.federation): a node made by ``create_app``,
served on 127.0.0.1, and senders that sign their requests (the federation client, or
protocol.httpsig directly for hostile requests). Every refused request gets its status and
stable code, and changes nothing but the bounded contact log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from inbox_support import Origin
from peering_support import FedNode, fed_node
from sqlalchemy import select
from test_decisions_support import START

from node.clock import FakeClock
from node.config import FederationConfig
from node.federation.client import FederationClient
from node.federation.keylogs import KeyLogs
from node.federation.wire import (
    decode_batch_result,
    decode_log_page,
    encode_inbox_request,
)
from node.services.signer import Signer
from node.storage.models import ContactLogEntry, EnvelopeRow, Peer
from protocol import Limits, decode, encode
from protocol.httpsig import sign_request

MSGPACK = "application/msgpack"
CLIENT = FederationConfig(allow_networks=("127.0.0.0/8",), connect_timeout=5, request_timeout=10)


@pytest.fixture
async def node(tmp_path: Path, database_url: str) -> AsyncIterator[FedNode]:
    async with fed_node(tmp_path, database_url, "receiver", FakeClock(START)) as served:
        yield served


async def make_peer(node: FedNode, state: str = "allied", *, keys: bool = True) -> Origin:
    origin = Origin.new()
    async with node.sessions.begin() as session:
        if state:
            session.add(Peer(node_id=origin.node_id, endpoint="https://p.example", state=state,
                             created_at=START, updated_at=START))  # fmt: skip
        if keys:
            await KeyLogs().accept(session, origin.node_id, origin.log, now=START)
    return origin


def signed_headers(
    node: FedNode, sender: Origin, method: str, path: str, body: bytes, **changes: Any
) -> dict[str, str]:
    now = node.clock.now()
    values: dict[str, Any] = {
        "method": method, "url": node.url + path, "body": body,
        "key": sender.key.private_key(), "keyid": sender.node_id.hex(),
        "destination": node.node_id.hex(), "created": now, "expires": now + 60,
        "nonce": f"nonce-{id(body)}-{now}-{len(body)}-{path[-4:]}".replace("=", "_")[:64],
        "extra_headers": {"Content-Type": MSGPACK} if method == "POST" else {},
    }  # fmt: skip
    return sign_request(**(values | changes))


async def raw(
    node: FedNode, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, node.url + path, data=body or None, headers=headers or {}) as response,
    ):
        data = await response.read()
        assert response.content_type == MSGPACK, data
        return response.status, decode(data, Limits(max_size=1 << 22, max_bin=1 << 16))


async def snapshot(node: FedNode) -> Any:
    return await node.snapshot(skip=("contact_log", "nonces", "peers"))


async def test_a_signed_batch_is_answered_item_by_item(node: FedNode) -> None:
    alice = await make_peer(node)
    wires = alice.wires(3)
    forged = bytearray(alice.envelope().to_bytes())
    forged[-1] ^= 1
    body = encode_inbox_request([*wires, bytes(forged)], alice.keys)
    async with FederationClient(CLIENT, Signer(alice.node_id, alice.key), node.clock) as client:
        response = await client.post(node.url + "/federation/v1/inbox", body,
                                     destination=node.node_id)  # fmt: skip
    assert (response.status, response.content_type) == (200, MSGPACK)
    result = decode_batch_result(response.body, 1 << 20)
    assert result.results == ("ok", "ok", "ok", "bad_signature")
    assert result.keys == ("duplicate",)
    async with node.sessions() as session:
        stored = await session.scalars(
            select(EnvelopeRow.wire).where(EnvelopeRow.origin == alice.node_id)
            .order_by(EnvelopeRow.seq)
        )  # fmt: skip
        assert list(stored) == wires
        peer = await session.get(Peer, alice.node_id)
        assert peer is not None
        assert peer.last_contact_at == START


async def test_hostile_requests_get_their_code_and_change_nothing(node: FedNode) -> None:
    alice = await make_peer(node)
    path = "/federation/v1/inbox"
    body = encode_inbox_request(alice.wires(1))
    good = signed_headers(node, alice, "POST", path, body)
    assert (await raw(node, "POST", path, body, good))[0] == 200
    before = await snapshot(node)
    other = Origin.new()
    cases: list[tuple[str, bytes, dict[str, str], int, str]] = [
        ("replayed", body, good, 401, "httpsig_replayed"),
        ("unsigned", body, {"Content-Type": MSGPACK}, 401, "httpsig_missing"),
        ("wrong destination", body,
         signed_headers(node, alice, "POST", path, body, destination=other.node_id.hex()),
         401, "httpsig_wrong_target"),
        ("tampered body", body + b"x", signed_headers(node, alice, "POST", path, body),
         401, "httpsig_bad_digest"),
        ("forged", body,
         signed_headers(node, alice, "POST", path, body, key=other.key.private_key()),
         401, "httpsig_bad_signature"),
        ("from the future", body,
         signed_headers(node, alice, "POST", path, body, created=START + 600,
                        expires=START + 660), 401, "httpsig_from_future"),
        ("unknown key", body, signed_headers(node, other, "POST", path, body),
         401, "httpsig_unknown_key"),
        ("wrong media type", body,
         signed_headers(node, alice, "POST", path, body,
                        extra_headers={"Content-Type": "application/json"}),
         415, "unsupported_media_type"),
    ]  # fmt: skip
    for name, sent, headers, status, code in cases:
        answer = await raw(node, "POST", path, sent, headers)
        assert answer == (status, {"error": code, "detail": answer[1]["detail"]}), name
        assert await snapshot(node) == before, name


def _outer(**fields: Any) -> bytes:
    return encode(fields, Limits(max_size=1 << 22, max_bin=1 << 16, max_array=1 << 10))


async def test_bodies_of_the_wrong_shape_are_refused(node: FedNode) -> None:
    alice = await make_peer(node)
    wire = alice.envelope().to_bytes()
    path = "/federation/v1/inbox"
    noncanonical = b"\xde\x00\x01" + encode({"items": [wire]})[1:]
    cases = [
        (_outer(items=[wire] * 257), 400, "too_long"),
        (_outer(items=[]), 400, "invalid_field"),
        (_outer(items=[wire], keys=[b"k"] * 65), 400, "too_long"),
        (_outer(items=[wire], extra=1), 400, "malformed"),
        (_outer(keys=[]), 400, "malformed"),
        (_outer(items=["not bin"]), 400, "invalid_field"),
        (_outer(items=wire), 400, "invalid_field"),
        (noncanonical, 400, "noncanonical"),
        (b"\xc1", 400, "malformed"),
    ]
    before = await snapshot(node)
    for body, status, code in cases:
        headers = signed_headers(node, alice, "POST", path, body)
        answer = await raw(node, "POST", path, body, headers)
        assert (answer[0], answer[1]["error"]) == (status, code), body[:20]
    assert await snapshot(node) == before


async def test_an_oversized_body_is_refused_before_it_is_read(node: FedNode) -> None:
    """A Content-Length over the limit is answered 413 at once: the body is never sent."""
    parts = urlsplit(node.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        length = node.config.server.max_body_bytes + 1
        writer.write(
            f"POST /federation/v1/inbox HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: {MSGPACK}\r\nContent-Length: {length}\r\n\r\n".encode()
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        assert status_line.split()[1] == b"413"
    finally:
        writer.close()


async def test_senders_that_are_not_peers_are_refused_and_logged(node: FedNode) -> None:
    stranger = await make_peer(node, state="", keys=True)  # key known (relayed), no peer
    blocked = await make_peer(node, state="blocked")
    path = "/federation/v1/inbox"
    before = await snapshot(node)
    for sender, code in ((stranger, "unknown_sender"), (blocked, "blocked")):
        body = encode_inbox_request(sender.wires(1), sender.keys)
        answer = await raw(
            node, "POST", path, body, signed_headers(node, sender, "POST", path, body)
        )
        assert (answer[0], answer[1]["error"]) == (403, code)
    assert await snapshot(node) == before
    async with node.sessions() as session:
        logged = [(r.node_id, r.code) for r in await session.scalars(select(ContactLogEntry))]
    assert (stranger.node_id, "unknown_sender") in logged
    assert (blocked.node_id, "blocked") in logged


async def test_the_log_and_keys_endpoints(node: FedNode) -> None:
    ally = await make_peer(node)
    async with FederationClient(CLIENT, Signer(ally.node_id, ally.key), node.clock) as client:
        own = node.node_id.hex()
        response = await client.get(f"{node.url}/federation/v1/log?origin={own}&after=0&limit=5",
                                    destination=node.node_id)  # fmt: skip
        assert response.status == 200, response.body
        page = decode_log_page(response.body, 1 << 22)
        assert page.entries
        assert all(entry.env is not None for entry in page.entries)
        assert page.keys == (node.identity.inception.to_bytes(),)
        response = await client.get(f"{node.url}/federation/v1/keys?node={own}",
                                    destination=node.node_id)  # fmt: skip
        assert response.status == 200
        assert decode(response.body) == {"keys": list(page.keys), "node": node.node_id}
        for query, status, code in (
            (f"origin={own}&limit=0", 400, "invalid_field"),
            (f"origin={own}&limit=257", 400, "invalid_field"),
            (f"origin={own}&after=-1", 400, "invalid_field"),
            (f"origin={own}&after=01", 400, "invalid_field"),
            (f"origin={own.upper()}", 400, "invalid_field"),
            (f"origin={own}&colour=red", 400, "malformed"),
            (f"origin={own}&origin={own}", 400, "malformed"),
            ("after=3", 400, "malformed"),
            (f"origin={'ab' * 32}", 404, "unknown_origin"),
        ):
            response = await client.get(f"{node.url}/federation/v1/log?{query}",
                                        destination=node.node_id)  # fmt: skip
            assert (response.status, decode(response.body)["error"]) == (status, code), query
    unsigned = await raw(node, "GET", f"/federation/v1/log?origin={own}")
    assert (unsigned[0], unsigned[1]["error"]) == (401, "httpsig_missing")
