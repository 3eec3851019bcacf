"""Catch-up: pull what pushes missed from allies' ``GET /federation/v1/log`` (SPEC §14).

A node that was down, or that holds envelopes out of order (escrow), asks its allied peers
for the log of each origin of interest after its contiguous head (``origin_heads``):

* each allied peer, for its own log (the origin itself is the best source);
* each origin with a gap (escrowed envelopes after the head), from the peer that sent the
  first escrowed envelope, then from the other allied peers until the gap is filled;
* every other origin it holds envelopes of (relayed to it), from one allied peer per pass,
  a different one each pass, so a push that never came is found without asking everyone.

Pages go through :meth:`Inbox.receive_log <node.federation.inbox.Inbox.receive_log>`, which
checks every envelope exactly as a pushed one. A pass runs after start-up, every
``catchup_interval`` seconds of the injected clock, and at once when a transaction that
escrowed envelopes commits (:func:`on_escrow`: the inbox found a gap) or :meth:`Catchup.wake`
is called. An activation held for tallies this node lacks (node.services.calls_apply) nudges a
pass at once (:meth:`Catchup.nudge`, SPEC §9.3): the logs of the origins that should hold them
are asked of every ally, each origin at most once per :data:`NUDGE_EVERY` seconds, so forged
activations naming tallies that do not exist cannot keep the node pulling. Work is bounded:
at most :data:`PAGES_PER_ORIGIN` pages per origin and :data:`REQUESTS_PER_PEER` requests per
peer in a pass, one task per peer, so a dead or slow ally costs its own requests' timeouts
and never holds up the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol
from urllib.parse import urlencode

from sqlalchemy import event, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session

from node.clock import Clock
from node.config import FederationConfig
from node.errors import NodeError
from node.federation.client import FederationClient, FederationClientError
from node.federation.waiting import sleep_or_wake
from node.federation.wire import MAX_LOG_LIMIT, BatchResult, LogEntry, decode_log_page
from node.services.calls_apply import WANTED_LOGS
from node.storage import envelopes, peers, wakeups
from node.storage import inbox as inbox_store
from node.storage.errors import NotFound, StorageError
from node.storage.models import EscrowEntry, OriginHead
from node.storage.wakeups import own_session_class
from protocol import ProtocolError

__all__ = [
    "LOG_PATH",
    "NUDGE_EVERY",
    "NUDGE_ORIGINS",
    "PAGES_PER_ORIGIN",
    "REQUESTS_PER_PEER",
    "Catchup",
    "LogReceiver",
    "PassReport",
    "log_url",
    "on_escrow",
    "on_wanted_logs",
]

log = logging.getLogger(__name__)

LOG_PATH: Final = "/federation/v1/log"
PAGES_PER_ORIGIN: Final = 16  # pages of one origin from one peer in a pass
REQUESTS_PER_PEER: Final = 64  # requests to one peer in a pass
MAX_ALLIES: Final = 10_000
NUDGE_EVERY: Final = 60  # seconds: an origin is pulled for held activations at most this often
NUDGE_ORIGINS: Final = 16  # origins waiting for a nudged pass, at most
MAX_NUDGED: Final = 4_096  # origins remembered for NUDGE_EVERY
_ESCROWED: Final = "tadamun.catchup.escrowed"


class LogReceiver(Protocol):
    """What catch-up hands pages to: the inbox."""

    async def receive_log(
        self,
        sender: bytes,
        origin: bytes,
        entries: Sequence[LogEntry],
        keys: Sequence[bytes],
        *,
        now: int,
    ) -> BatchResult: ...


@dataclass(slots=True)
class PassReport:
    """What one pass did: requests made, entries received, and refusals by code."""

    requests: int = 0
    entries: int = 0
    accepted: int = 0
    failures: dict[str, int] = field(default_factory=dict)

    def add(self, other: PassReport) -> None:
        self.requests += other.requests
        self.entries += other.entries
        self.accepted += other.accepted
        for code, count in other.failures.items():
            self.failures[code] = self.failures.get(code, 0) + count


def log_url(endpoint: str, origin: bytes, after: int, limit: int = MAX_LOG_LIMIT) -> str:
    query = urlencode({"origin": origin.hex(), "after": after, "limit": limit})
    return f"{endpoint.rstrip('/')}{LOG_PATH}?{query}"


class Catchup:
    """The catch-up loop of one node process; :meth:`start`/:meth:`stop` from ``cleanup_ctx``."""

    def __init__(
        self,
        sessions: async_sessionmaker[Any],
        client: FederationClient,
        clock: Clock,
        config: FederationConfig,
        receiver: LogReceiver,
    ) -> None:
        self._sessions = sessions
        self._client = client
        self._clock = clock
        self._config = config
        self._receiver = receiver
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unlisten: list[Callable[[], None]] = []
        self._wanted: list[bytes] = []  # origins to ask every ally about in the next pass
        self._nudged: dict[bytes, int] = {}  # origin -> when it was last nudged
        self.passes = 0  # completed passes (tests wait on it)
        self.nudged = 0  # origins nudged so far (tests read it)

    async def start(self) -> None:
        self._unlisten = [on_escrow(self._sessions, self.wake),
                          on_wanted_logs(self._sessions, self.nudge)]  # fmt: skip
        self._task = asyncio.create_task(self._run(), name="catchup")
        self._task.add_done_callback(_report_failure)

    async def stop(self) -> None:
        for unlisten in self._unlisten:
            unlisten()
        self._unlisten = []
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)  # a failure was logged

    def wake(self) -> None:
        """Run a pass now (the inbox escrowed an envelope: there is a gap to fetch)."""
        self._kick.set()

    def nudge(self, origins: Collection[bytes]) -> None:
        """Ask every ally for these origins' logs in a pass now (a held activation lacks
        tallies they should hold). An origin nudged less than :data:`NUDGE_EVERY` seconds ago
        is left to the usual passes, and at most :data:`NUDGE_ORIGINS` wait; a nudge that adds
        none does not wake the loop."""
        now = self._clock.now()
        self._nudged = {o: at for o, at in self._nudged.items() if now - at < NUDGE_EVERY}
        fresh = sorted(set(origins) - self._nudged.keys())
        room = min(NUDGE_ORIGINS - len(self._wanted), MAX_NUDGED - len(self._nudged))
        for origin in fresh[: max(room, 0)]:
            self._nudged[origin] = now
            self._wanted.append(origin)
            self.nudged += 1
        if fresh and room > 0:
            self.wake()

    async def _run(self) -> None:
        while True:
            self._kick.clear()
            try:
                report = await self.run_pass()
            except (SQLAlchemyError, StorageError):  # a database not ready: the next pass
                log.warning("catch-up: database error", exc_info=True)
            else:
                if report.entries or report.failures:
                    log.info("catch-up: %s", report)
            self.passes += 1
            await self._wait(self._config.catchup_interval)

    async def _wait(self, seconds: float) -> None:
        await sleep_or_wake(self._clock, self._kick, seconds)

    async def run_pass(self) -> PassReport:
        """One pass over every allied peer, concurrently; what it did."""
        plan = await self._plan()
        reports = await asyncio.gather(
            *(self._from_peer(peer, where, origins) for peer, (where, origins) in plan.items())
        )
        total = PassReport()
        for report in reports:
            total.add(report)
        return total

    async def _plan(self) -> dict[bytes, tuple[str, list[bytes]]]:
        """Allied peer -> (endpoint, origins to ask it about, most useful first)."""
        async with self._sessions() as session:
            allied = await peers.list_peers(session, (peers.ALLIED,), limit=MAX_ALLIES)
            gaps = await inbox_store.list_gaps(session)
            if not allied:
                return {}
            relayed = await _relayed_origins(session, {p.node_id for p in allied})
        plan = {p.node_id: (p.endpoint, [p.node_id]) for p in allied}
        wanted, self._wanted = self._wanted, []
        for origin in wanted:  # nudged: every ally, right after its own log
            for _, origins in plan.values():
                _add(origins, origin)
        for gap in gaps:  # the sender of the escrowed envelope first, then every ally
            asked = [gap.via] if gap.via in plan else []
            for peer in asked + [p for p in plan if p != gap.via]:
                _add(plan[peer][1], gap.origin)
        ring = list(plan)  # other origins we hold: one ally each per pass, in turn
        for index, origin in enumerate(relayed):
            _add(plan[ring[(index + self.passes) % len(ring)]][1], origin)
        return plan

    async def _from_peer(self, peer: bytes, endpoint: str, origins: list[bytes]) -> PassReport:
        report = PassReport()
        for origin in origins:
            if report.requests >= REQUESTS_PER_PEER:
                break
            try:
                await self._fetch(peer, endpoint, origin, report)
            except (FederationClientError, NodeError) as exc:
                _count(report, exc.code)
                log.info("catch-up from %s: %s", peer.hex(), exc.code)
                break  # unreachable now, or blocked or removed mid-pass: the next pass sees
        return report

    async def _fetch(self, peer: bytes, endpoint: str, origin: bytes, report: PassReport) -> None:
        """Pages of ``origin`` from ``peer`` after our head, until the peer has no more, the
        head stops moving, or the per-pass bounds are reached."""
        for _ in range(PAGES_PER_ORIGIN):
            if report.requests >= REQUESTS_PER_PEER:
                return
            head = await self._head(origin)
            report.requests += 1
            response = await self._client.get(log_url(endpoint, origin, head), destination=peer)
            if not response.ok:
                _count(report, f"http_{response.status}")
                return
            try:
                page = decode_log_page(response.body, self._config.max_response_bytes)
            except ProtocolError as exc:
                _count(report, f"bad_answer: {exc.code}")
                return
            if not page.entries:
                return
            result = await self._receiver.receive_log(
                peer, origin, page.entries, page.keys, now=self._clock.now()
            )
            report.entries += len(page.entries)
            for status in result.results:
                if status in ("ok", "duplicate", "held"):
                    report.accepted += 1
                else:
                    _count(report, status)
            if not page.more or await self._head(origin) <= head:
                return

    async def _head(self, origin: bytes) -> int:
        async with self._sessions() as session:
            heads = await inbox_store.list_heads(session, [origin])
        return heads[origin][0] if origin in heads else 0


def on_escrow(
    sessions: async_sessionmaker[Any], escrowed: Callable[[], None]
) -> Callable[[], None]:
    """Call ``escrowed()`` after each commit of a transaction (of a session made by
    ``sessions``) that wrote escrow rows: the inbox holds envelopes ahead of a gap, which
    catch-up should fetch now rather than at its next pass. Returns the function that stops
    listening."""
    target = own_session_class(sessions)

    def executed(state: ORMExecuteState) -> None:  # ORM or core INSERT INTO escrow
        table = getattr(state.statement, "table", None)
        if state.is_insert and getattr(table, "name", None) == EscrowEntry.__tablename__:
            state.session.info[_ESCROWED] = True

    def committed(session: Session) -> None:
        if session.info.pop(_ESCROWED, False):
            escrowed()

    def rolled_back(session: Session) -> None:
        session.info.pop(_ESCROWED, None)

    listeners = (("do_orm_execute", executed), ("after_commit", committed),
                 ("after_rollback", rolled_back))  # fmt: skip
    for name, listener in listeners:
        event.listen(target, name, listener)

    def stop() -> None:
        for name, listener in listeners:
            event.remove(target, name, listener)

    return stop


def on_wanted_logs(
    sessions: async_sessionmaker[Any], wanted: Callable[[Collection[bytes]], None]
) -> Callable[[], None]:
    """Call ``wanted(origins)`` after each commit of a transaction (of a session made by
    ``sessions``) that noted origins under :data:`~node.services.calls_apply.WANTED_LOGS`:
    an activation was held for tallies this node lacks. Returns the function that stops
    listening."""
    return wakeups.listen(sessions, WANTED_LOGS, wanted)


def _report_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("catch-up stopped", exc_info=task.exception())


def _add(origins: list[bytes], origin: bytes) -> None:
    if origin not in origins:
        origins.append(origin)


async def _relayed_origins(session: AsyncSession, allies: Collection[bytes]) -> list[bytes]:
    """Origins this node holds envelopes of that are neither itself nor an ally."""
    try:
        own: bytes | None = await envelopes.get_node_id(session)
    except NotFound:  # no identity yet: every origin held is someone else's
        own = None
    heads = await session.scalars(select(OriginHead.origin).order_by(OriginHead.origin))
    return [origin for origin in heads if origin != own and origin not in allies]


def _count(report: PassReport, code: str) -> None:
    report.failures[code] = report.failures.get(code, 0) + 1
