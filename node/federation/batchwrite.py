"""Writing one planned inbox batch (:class:`~node.federation.batch.Plan`) in one transaction:
envelopes in one INSERT, escrow, heads, fork evidence, the handlers
(:mod:`node.federation.handlers`) and the relay rows (``outbox.enqueue_many``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Collection, Sequence
from typing import Any, Final, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from node.federation import handlers
from node.federation.batch import Plan, Status, View
from node.federation.chain import Link
from node.storage import inbox as store
from node.storage.models import EnvelopeRow
from node.storage.peers import ALLIED

__all__ = ["ESCROW_PER_ORIGIN", "ESCROW_TOTAL", "Enqueue", "Writer"]

log = logging.getLogger(__name__)

ESCROW_PER_ORIGIN: Final = 1_024
ESCROW_TOTAL: Final = 16_384


class Enqueue(Protocol):
    """``node.federation.outbox.enqueue_many``: relay rows for stored envelopes."""

    def __call__(
        self, session: AsyncSession, rows: Sequence[EnvelopeRow], *, now: int,
        skip: Collection[bytes] = (),
    ) -> Awaitable[int]: ...  # fmt: skip


class Writer:
    """The write transaction of one planned batch."""

    def __init__(
        self, session: AsyncSession, plan: Plan, view: View, statuses: list[str], now: int
    ) -> None:
        self.session, self.plan, self.view, self.statuses, self.now = (
            session, plan, view, statuses, now,
        )  # fmt: skip

    async def write(self, sender: bytes, enqueue: Enqueue) -> None:
        plan = self.plan
        await self._forks()
        rows = [self._row(origin, link) for origin, link in plan.accepted]
        await store.insert_envelopes(self.session, rows)
        await store.delete_escrow(self.session, plan.unescrow)
        await self._escrow(sender)
        await store.put_heads(self.session, plan.heads, known=self.view.heads.keys())
        for origin, link in plan.evidence:
            await self._evidence(origin, link)
        await self._apply()
        await self._relay(sender, rows, enqueue)

    def _row(self, origin: bytes, link: Link) -> tuple[Any, ...]:
        """The envelope row, its values in :data:`~node.storage.inbox.ENVELOPE_COLUMNS`
        order; a withheld place has no type or audience unless its envelope was seen."""
        if link.index is not None:
            self.statuses[link.index] = link.status
        return (
            origin, link.seq, link.id, link.type, link.audience, link.wire, link.created,
            self.now,
        )  # fmt: skip

    async def _forks(self) -> None:
        """Places taken already: a different envelope there is a fork; proven (evidence
        kept) only when both are signed."""
        plan, wanted = self.plan, [(o, k.seq) for o, k in self.plan.fork_checks]
        wanted += [(o, head) for o, head, _, known in plan.broken if known is None]
        held = await store.rows_at(self.session, wanted)
        for origin, link in plan.fork_checks:
            there, signed = held.get((origin, link.seq), (b"", False))
            if there == link.id:  # stored by another batch since this one read
                self._answer(link, Status.DUPLICATE)
                continue
            self._answer(link, Status.FORK)
            if signed and link.verified:
                plan.evidence.append((origin, link))
        for origin, head, link, known in plan.broken:
            self._answer(link, Status.FORK)
            if link.escrowed:
                plan.unescrow.append((origin, link.seq))
            head_signed = held.get((origin, head), (b"", False))[1] if known is None else known
            if head_signed:
                plan.evidence.append((origin, link))

    def _answer(self, link: Link, status: str) -> None:
        if link.index is not None:
            self.statuses[link.index] = status

    async def _escrow(self, sender: bytes) -> None:
        if not self.plan.to_escrow:
            return
        total = await store.count_escrow(self.session) - len(self.plan.unescrow)
        per_origin = {o: len(refs) for o, refs in self.view.escrow.items()}
        rows = []
        for origin, link in self.plan.to_escrow:
            count = per_origin.get(origin, 0)
            if count >= ESCROW_PER_ORIGIN or total >= ESCROW_TOTAL:
                self._answer(link, Status.ESCROW_FULL)
                continue
            per_origin[origin], total = count + 1, total + 1
            self._answer(link, Status.HELD)
            rows.append({"origin": origin, "seq": link.seq, "id": link.id, "wire": link.wire,
                         "received_at": self.now, "via": sender})  # fmt: skip
        await store.put_escrow(self.session, rows)

    async def _evidence(self, origin: bytes, link: Link) -> None:
        assert link.signed is not None  # noqa: S101 - only signed links are evidence
        log.warning("fork: %s signed two envelopes for seq %d", origin.hex(), link.seq)
        await store.put_fork_evidence(
            self.session, id=link.id, kind="envelope", origin=origin, seq=link.seq,
            wire=link.signed.to_bytes(), now=self.now,
        )  # fmt: skip

    async def _apply(self) -> None:
        for origin, link in self.plan.accepted:
            if link.wire is None or link.signed is None or not handlers.handles(link.type):
                continue
            context = handlers.Context(origin, link.seq, self.view.self_id, self.now)
            code = await handlers.apply(self.session, link.signed, context)
            if code is not None:
                self._answer(link, code)

    async def _relay(self, sender: bytes, rows: list[tuple[Any, ...]], enqueue: Enqueue) -> None:
        """Relay rows for what was stored, when some allied peer could receive it (node:
        envelopes of other origins never travel on, SPEC §5.5; coalition: ones go to the
        members among them, SPEC §15.4)."""
        relayable = [
            (row, link.via or sender)
            for row, (_, link) in zip(rows, self.plan.accepted, strict=True)
            if link.wire is not None and _relayable(link.audience)
        ]
        if not relayable:
            return
        allied = {node for node, state in self.view.peer_states.items() if state == ALLIED}
        by_via: dict[bytes, list[EnvelopeRow]] = {}
        for row, via in relayable:
            if allied - {via, row[0]}:
                values = dict(zip(store.ENVELOPE_COLUMNS, row, strict=True))
                by_via.setdefault(via, []).append(EnvelopeRow(**values))
        for via, group in by_via.items():
            await enqueue(self.session, group, now=self.now, skip=(via,))


def _relayable(audience: str) -> bool:
    return audience in ("public", "allies") or audience.startswith("coalition:")
