"""Delivery between real node processes on 127.0.0.1 (``tadamun init``/``serve``, peered with
``tadamun peer invite``/``join``): direct delivery, relay through a middle node, a peer down
and back, SIGKILL mid-delivery, catch-up after downtime and of a newcomer, misbehaving peers
beside a live one, and two processes of one node sharing a PostgreSQL database.

Three nodes, a—b—c (c is not peered with a), serve the whole module in turn: starting and
peering them costs more than every test together. Each test counts from what the nodes held
when it began, and leaves them running and peered as it found them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from cluster import (
    Cluster,
    FakeNode,
    NodeProcess,
    add_fake_peer,
    cluster,
    operational_key,
    peer,
    poll,
    postgres_or_skip,
    remove_peer,
)

from protocol import KeyState, SignedEnvelope, SignedKeyEvent, verify

pytestmark = pytest.mark.asyncio(loop_scope="module")


def now() -> int:
    return int(time.time())


@dataclass
class Trio:
    nodes: Cluster
    a: NodeProcess
    b: NodeProcess
    c: NodeProcess


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def started(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Trio]:
    async with cluster(tmp_path_factory.mktemp("trio")) as nodes:
        a, b, c = await nodes.make(3)
        await nodes.start([a, b, c])
        await peer(a, b)
        await peer(b, c)
        yield Trio(nodes, a, b, c)


@pytest_asyncio.fixture(loop_scope="module")
async def trio(started: Trio) -> AsyncIterator[Trio]:
    """The module's nodes, all running. Their logs are printed after each test (pytest shows
    them when the test failed)."""
    for node in (started.a, started.b, started.c):
        if node.process is None:
            await node.start()
    yield started
    print(started.nodes.logs())


async def count(receiver: NodeProcess, origin: NodeProcess) -> int:
    """How many of ``origin``'s test envelopes ``receiver`` holds (each at most once: the
    primary key is the origin and sequence number)."""
    return len(await receiver.held(origin))


async def everything(receiver: NodeProcess, origin: NodeProcess) -> bool:
    """``receiver`` holds every test envelope ``origin`` signed (all are public)."""
    return await count(receiver, origin) == await count(origin, origin)


async def whole_log(receiver: NodeProcess, origin: NodeProcess) -> bool:
    """``receiver`` holds ``origin``'s whole log without a gap (applied in order)."""
    return await receiver.head(origin) == await origin.last_seq()


async def drained(*nodes: NodeProcess) -> bool:
    return all([await node.pending() == 0 for node in nodes])


async def test_direct_delivery(trio: Trio) -> None:
    a, b = trio.a, trio.b
    await a.publish(3, now=now())
    await b.publish(2, audience="allies", now=now())
    await poll(lambda: everything(b, a), what="b holds a's three envelopes")
    await poll(lambda: everything(a, b), what="a holds b's two envelopes")
    await poll(lambda: drained(a, b), what="both outboxes empty")
    assert await whole_log(b, a)
    assert await whole_log(a, b)
    row = await a.peer_row(b)
    assert (row.state, row.failures) == ("allied", 0)
    assert row.last_delivery_at is not None


async def test_relay_through_a_middle_node(trio: Trio) -> None:
    a, b, c = trio.a, trio.b, trio.c
    await a.publish(2, now=now())
    await poll(lambda: everything(c, a), what="c holds a's envelopes, relayed by b")
    # c checked a's signature with a's key log, which travelled with b's batches
    state = KeyState.from_log([SignedKeyEvent.from_bytes(w) for w in await c.key_log(a)])
    for seq in (await c.held(a))[-2:]:
        relayed = SignedEnvelope.from_bytes(await c.wire(a, seq))
        assert relayed.path in ((b.node_id,), ())  # pushed by b, or fetched from b's log
        verify(relayed, state, now=now())
    await poll(lambda: drained(a, b, c), what="every outbox empty")
    assert await c.held(a, "peer.alliance") == []  # a's allies-only envelopes stay with b


async def test_peer_down_then_back_gets_everything_once_in_order(trio: Trio) -> None:
    a, b = trio.a, trio.b
    await poll(lambda: drained(a), what="earlier deliveries done")
    await b.stop()
    await a.publish(5, now=now())
    await poll(lambda: _failing(a, b), what="a backs off while b is down")
    assert await a.pending(b) == 5
    await b.start()
    await poll(lambda: everything(b, a), what="b gets all five once back")
    await poll(lambda: drained(a), what="a's outbox empty")
    assert await whole_log(b, a)


async def _failing(sender: NodeProcess, receiver: NodeProcess) -> bool:
    return (await sender.peer_row(receiver)).failures >= 1


async def test_sigkill_mid_delivery_loses_nothing_and_applies_nothing_twice(trio: Trio) -> None:
    a, b = trio.a, trio.b
    await poll(lambda: everything(b, a), what="earlier deliveries done")
    base, total = await count(b, a), 2_000
    await a.publish(total, now=now())
    await poll(lambda: _between(b, a, base, base + total), what="the first batches arrive")
    await a.kill()
    assert await a.pending(b) > 0, "the kill came after everything was delivered"
    seen = await count(b, a)
    await a.start()
    await poll(lambda: _more_than(b, a, seen), what="delivery resumes after the restart")
    await b.kill()  # the receiver too, in the middle of a batch or between two
    await b.start()
    await poll(lambda: everything(b, a), 60, "b holds every envelope, each once")
    await poll(lambda: drained(a), what="a's outbox empty")
    assert await whole_log(b, a)


async def _between(receiver: NodeProcess, origin: NodeProcess, low: int, high: int) -> bool:
    return low < await count(receiver, origin) < high


async def _more_than(receiver: NodeProcess, origin: NodeProcess, seen: int) -> bool:
    return await count(receiver, origin) > seen


async def test_catch_up_after_downtime(trio: Trio) -> None:
    a, b, c = trio.a, trio.b, trio.c
    await poll(lambda: everything(c, a), what="earlier deliveries done")
    await c.kill()
    await a.publish(4, now=now())
    await poll(lambda: everything(b, a), what="b holds a's new envelopes")
    await b.forget_outbox(c)  # the pushes to c are lost: only catch-up can bring them
    await c.start()
    await poll(lambda: everything(c, a), what="c catches up a's log from b")


async def test_a_newcomer_catches_up_the_history(trio: Trio) -> None:
    a = trio.a
    [d] = await trio.nodes.make(1)
    await d.start()
    await peer(a, d)  # a's history was signed before d existed: no outbox rows for it
    await poll(lambda: everything(d, a), 60, "d fetched a's whole history")
    await d.stop()
    await remove_peer(a, d.node_id)


async def test_misbehaving_peers_never_hold_up_a_live_one(trio: Trio) -> None:
    a, b = trio.a, trio.b
    key = await operational_key(a)
    hanging = asyncio.Event()

    async def fail(items: list[bytes]) -> web.StreamResponse:
        return web.Response(status=500)

    async def too_many(items: list[bytes]) -> web.StreamResponse:
        return web.Response(status=429, headers={"Retry-After": "999999999"})

    async def hang(items: list[bytes]) -> web.StreamResponse:
        hanging.set()
        await asyncio.Event().wait()  # until the client gives up and the server stops
        raise AssertionError

    fakes = [FakeNode(key, fail), FakeNode(key, too_many), FakeNode(key, hang)]
    for fake in fakes:
        await fake.start()
        await add_fake_peer(a, fake)
    try:
        await a.publish(5, now=now())
        started = time.monotonic()
        await poll(lambda: everything(b, a), what="b gets everything meanwhile")
        assert time.monotonic() - started < 5.0  # well before the hanging request times out
        await poll(lambda: _errors(a, fakes), 20, "each fake peer's failure is recorded")
        failing, limited, hung = [await a.peer_row(fake.node_id) for fake in fakes]
        assert failing.last_error == "http_500"
        assert limited.last_error == "http_429"
        assert limited.next_attempt_at - now() <= 4  # Retry-After clamped to retry_cap
        assert hung.last_error == "peer_timeout"
        assert hanging.is_set()
        assert all([await a.pending(fake.node_id) >= 5 for fake in fakes])  # none dropped
    finally:
        for fake in fakes:
            await remove_peer(a, fake.node_id)
            await fake.stop()


async def _errors(node: NodeProcess, fakes: list[FakeNode]) -> bool:
    rows = [await node.peer_row(fake.node_id) for fake in fakes]
    return all(row.failures >= 1 and row.last_error for row in rows)


async def test_two_processes_on_one_postgresql_database_never_send_a_batch_twice(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path, postgres_or_skip()) as nodes:
        [a] = await nodes.make(1, database="postgresql")
        twin = a.twin("n0-twin")
        nodes.nodes.append(twin)
        slow = FakeNode(await operational_key(a), delay=0.2)  # a batch stays in flight a while
        await slow.start()
        try:
            await add_fake_peer(a, slow)
            total = 800
            await a.publish(total, now=now())
            await nodes.start([a, twin])
            await poll(lambda: _all_received(slow, total), 60, "every envelope delivered")
            await poll(lambda: drained(a), what="the outbox empty")
        finally:
            await slow.stop()
            print(nodes.logs())
        assert len(set(slow.received)) == len(slow.received) >= total  # each exactly once


async def _all_received(fake: FakeNode, total: int) -> bool:
    return len(fake.received) >= total
