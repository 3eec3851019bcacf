"""Delivery: one worker per peer pushes its outbox rows to ``POST /federation/v1/inbox``.

The rules (DESIGN §4, STYLE.md §12-§14, SPEC §14 "Delivery"):

* A worker runs while its peer has rows. It is woken in process when a transaction that
  wrote rows for its peer commits (:func:`node.storage.outbox.on_commit`), by the injected
  clock when its next attempt is due, and every ``delivery_poll`` seconds by the supervisor,
  which also starts workers for rows that other processes wrote and notices backoff resets
  made elsewhere. Each worker is its own task, and every request has the client's timeouts,
  so a dead or hanging peer never delays another.
* An attempt claims the peer (a lease, :func:`node.storage.outbox.claim_peer`), drops rows
  whose envelope expired, and sends the oldest rows in order: at most 256 envelopes and
  :data:`MAX_BATCH_BYTES`, with the key logs of their origins (at most 64 key events).
* Per item: ``ok``, ``duplicate`` and ``held`` are delivered; ``from_future`` is kept for a
  later attempt; any other code is a permanent refusal: the row is deleted and the count noted
  in the peer's ``last_error``.
* Whole request (:func:`classify`): 2xx is read item by item; 413 halves this peer's batch
  and tries again (a single envelope refused as too large is a permanent refusal); any other
  4xx except 401, 408 and 429 refuses the batch for good; 401, 408, 429, 5xx, an unusable
  answer and every client error (unreachable, timeout, refused address) are retried.
* Retries back off exponentially with full jitter, ``retry_base`` doubling up to
  ``retry_cap`` seconds (:func:`backoff`); a ``Retry-After`` is honoured but clamped to the
  cap. Any authenticated contact from the peer resets the backoff
  (:func:`node.storage.peers.record_contact`).

Nothing is dropped but by the envelope's own expiry or the peer's refusal.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.clock import Clock
from node.config import FederationConfig
from node.federation.client import FederationClient, FederationClientError
from node.federation.outbox import relay_wire
from node.federation.waiting import sleep_or_wake
from node.federation.wire import (
    MAX_ITEMS,
    MAX_KEYS,
    decode_batch_result,
    encode_inbox_request,
)
from node.storage import envelopes, peers
from node.storage import outbox as store
from node.storage.outbox import Pending
from protocol import ProtocolError

__all__ = [
    "INBOX_PATH",
    "MAX_BATCH_BYTES",
    "Delivery",
    "Verdict",
    "backoff",
    "classify",
]

log = logging.getLogger(__name__)

INBOX_PATH: Final = "/federation/v1/inbox"
MAX_BATCH_BYTES: Final = 786_432  # under the 1 MiB default request limit of a receiver
LEASE_MARGIN: Final = 10  # seconds a lease outlasts the longest possible request
DELIVERABLE: Final = (peers.INTRODUCED, peers.ALLIED)
DELIVERED: Final = frozenset({"ok", "duplicate", "held"})
RETRY_ITEM: Final = frozenset({"from_future"})  # the receiver's clock is behind: try later
STOP_GRACE: Final = 5.0  # seconds an attempt in flight may finish in when the node stops


class Verdict(Enum):
    """What a whole answer means for the batch (STYLE.md §13)."""

    READ_ITEMS = "read_items"  # 2xx: per-item results
    SHRINK = "shrink"  # 413: the batch was too large
    PERMANENT = "permanent"  # other 4xx: refused for good
    RETRY = "retry"  # 401, 408, 429, 5xx, anything else


def classify(status: int) -> Verdict:
    if 200 <= status < 300:
        return Verdict.READ_ITEMS
    if status == 413:
        return Verdict.SHRINK
    if 400 <= status < 500 and status not in (401, 408, 429):
        return Verdict.PERMANENT
    return Verdict.RETRY


def backoff(
    failures: int, *, base: int, cap: int, rng: random.Random, retry_after: int | None = None
) -> int:
    """Seconds before the next attempt after ``failures`` failures in a row (at least 1):
    full jitter below ``base * 2**(failures-1)``, capped at ``cap``; at least ``retry_after``
    when the peer gave one, itself clamped to ``cap``."""
    ceiling = min(cap, base * 2 ** min(max(failures - 1, 0), 40))
    delay = max(1, round(rng.uniform(0, ceiling)))
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return min(delay, cap)


@dataclass(frozen=True, slots=True)
class _Claim:
    """A claimed attempt: the batch and what sending it needs."""

    endpoint: str
    lease_until: int
    failures: int
    batch: list[Pending]
    keys: list[bytes]


@dataclass(frozen=True, slots=True)
class _Result:
    """How an attempt ended: rows done with, whether it counts as a failure, and a note."""

    done: list[int]
    failed: bool
    error: str | None = None
    refused: int = 0
    retry_after: int | None = None
    shrink: bool = False

    @property
    def delivered(self) -> bool:
        return len(self.done) > self.refused


class Delivery:
    """The delivery workers of one node process; :meth:`start` and :meth:`stop` from the
    application's ``cleanup_ctx``."""

    def __init__(
        self,
        sessions: async_sessionmaker[Any],
        client: FederationClient,
        clock: Clock,
        config: FederationConfig,
        node_id: bytes,
        *,
        rng: random.Random | None = None,
        stop_grace: float = STOP_GRACE,
    ) -> None:
        self._sessions = sessions
        self._client = client
        self._clock = clock
        self._config = config
        self._node_id = node_id
        self._rng = rng or random.SystemRandom()
        self._lease = int(config.connect_timeout + config.request_timeout) + LEASE_MARGIN
        self._workers: dict[bytes, asyncio.Task[None]] = {}
        self._kicks: dict[bytes, asyncio.Event] = {}
        self._limits: dict[bytes, int] = {}  # batch size per peer, halved on 413
        self._supervisor: asyncio.Task[None] | None = None
        self._unlisten: Callable[[], None] | None = None
        self._stopping = False
        self._stop_grace = stop_grace
        self.attempts = 0  # attempts made, whatever came of them (tests, health)
        self.polls = 0  # supervisor passes over the outbox

    async def start(self) -> None:
        self._unlisten = store.on_commit(self._sessions, self.wake, self.contacted)
        self._supervisor = asyncio.create_task(self._supervise(), name="delivery-supervisor")

    async def stop(self) -> None:
        """Stop taking work, let attempts in flight finish for a moment, then cancel."""
        self._stopping = True
        if self._unlisten is not None:
            self._unlisten()
        tasks = [t for t in (self._supervisor, *self._workers.values()) if t is not None]
        for kick in self._kicks.values():
            kick.set()
        if self._supervisor is not None:
            self._supervisor.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self._stop_grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def wake(self, peer_ids: Collection[bytes]) -> None:
        """New rows for these peers have been committed: make sure their workers run."""
        if self._stopping:
            return
        for peer in peer_ids:
            self._kicks.setdefault(peer, asyncio.Event()).set()
            if peer not in self._workers:
                task = asyncio.create_task(self._work(peer), name=f"delivery-{peer.hex()[:12]}")
                self._workers[peer] = task
                task.add_done_callback(self._finished)

    def contacted(self, peer_ids: Collection[bytes]) -> None:
        """These peers reached us, so their backoff is over: a worker waiting it out tries
        again now. A peer without a worker has nothing queued here, so nothing starts."""
        for peer in peer_ids:
            if peer in self._workers:
                self._kicks[peer].set()

    def active(self) -> frozenset[bytes]:
        """The peers whose workers are running (tests, health)."""
        return frozenset(self._workers)

    def _finished(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery worker %s failed", task.get_name(), exc_info=task.exception())

    async def _supervise(self) -> None:
        while not self._stopping:
            try:
                async with self._sessions() as session:
                    due = await store.list_peers_with_pending(session, DELIVERABLE)
            except SQLAlchemyError:
                log.warning("delivery: cannot read the outbox", exc_info=True)
                due = []
            self.wake(due)
            self.polls += 1
            await self._clock.sleep(self._config.delivery_poll)

    async def _work(self, peer: bytes) -> None:
        """The worker of ``peer``: attempts until its queue is empty."""
        kick = self._kicks[peer]
        try:
            while not self._stopping:
                kick.clear()
                try:
                    delay = await self._attempt(peer)
                except SQLAlchemyError:
                    log.warning("delivery to %s: database error", peer.hex(), exc_info=True)
                    delay = self._config.delivery_poll
                self.attempts += 1
                if delay is None:
                    if kick.is_set():
                        continue
                    return  # idle: the next commit or poll starts a new worker
                if delay > 0:
                    await self._wait(kick, delay)
        finally:
            if self._workers.get(peer) is asyncio.current_task():
                del self._workers[peer]

    async def _wait(self, kick: asyncio.Event, seconds: float) -> None:
        await sleep_or_wake(self._clock, kick, seconds)

    async def _attempt(self, peer: bytes) -> float | None:
        """One attempt: seconds until the next one is due, or None when nothing is left."""
        now = self._clock.now()
        claim = await self._claim(peer, now)
        if not isinstance(claim, _Claim):
            return claim
        result = await self._send(peer, claim)
        return await self._record(peer, claim, result)

    async def _claim(self, peer: bytes, now: int) -> _Claim | float | None:
        lease_until = now + self._lease
        async with self._sessions.begin() as session:
            row = await peers.get_peer(session, peer)
            if row is None or row.state not in DELIVERABLE:
                return None
            if row.next_attempt_at > now:
                return float(row.next_attempt_at - now)
            if not await store.claim_peer(
                session, peer, DELIVERABLE, now=now, lease_until=lease_until
            ):
                return float(self._lease)  # another process holds it
            await store.delete_expired(session, peer, now)
            limit = self._limits.get(peer, MAX_ITEMS)
            batch = await store.list_batch(session, peer, limit=limit, max_bytes=MAX_BATCH_BYTES)
            if not batch:
                await store.finish_attempt(
                    session, peer, lease_until=lease_until, next_attempt_at=0,
                    failures=None, delivered_at=None, error=None,
                )  # fmt: skip
                return None
            await store.mark_attempted(session, [p.row_id for p in batch])
            keys = await _key_logs(session, sorted({p.origin for p in batch}))
            return _Claim(row.endpoint, lease_until, row.failures, batch, keys)

    async def _send(self, peer: bytes, claim: _Claim) -> _Result:
        items = [relay_wire(p.wire, self._node_id) for p in claim.batch]
        body = encode_inbox_request(items, claim.keys)
        url = claim.endpoint.rstrip("/") + INBOX_PATH
        try:
            response = await self._client.post(url, body, destination=peer)
        except FederationClientError as exc:
            return _Result([], failed=True, error=exc.code)
        verdict = classify(response.status)
        if verdict is Verdict.READ_ITEMS:
            return self._read_items(claim, response.body)
        if verdict is Verdict.SHRINK and len(claim.batch) > 1:
            return _Result([], failed=False, error="http_413", shrink=True)
        if verdict is Verdict.RETRY:
            error = f"http_{response.status}"
            return _Result([], failed=True, error=error, retry_after=response.retry_after)
        done = [p.row_id for p in claim.batch]
        note = f"refused {len(done)}: http_{response.status}"
        return _Result(done, failed=False, error=note, refused=len(done))

    def _read_items(self, claim: _Claim, body: bytes) -> _Result:
        try:
            answer = decode_batch_result(body, self._config.max_response_bytes)
        except ProtocolError as exc:
            return _Result([], failed=True, error=f"bad_answer: {exc.code}")
        if len(answer.results) != len(claim.batch):
            return _Result([], failed=True, error="bad_answer: result count")
        done: list[int] = []
        refused: dict[str, int] = {}
        for pending, status in zip(claim.batch, answer.results, strict=True):
            if status in RETRY_ITEM:
                continue
            done.append(pending.row_id)
            if status not in DELIVERED:
                refused[status] = refused.get(status, 0) + 1
        count = sum(refused.values())
        note = None
        if count:
            codes = ", ".join(f"{code} x{n}" for code, n in sorted(refused.items()))
            note = f"refused {count}: {codes}"
        if not done:  # every item is to be tried again later
            return _Result([], failed=True, error="retry: from_future")
        return _Result(done, failed=False, error=note, refused=count)

    async def _record(self, peer: bytes, claim: _Claim, result: _Result) -> float | None:
        now = self._clock.now()
        if result.shrink:
            self._limits[peer] = max(1, len(claim.batch) // 2)
        if result.failed:
            failures = claim.failures + 1
            delay = backoff(
                failures, base=self._config.retry_base, cap=self._config.retry_cap,
                rng=self._rng, retry_after=result.retry_after,
            )  # fmt: skip
            next_at: int = now + delay
        else:
            failures, delay, next_at = 0, 0, 0
        async with self._sessions.begin() as session:
            await store.delete_entries(session, result.done)
            await store.finish_attempt(
                session, peer, lease_until=claim.lease_until, next_attempt_at=next_at,
                failures=failures, delivered_at=now if result.delivered else None,
                error=result.error,
            )  # fmt: skip
        if result.failed:
            log.info("delivery to %s failed (%s), retry in %ss", peer.hex(), result.error, delay)
        return float(delay)


async def _key_logs(session: AsyncSession, origins: list[bytes]) -> list[bytes]:
    """The whole key logs of ``origins``, as many whole logs as fit in :data:`MAX_KEYS`."""
    keys: list[bytes] = []
    for origin in origins:
        log_wires = await envelopes.list_key_events(session, origin)
        if len(keys) + len(log_wires) <= MAX_KEYS:
            keys.extend(log_wires)
    return keys
