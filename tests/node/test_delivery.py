"""Delivery workers (node.federation.delivery) against fake peers on 127.0.0.1: batches in
order with key logs, per-item and whole-request outcomes, backoff with jitter and a cap,
Retry-After clamped, resets by contact, expiry, a hanging peer beside a live one, and two
processes (two engines on one database) never sending one batch twice."""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from delivery_support import (
    Answer,
    FakePeer,
    Running,
    add_peer,
    advance_until,
    config,
    eventually,
    get_peer,
    own_key_log,
    publish,
    run_delivery,
    statuses,
)
from sqlalchemy import func, select
from test_decisions_support import START, Node

from node.config import ConfigError, load_config
from node.federation.delivery import Delivery, Verdict, backoff, classify
from node.storage import outbox as outbox_store
from node.storage import peers
from node.storage.db import create_engine, session_factory
from node.storage.models import OutboxEntry
from protocol import SignedEnvelope

MakePeer = Callable[..., Awaitable[FakePeer]]


@pytest.fixture
async def fake_peer(node: Node) -> AsyncIterator[MakePeer]:
    """Start fake peers, peered with ``node`` (allied unless told otherwise)."""
    started: list[FakePeer] = []

    async def make(state: str = "allied") -> FakePeer:
        peer = FakePeer(secrets.token_bytes(32), node.identity.operational.public, node.clock)
        await peer.start()
        started.append(peer)
        await add_peer(node, peer.node_id, peer.url, state)
        return peer

    yield make
    for peer in started:
        await peer.stop()


async def pending(node: Node, peer: bytes | None = None) -> int:
    query = select(func.count()).select_from(OutboxEntry)
    if peer is not None:
        query = query.where(OutboxEntry.peer == peer)
    async with node.sessions() as session:
        return int(await session.scalar(query) or 0)


def answering(*results: str) -> Callable[[list[bytes]], Awaitable[web.StreamResponse]]:
    async def answer(items: list[bytes]) -> web.StreamResponse:
        return statuses(list(results)[: len(items)])

    return answer


def status(code: int, **headers: str) -> Callable[[list[bytes]], Awaitable[web.StreamResponse]]:
    async def answer(items: list[bytes]) -> web.StreamResponse:
        return web.Response(status=code, headers=headers, body=b"")

    return answer


# --- pure rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "verdict"),
    [(200, Verdict.READ_ITEMS), (202, Verdict.READ_ITEMS), (400, Verdict.PERMANENT),
     (403, Verdict.PERMANENT), (404, Verdict.PERMANENT), (413, Verdict.SHRINK),
     (401, Verdict.RETRY), (408, Verdict.RETRY), (429, Verdict.RETRY), (500, Verdict.RETRY),
     (503, Verdict.RETRY), (302, Verdict.RETRY)],
)  # fmt: skip
def test_classify(code: int, verdict: Verdict) -> None:
    assert classify(code) is verdict


def test_backoff_grows_with_full_jitter_up_to_the_cap() -> None:
    rng = random.Random(7)
    for failures in range(1, 30):
        ceiling = min(3_600, 10 * 2 ** (failures - 1))
        delays = [backoff(failures, base=10, cap=3_600, rng=rng) for _ in range(200)]
        assert all(1 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # jitter spreads over the whole range
    assert min(backoff(1, base=10, cap=3_600, rng=rng) for _ in range(200)) <= 2


def test_retry_after_is_honoured_but_clamped() -> None:
    rng = random.Random(1)
    assert backoff(1, base=10, cap=3_600, rng=rng, retry_after=120) >= 120
    assert backoff(1, base=10, cap=3_600, rng=rng, retry_after=10**10) == 3_600
    assert backoff(50, base=10, cap=3_600, rng=rng, retry_after=0) <= 3_600


# --- delivery ------------------------------------------------------------------------------------


async def test_delivers_in_order_with_the_key_log_and_records_health(
    node: Node, fake_peer: MakePeer
) -> None:
    peer = await fake_peer()
    await publish(node, 3)
    running = await run_delivery(node)
    try:
        await eventually(lambda: _none_pending(node))
        await publish(node, 2)  # woken by the commit: no poll, no clock
        await eventually(lambda: _none_pending(node))
    finally:
        await running.stop()
    assert peer.seqs() == [1, 2, 3, 4, 5]
    key_log = await own_key_log(node)
    assert all(keys == key_log for _, keys in peer.batches)
    state = await get_peer(node, peer.node_id)
    assert (state.failures, state.next_attempt_at, state.last_delivery_at) == (0, 0, START)


async def _none_pending(node: Node) -> bool:
    return await pending(node) == 0


async def test_item_results_delete_each_row(node: Node, fake_peer: MakePeer) -> None:
    peer = await fake_peer()
    peer.answer = answering("ok", "duplicate", "held", "bad_signature", "fork")
    await publish(node, 5)
    running = await run_delivery(node)
    try:
        await eventually(lambda: _none_pending(node))
    finally:
        await running.stop()
    state = await get_peer(node, peer.node_id)
    assert (state.last_error, state.failures, state.last_delivery_at) == (
        "refused 2: bad_signature x1, fork x1", 0, START,
    )  # fmt: skip


async def test_items_from_the_future_are_kept_for_later(node: Node, fake_peer: MakePeer) -> None:
    peer = await fake_peer()

    async def second_too_early(items: list[bytes]) -> web.StreamResponse:
        seqs = [SignedEnvelope.from_bytes(item).envelope.seq for item in items]
        return statuses(["from_future" if seq == 2 else "ok" for seq in seqs])

    peer.answer = second_too_early
    await publish(node, 3)
    running = await run_delivery(node)
    try:
        await eventually(lambda: _failures_are(node, peer.node_id, 1))
        assert await pending(node) == 1
        assert (await get_peer(node, peer.node_id)).last_error == "retry: from_future"
    finally:
        await running.stop()
    assert peer.seqs() == [1, 2, 3, 2]


async def _pending_is(node: Node, count: int) -> bool:
    return await pending(node) == count


async def test_server_errors_back_off_then_deliver(node: Node, fake_peer: MakePeer) -> None:
    peer = await fake_peer()
    peer.answer = status(500)
    await publish(node)
    running = await run_delivery(node, config(retry_base=10))
    try:
        await eventually(lambda: _failures_are(node, peer.node_id, 1))
        state = await get_peer(node, peer.node_id)
        assert START < state.next_attempt_at <= START + 10
        assert state.last_error == "http_500"
        await advance_until(node.clock, lambda: _failures_are(node, peer.node_id, 2), 10)
        state = await get_peer(node, peer.node_id)
        assert state.next_attempt_at - node.now() <= 20
        peer.answer = answering(*["ok"] * 10)
        await advance_until(node.clock, lambda: _none_pending(node), 20)
    finally:
        await running.stop()
    assert peer.seqs() == [1, 1, 1]
    assert (await get_peer(node, peer.node_id)).failures == 0


async def _failures_are(node: Node, peer: bytes, count: int) -> bool:
    return (await get_peer(node, peer)).failures == count


async def test_429_with_a_huge_retry_after_waits_the_cap(node: Node, fake_peer: MakePeer) -> None:
    peer = await fake_peer()
    peer.answer = status(429, **{"Retry-After": "999999999"})
    await publish(node)
    running = await run_delivery(node, config(retry_cap=7_200))
    try:
        await eventually(lambda: _failures_are(node, peer.node_id, 1))
        assert (await get_peer(node, peer.node_id)).next_attempt_at == START + 7_200
    finally:
        await running.stop()


@pytest.mark.parametrize("code", [400, 403, 404])
async def test_other_4xx_refuse_the_batch_for_good(
    node: Node, fake_peer: MakePeer, code: int
) -> None:
    peer = await fake_peer()
    peer.answer = status(code)
    await publish(node, 3)
    running = await run_delivery(node)
    try:
        await eventually(lambda: _none_pending(node))
    finally:
        await running.stop()
    state = await get_peer(node, peer.node_id)
    assert (state.failures, state.last_error) == (0, f"refused 3: http_{code}")
    assert len(peer.batches) == 1


async def test_413_halves_the_batch(node: Node, fake_peer: MakePeer) -> None:
    peer = await fake_peer()

    async def small_only(items: list[bytes]) -> web.StreamResponse:
        return statuses(["ok"] * len(items)) if len(items) <= 2 else await status(413)(items)

    peer.answer = small_only
    await publish(node, 5)
    running = await run_delivery(node)
    try:
        await eventually(lambda: _none_pending(node))
    finally:
        await running.stop()
    assert [len(items) for items, _ in peer.batches] == [5, 2, 2, 1]
    assert peer.seqs()[-5:] == [1, 2, 3, 4, 5]


async def test_contact_from_the_peer_ends_its_backoff(node: Node, fake_peer: MakePeer) -> None:
    peer = await fake_peer()
    peer.answer = status(503)
    await publish(node)
    running = await run_delivery(node, config(retry_base=3_000))
    try:
        await eventually(lambda: _failures_are(node, peer.node_id, 1))
        peer.answer = answering("ok")
        async with node.sessions.begin() as session:
            await peers.record_contact(session, peer.node_id, node.now())
        await eventually(lambda: _none_pending(node))  # no clock moved
    finally:
        await running.stop()


async def test_expired_envelopes_are_dropped_unsent(node: Node, fake_peer: MakePeer) -> None:
    peer = await fake_peer()
    peer.answer = status(500)
    await publish(node, expires=START + 60)
    await publish(node)
    running = await run_delivery(node, config(retry_base=100))
    try:
        await eventually(lambda: _failures_are(node, peer.node_id, 1))
        peer.answer = answering("ok", "ok")
        await advance_until(node.clock, lambda: _none_pending(node), 100)
    finally:
        await running.stop()
    assert peer.seqs()[-1:] == [2]
    assert 1 not in peer.seqs()[2:]


def answer_when(release: asyncio.Event, hung: asyncio.Event | None = None) -> Answer:
    """A peer's answer that waits until ``release`` is set, then takes every item
    (``hung`` is set when the request arrives)."""

    async def answer(items: list[bytes]) -> web.StreamResponse:
        if hung is not None:
            hung.set()
        await release.wait()
        return statuses(["ok"] * len(items))

    return answer


async def test_a_hanging_peer_never_delays_a_live_one(node: Node, fake_peer: MakePeer) -> None:
    """The live peer gets everything while the hanging peer's request is still open (no
    timing: the hang lasts until the test releases it)."""
    hanging, live = await fake_peer(), await fake_peer()
    hung, release = asyncio.Event(), asyncio.Event()
    hanging.answer = answer_when(release, hung)
    await publish(node, 2)
    running = await run_delivery(node, config(request_timeout=120.0))
    try:
        await eventually(lambda: _pending_for_is(node, live.node_id, 0), within=60)
        assert hung.is_set()  # its request was made, and is still open: not released yet
        assert await pending(node, hanging.node_id) == 2
        release.set()
        await eventually(lambda: _pending_for_is(node, hanging.node_id, 0), within=60)
    finally:
        release.set()
        await running.stop()
    assert live.seqs() == [1, 2]


async def test_a_request_that_outlasts_the_timeout_is_a_peer_timeout(
    node: Node, fake_peer: MakePeer
) -> None:
    hanging = await fake_peer()
    release = asyncio.Event()
    hanging.answer = answer_when(release)
    await publish(node, 2)
    running = await run_delivery(node, config(request_timeout=0.5))
    try:
        await eventually(lambda: _failures_are(node, hanging.node_id, 1), within=60)
        assert (await get_peer(node, hanging.node_id)).last_error == "peer_timeout"
        assert await pending(node, hanging.node_id) == 2
    finally:
        release.set()
        await running.stop()


async def _pending_for_is(node: Node, peer: bytes, count: int) -> bool:
    return await pending(node, peer) == count


async def test_unreachable_peers_are_retried(node: Node) -> None:
    await add_peer(node, secrets.token_bytes(32), "http://127.0.0.1:9")  # discard: refused
    await publish(node)
    running = await run_delivery(node)
    try:
        await eventually(lambda: _any_failure(node))
    finally:
        await running.stop()
    assert await pending(node) == 1


async def _any_failure(node: Node) -> bool:
    async with node.sessions() as session:
        [peer] = await peers.list_peers(session)
        return peer.failures == 1 and peer.last_error == "peer_unreachable"


async def test_blocked_peers_get_nothing(node: Node, fake_peer: MakePeer) -> None:
    peer = await fake_peer()
    await publish(node, 2)
    async with node.sessions.begin() as session:
        row = await peers.get_peer(session, peer.node_id)
        assert row is not None
        row.state = peers.BLOCKED
    running = await run_delivery(node, config(delivery_poll=1))
    try:
        await advance_until(node.clock, lambda: _polled(running.delivery, 3), 1)
    finally:
        await running.stop()
    assert (peer.batches, running.delivery.attempts) == ([], 0)
    assert await pending(node) == 2  # kept, not sent: unblocking resumes delivery


async def _polled(delivery: Delivery, count: int) -> bool:
    return delivery.polls >= count


async def test_two_processes_never_send_one_batch_twice(
    node: Node, fake_peer: MakePeer, database_url: str
) -> None:
    peer = await fake_peer()
    release = asyncio.Event()
    peer.answer = answer_when(release)
    await publish(node, 3)
    other_engine = create_engine(database_url)
    other = Node(**{**node.__dict__, "sessions": session_factory(other_engine)})
    first, second = await run_delivery(node), await run_delivery(other)
    try:
        await eventually(lambda: _arrived(peer, 1))
        await eventually(lambda: _attempted(first, second))  # the other found the lease
        assert len(peer.batches) == 1
        release.set()
        await eventually(lambda: _none_pending(node))
    finally:
        release.set()
        await first.stop()
        await second.stop()
        await other_engine.dispose()
    assert peer.seqs() == [1, 2, 3]


async def _attempted(*running: Running) -> bool:
    return sum(r.delivery.attempts for r in running) >= 1


async def _arrived(peer: FakePeer, count: int) -> bool:
    return len(peer.batches) >= count


async def test_stop_is_graceful_with_a_request_in_flight(node: Node, fake_peer: MakePeer) -> None:
    peer = await fake_peer()
    never = asyncio.Event()

    async def hang(items: list[bytes]) -> web.StreamResponse:
        await never.wait()
        raise AssertionError

    peer.answer = hang
    await publish(node)
    running = await run_delivery(node, config(request_timeout=30.0), stop_grace=0.2)
    await eventually(lambda: _arrived(peer, 1))
    async with asyncio.timeout(10):
        await running.stop()
    never.set()
    assert not running.delivery.active()
    assert await pending(node) == 1


def test_delivery_settings_are_checked(tmp_path: Path) -> None:
    (tmp_path / "tadamun.toml").write_text(
        "[federation]\nretry_base = 0\nretry_cap = 100000\ndelivery_poll = -1\n"
        "catchup_interval = 0\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path, {}, {})
    for key in ("retry_base", "retry_cap", "delivery_poll", "catchup_interval"):
        assert any(f"federation.{key}" in problem for problem in raised.value.problems), key
    defaults = load_config(tmp_path / "none", {}, {}).federation
    assert (defaults.retry_base, defaults.retry_cap, defaults.catchup_interval) == (30, 14_400, 600)


async def test_a_contact_ends_a_backoff_but_not_a_lease(node: Node) -> None:
    healthy, failing = secrets.token_bytes(32), secrets.token_bytes(32)
    await add_peer(node, healthy, "https://healthy.example")
    await add_peer(node, failing, "https://failing.example", failures=3, next_attempt_at=START)
    async with node.sessions.begin() as session:
        for peer in (healthy, failing):
            assert await outbox_store.claim_peer(
                session, peer, ("allied",), now=START, lease_until=START + 60
            )
        assert not await outbox_store.claim_peer(  # held: a second claimer gets nothing
            session, healthy, ("allied",), now=START, lease_until=START + 60
        )
    async with node.sessions.begin() as session:
        for peer in (healthy, failing):
            await peers.record_contact(session, peer, START + 1)
    healthy_row, failing_row = await get_peer(node, healthy), await get_peer(node, failing)
    assert (healthy_row.next_attempt_at, healthy_row.last_contact_at) == (START + 60, START + 1)
    assert (failing_row.next_attempt_at, failing_row.failures) == (0, 0)
