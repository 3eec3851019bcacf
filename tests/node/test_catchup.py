"""Catch-up (node.federation.catchup) from allies serving ``GET /federation/v1/log`` on
127.0.0.1: an ally's own log page by page, relayed origins, gaps, forged pages, a dead ally
beside a live one, and the loop driven by the clock and by wake-ups."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from delivery_support import LogServer, advance_until, config, eventually
from inbox_support import Origin, Receiver, receiver, tamper
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from test_decisions_support import START

from node.federation.catchup import PAGES_PER_ORIGIN, Catchup
from node.federation.client import FederationClient
from node.storage.envelopes import NODE_ID_SETTING
from node.storage.models import EscrowEntry, Peer, Setting


@pytest.fixture
async def rx(engine: AsyncEngine, tmp_path: Path) -> Receiver:
    return await receiver(engine, tmp_path)


@pytest.fixture
async def catchup(rx: Receiver) -> AsyncIterator[Catchup]:
    settings = config(catchup_interval=300)
    client = FederationClient(settings, rx.node.signer, rx.node.clock)
    await client.start()
    yield Catchup(rx.node.sessions, client, rx.node.clock, settings, rx.inbox)
    await client.close()


Servers = list[LogServer]


@pytest.fixture
async def servers(rx: Receiver) -> AsyncIterator[Servers]:
    started: list[LogServer] = []
    yield started
    for server in started:
        await server.stop()


async def ally(rx: Receiver, servers: list[LogServer], origin: Origin | None = None) -> LogServer:
    """An allied peer (``origin``'s identity, or a new one) serving logs on 127.0.0.1."""
    origin = origin or Origin.new()
    server = LogServer(origin.node_id, rx.node.identity.operational.public, rx.node.clock)
    await server.start()
    servers.append(server)
    await rx.peer(origin)
    async with rx.node.sessions.begin() as session:
        peer = await session.get(Peer, origin.node_id)
        assert peer is not None
        peer.endpoint = server.url
    return server


def serve(server: LogServer, origin: Origin, wires: list[bytes] | None = None) -> None:
    server.logs[origin.node_id] = (wires or [s.to_bytes() for s in origin.signed], origin.keys)


async def test_an_allys_own_log_page_by_page(
    rx: Receiver, catchup: Catchup, servers: Servers
) -> None:
    origin = Origin.new()
    origin.wires(600)
    server = await ally(rx, servers, origin)
    serve(server, origin)
    report = await catchup.run_pass()
    assert await rx.head(origin) == 600
    assert server.requests == [(origin.node_id, 0), (origin.node_id, 256), (origin.node_id, 512)]
    assert (report.requests, report.entries, report.accepted, report.failures) == (3, 600, 600, {})
    again = await catchup.run_pass()  # up to date: one request, nothing new
    assert (again.requests, again.entries) == (1, 0)


async def test_relayed_origins_and_gaps_are_fetched(
    rx: Receiver, catchup: Catchup, servers: Servers
) -> None:
    relayed, gapped = Origin.new(), Origin.new()
    relayed.wires(5)
    gapped.wires(4)
    server = await ally(rx, servers)
    await rx.know(relayed)
    await rx.know(gapped)
    assert (await rx.receive(server.node_id, [relayed.signed[0].to_bytes()])).results == ("ok",)
    held = await rx.receive(server.node_id, [gapped.signed[3].to_bytes()])
    assert held.results == ("held",)
    serve(server, relayed)
    serve(server, gapped)
    await catchup.run_pass()
    assert (await rx.head(relayed), await rx.head(gapped)) == (5, 4)
    async with rx.node.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(EscrowEntry)) == 0


async def test_a_forged_page_changes_nothing_and_ends_the_fetch(
    rx: Receiver, catchup: Catchup, servers: Servers
) -> None:
    origin = Origin.new()
    origin.wires(300)
    server = await ally(rx, servers, origin)
    forged = [tamper(s, body={"text": "forged"}) for s in origin.signed]
    serve(server, origin, forged)
    report = await catchup.run_pass()
    assert await rx.head(origin) == 0
    assert report.requests == 1
    assert report.failures == {"bad_signature": 256}


async def test_a_dead_ally_does_not_hold_up_a_live_one(
    rx: Receiver, catchup: Catchup, servers: Servers
) -> None:
    dead, live = Origin.new(), Origin.new()
    await rx.peer(dead)
    async with rx.node.sessions.begin() as session:
        row = await session.get(Peer, dead.node_id)
        assert row is not None
        row.endpoint = "http://127.0.0.1:9"
    live.wires(3)
    serve(await ally(rx, servers, live), live)
    report = await catchup.run_pass()
    assert await rx.head(live) == 3
    assert report.failures == {"peer_unreachable": 1}


@pytest.mark.parametrize("state", ["blocked", "removed"])
async def test_a_peer_blocked_or_removed_mid_pass_ends_its_fetch_only(
    rx: Receiver, catchup: Catchup, servers: Servers, state: str
) -> None:
    turned, live = Origin.new(), Origin.new()
    turned.wires(3)
    live.wires(3)
    server = await ally(rx, servers, turned)
    serve(server, turned)
    serve(await ally(rx, servers, live), live)

    async def turn() -> None:  # the admin acts while the page is on its way
        async with rx.node.sessions.begin() as session:
            row = await session.get(Peer, turned.node_id)
            assert row is not None
            row.state = state

    server.before_answer = turn
    report = await catchup.run_pass()
    assert (await rx.head(turned), await rx.head(live)) == (0, 3)
    assert report.failures == {"blocked" if state == "blocked" else "unknown_sender": 1}
    await catchup.start()  # and the loop goes on past such a pass
    try:
        await eventually(lambda: _passes(catchup, 1))
        catchup.wake()
        await eventually(lambda: _passes(catchup, 2))
    finally:
        await catchup.stop()


async def test_a_node_without_an_identity_yet_passes_quietly(
    rx: Receiver, catchup: Catchup, servers: Servers
) -> None:
    relayed = Origin.new()
    relayed.wires(2)
    server = await ally(rx, servers)
    await rx.know(relayed)
    assert (await rx.receive(server.node_id, [relayed.signed[0].to_bytes()])).results == ("ok",)
    serve(server, relayed)
    async with rx.node.sessions.begin() as session:
        await session.execute(delete(Setting).where(Setting.key == NODE_ID_SETTING))
    report = await catchup.run_pass()
    assert await rx.head(relayed) == 2
    assert report.failures == {"http_404": 1}  # the ally serves no log of its own here


async def test_pages_per_origin_are_bounded_per_pass(
    rx: Receiver, catchup: Catchup, servers: Servers
) -> None:
    origin = Origin.new()
    origin.wires(PAGES_PER_ORIGIN + 2)
    server = await ally(rx, servers, origin)
    serve(server, origin)
    server.page_limit = 1
    first = await catchup.run_pass()
    assert (first.requests, await rx.head(origin)) == (PAGES_PER_ORIGIN, PAGES_PER_ORIGIN)
    await catchup.run_pass()
    assert await rx.head(origin) == PAGES_PER_ORIGIN + 2


async def test_the_loop_runs_at_start_on_the_clock_and_when_woken(
    rx: Receiver, catchup: Catchup, servers: Servers
) -> None:
    origin = Origin.new()
    origin.wires(2)
    server = await ally(rx, servers, origin)
    serve(server, origin)
    await catchup.start()
    try:
        await eventually(lambda: _head_is(rx, origin, 2))
        origin.wires(1)
        serve(server, origin)
        catchup.wake()
        await eventually(lambda: _head_is(rx, origin, 3))
        origin.wires(1)
        serve(server, origin)
        await advance_until(rx.node.clock, lambda: _head_is(rx, origin, 4), 300)
    finally:
        await catchup.stop()
    assert rx.node.now() > START


async def _head_is(rx: Receiver, origin: Origin, seq: int) -> bool:
    return await rx.head(origin) == seq


async def test_an_escrowed_envelope_wakes_catch_up(
    rx: Receiver, catchup: Catchup, servers: Servers
) -> None:
    relayed = Origin.new()
    relayed.wires(3)
    server = await ally(rx, servers)
    await rx.know(relayed)
    serve(server, relayed)
    await catchup.start()
    try:
        await eventually(lambda: _passes(catchup, 1))
        held = await rx.receive(server.node_id, [relayed.signed[2].to_bytes()])
        assert held.results == ("held",)
        await eventually(lambda: _head_is(rx, relayed, 3))  # no clock moved, no wake() call
    finally:
        await catchup.stop()


async def _passes(catchup: Catchup, count: int) -> bool:
    return catchup.passes >= count
