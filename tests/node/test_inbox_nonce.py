"""The transport nonce of ``POST /federation/v1/inbox`` (SPEC §10.8) is recorded in the
batch's own write transaction, after the signature passed: a replay is still refused, when
it arrives after the first request, while the first is in flight, or after a request that
changed nothing else (a refused sender, a malformed body)."""

from __future__ import annotations

import asyncio

from peering_support import FedNode
from sqlalchemy import func, select
from test_inbox_http import make_peer, node, raw, signed_headers, snapshot

from node.federation.wire import encode_inbox_request
from node.storage.models import EnvelopeRow, Nonce

__all__ = ["node"]  # the fixture, shared with test_inbox_http

PATH = "/federation/v1/inbox"


async def count(fed: FedNode, table: type[Nonce] | type[EnvelopeRow]) -> int:
    async with fed.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def test_a_batch_and_its_replay_in_flight_together_store_it_once(node: FedNode) -> None:
    alice = await make_peer(node)
    stored = await count(node, EnvelopeRow)  # the node's own
    body = encode_inbox_request(alice.wires(4), alice.keys)
    headers = signed_headers(node, alice, "POST", PATH, body)
    answers = await asyncio.gather(*(raw(node, "POST", PATH, body, headers) for _ in range(3)))
    assert sorted(status for status, _ in answers) == [200, 401, 401]
    assert {a["error"] for s, a in answers if s == 401} == {"httpsig_replayed"}
    assert (await count(node, Nonce), await count(node, EnvelopeRow)) == (1, stored + 4)
    before = await snapshot(node)
    status, answer = await raw(node, "POST", PATH, body, headers)  # and after it
    assert (status, answer["error"]) == (401, "httpsig_replayed")
    assert await snapshot(node) == before


async def test_a_request_that_changed_nothing_else_still_spends_its_nonce(node: FedNode) -> None:
    alice = await make_peer(node)
    stranger = await make_peer(node, state="", keys=True)  # key known, not a peer
    stored = await count(node, EnvelopeRow)  # the node's own
    malformed = b"\x81\xa5items\x90"  # {"items": []}
    cases = [
        (alice, malformed, 400, "invalid_field"),
        (stranger, encode_inbox_request(stranger.wires(1)), 403, "unknown_sender"),
    ]
    for sender, body, status, code in cases:
        headers = signed_headers(node, sender, "POST", PATH, body)
        first = await raw(node, "POST", PATH, body, headers)
        assert (first[0], first[1]["error"]) == (status, code)
        before = await snapshot(node)
        again = await raw(node, "POST", PATH, body, headers)
        assert (again[0], again[1]["error"]) == (401, "httpsig_replayed"), code
        assert await snapshot(node) == before
    assert (await count(node, Nonce), await count(node, EnvelopeRow)) == (2, stored)
