"""Batched queries of the inbox: one statement per question per batch, never one per envelope
(DESIGN §5: a statement costs more than verifying a signature).

Heads (``origin_heads``), escrow and fork evidence live here; envelopes are inserted with one
INSERT of many rows per batch. The statements every batch runs (its facts, the chain state,
the envelopes, the heads) are plain SQL (:mod:`node.storage.rawsql`). Every function takes
an open session; the caller owns the transaction. The primary keys are the last guard
against two writers: a lost race is an IntegrityError and the caller retries the batch.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Final, NamedTuple, cast

from sqlalchemy import (
    Table,
    delete,
    func,
    insert,
    or_,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession

from node.storage.models import (
    EnvelopeRow,
    EscrowEntry,
    ForkEvidence,
    OriginHead,
    Peer,
)
from node.storage.peers import ALLIED
from node.storage.rawsql import Raw, marks

__all__ = [
    "ENVELOPE_COLUMNS",
    "BatchFacts",
    "ChainState",
    "EscrowRef",
    "Gap",
    "batch_facts",
    "chain_state",
    "count_escrow",
    "delete_escrow",
    "escrow_wires",
    "held_ids",
    "held_of",
    "insert_envelopes",
    "list_escrow",
    "list_gaps",
    "list_heads",
    "peer_states",
    "put_escrow",
    "put_fork_evidence",
    "put_heads",
    "rows_at",
]


_ESCROW: Final = cast(Table, EscrowEntry.__table__)


class EscrowRef(NamedTuple):
    origin: bytes
    seq: int
    id: bytes
    via: bytes | None


class ChainState(NamedTuple):
    """Where each origin's log stands: its head, what waits in escrow, and the head of its
    key log (position and digest), read in one round trip."""

    heads: dict[bytes, tuple[int, bytes]]
    escrow: list[EscrowRef]
    key_heads: dict[bytes, tuple[int, bytes]]


class BatchFacts(NamedTuple):
    """What a batch needs to know before it is verified, read in one round trip: the state
    of the sender, of the origins and of every allied peer; the head of each node's key log
    (position, digest); which of the batch's envelopes are held already."""

    peers: dict[bytes, str]
    key_heads: dict[bytes, tuple[int, bytes]]
    held: set[bytes]


class Gap(NamedTuple):
    """An origin whose log this node holds up to ``head`` while it escrows later envelopes
    (the first at ``first``), received from ``via``: catch-up fetches ``head + 1`` onward."""

    origin: bytes
    head: int
    via: bytes | None
    first: int


async def batch_facts(
    session: AsyncSession,
    sender: bytes,
    nodes: Collection[bytes],
    places: Collection[tuple[bytes, int, bytes]],
) -> BatchFacts:
    """:class:`BatchFacts` of a batch from ``sender`` whose envelopes ``(origin, seq, id)``
    are ``places``, and whose key events or envelopes name ``nodes``."""
    wanted = list({sender, *nodes})
    params: list[Any] = [*wanted, ALLIED, *wanted]
    sql = _FACTS.format(nodes=marks(len(wanted)))
    spans, sparse = _spans(places)
    if spans:
        sql += _FACTS_HELD.format(spans=" OR ".join([_SPAN] * len(spans)))
        for origin, (low, high) in spans.items():
            params += (origin, low, high)
    rows = await (await Raw.of(session)).fetch(sql + " ORDER BY 1, 2, 3", params)
    facts = BatchFacts({}, {}, set())
    wanted_ids = {(origin, seq): id_ for origin, seq, id_ in places}
    for kind, node, num, blob, text in rows:
        if kind == 0:
            facts.peers[node] = text
        elif kind == 1:  # in position order: the last one read is the head
            facts.key_heads[node] = (num, blob)
        elif wanted_ids.get((node, num)) == blob:
            facts.held.add(blob)
    if sparse:
        facts.held.update(await held_ids(session, sparse))
    return facts


# The peers (the sender, the nodes named, every ally) and the key-log heads; then the held
# envelopes at the batch's places, by range of seq per origin (see _spans).
_FACTS: Final = (
    "SELECT 0, node_id, NULL, NULL, state FROM peers WHERE node_id IN ({nodes}) OR state = ?"
    " UNION ALL SELECT 1, node_id, pos, digest, NULL FROM key_events"
    " WHERE node_id IN ({nodes})"
)
_FACTS_HELD: Final = " UNION ALL SELECT 2, origin, seq, id, NULL FROM envelopes WHERE {spans}"
_SPAN: Final = "(origin = ? AND seq BETWEEN ? AND ?)"


def _spans(
    places: Collection[tuple[bytes, int, bytes]],
) -> tuple[dict[bytes, tuple[int, int]], list[bytes]]:
    """Per origin, the range of seqs to read the held envelopes in; the ids of origins
    whose seqs are too sparse for a range, to look up by id instead."""
    by_origin: dict[bytes, list[tuple[int, bytes]]] = {}
    for origin, seq, id_ in places:
        by_origin.setdefault(origin, []).append((seq, id_))
    spans: dict[bytes, tuple[int, int]] = {}
    sparse: list[bytes] = []
    for origin, found in by_origin.items():
        low, high = min(s for s, _ in found), max(s for s, _ in found)
        if high - low >= 4 * len(found) + 64:
            sparse.extend(id_ for _, id_ in found)
        else:
            spans[origin] = (low, high)
    return spans, sparse


async def held_ids(session: AsyncSession, ids: Collection[bytes]) -> set[bytes]:
    """Which of ``ids`` are envelopes held already."""
    if not ids:
        return set()
    rows = await session.scalars(select(EnvelopeRow.id).where(EnvelopeRow.id.in_(list(ids))))
    return set(rows)


async def held_of(
    session: AsyncSession, places: Collection[tuple[bytes, int, bytes]]
) -> set[bytes]:
    """Which of the envelopes ``(origin, seq, id)`` are held already. An id is held only at
    its own place (it hashes the origin and seq), so each origin's places are read with one
    range query, unless they are too sparse for that."""
    spans, sparse = _spans(places)
    wanted = {(origin, seq): id_ for origin, seq, id_ in places}
    held = await held_ids(session, sparse) if sparse else set()
    for origin, (low, high) in spans.items():
        rows = await session.execute(
            select(EnvelopeRow.seq, EnvelopeRow.id).where(
                EnvelopeRow.origin == origin, EnvelopeRow.seq.between(low, high)
            )
        )
        held |= {row.id for row in rows if wanted.get((origin, row.seq)) == row.id}
    return held


async def list_heads(
    session: AsyncSession, origins: Collection[bytes]
) -> dict[bytes, tuple[int, bytes]]:
    """``origin -> (seq, id)`` of the contiguous head held, for those of ``origins`` held."""
    rows = await session.execute(
        select(OriginHead.origin, OriginHead.seq, OriginHead.id).where(
            OriginHead.origin.in_(list(origins))
        )
    )
    return {row.origin: (row.seq, row.id) for row in rows}


async def chain_state(session: AsyncSession, origins: Collection[bytes]) -> ChainState:
    """:func:`list_heads`, :func:`list_escrow` and the key-log heads of ``origins``."""
    if not origins:
        return ChainState({}, [], {})
    wanted = list(origins)
    sql = _CHAIN.format(origins=marks(len(wanted)))
    rows = await (await Raw.of(session)).fetch(sql, wanted * 3)
    state = ChainState({}, [], {})
    for kind, origin, seq, id_, via in rows:
        if kind == 1:
            state.escrow.append(EscrowRef(origin, seq, id_, via))
        else:  # in seq order: the last one read is the head
            (state.heads if kind == 0 else state.key_heads)[origin] = (seq, id_)
    return state


_CHAIN: Final = (
    "SELECT 0, origin, seq, id, NULL FROM origin_heads WHERE origin IN ({origins})"
    " UNION ALL SELECT 1, origin, seq, id, via FROM escrow WHERE origin IN ({origins})"
    " UNION ALL SELECT 2, node_id, pos, digest, NULL FROM key_events"
    " WHERE node_id IN ({origins}) ORDER BY 1, 2, 3"
)


async def put_heads(
    session: AsyncSession, heads: Mapping[bytes, tuple[int, bytes] | None], known: Collection[bytes]
) -> None:
    """Set each origin's head (None: it holds nothing any more); ``known`` are the origins
    that had a head row when the batch read them."""
    if not heads:
        return
    raw = await Raw.of(session)
    for origin, head in heads.items():
        if head is None:
            await raw.execute("DELETE FROM origin_heads WHERE origin = ?", (origin,))
        elif origin in known:
            await raw.execute(
                "UPDATE origin_heads SET seq = ?, id = ? WHERE origin = ?", (*head, origin)
            )
        else:
            await raw.execute(
                "INSERT INTO origin_heads (origin, seq, id) VALUES (?, ?, ?)", (origin, *head)
            )


async def rows_at(
    session: AsyncSession, keys: Iterable[tuple[bytes, int]]
) -> dict[tuple[bytes, int], tuple[bytes, bool]]:
    """``(origin, seq) -> (id, has wire)`` of the envelopes held at those places."""
    wanted = list(keys)
    if not wanted:
        return {}
    rows = await session.execute(
        select(EnvelopeRow.origin, EnvelopeRow.seq, EnvelopeRow.id, EnvelopeRow.wire.is_(None))
        .where(tuple_(EnvelopeRow.origin, EnvelopeRow.seq).in_(wanted))
    )  # fmt: skip
    return {(r[0], r[1]): (r[2], not r[3]) for r in rows}


ENVELOPE_COLUMNS: Final = (
    "origin", "seq", "id", "type", "audience", "wire", "created_at", "received_at",
)  # fmt: skip


async def insert_envelopes(session: AsyncSession, rows: Sequence[tuple[Any, ...]]) -> None:
    """INSERTs of many rows for a batch of envelope rows, each a tuple of values in
    :data:`ENVELOPE_COLUMNS` order, sent to the driver as they are: every value is already
    what its column holds (bytes, str, int), and type processing per value would cost a
    fifth of verifying the envelope's signature."""
    raw = await Raw.of(session)
    for start in range(0, len(rows), INSERT_ROWS):
        chunk = rows[start : start + INSERT_ROWS]
        await raw.execute(_insert_envelopes(len(chunk)), [v for row in chunk for v in row])


INSERT_ROWS: Final = 256  # rows per INSERT: 2,048 values, well under every driver's limit


@lru_cache(maxsize=INSERT_ROWS)
def _insert_envelopes(count: int) -> str:
    """One INSERT of ``count`` rows (one statement, one round trip)."""
    row = f"({marks(len(ENVELOPE_COLUMNS))})"
    columns = ", ".join(ENVELOPE_COLUMNS)
    return f"INSERT INTO envelopes ({columns}) VALUES {', '.join([row] * count)}"  # noqa: S608


async def peer_states(session: AsyncSession, node_ids: Collection[bytes]) -> dict[bytes, str]:
    """The state of each of ``node_ids`` that is a peer, and of every allied peer."""
    rows = await session.execute(
        select(Peer.node_id, Peer.state).where(
            or_(Peer.node_id.in_(list(node_ids)), Peer.state == ALLIED)
        )
    )
    return {row.node_id: row.state for row in rows}


# --- escrow ---------------------------------------------------------------------------------


async def list_escrow(session: AsyncSession, origins: Collection[bytes]) -> list[EscrowRef]:
    """What is escrowed of ``origins`` (without the wire bytes), by origin and seq."""
    if not origins:
        return []
    rows = await session.execute(
        select(EscrowEntry.origin, EscrowEntry.seq, EscrowEntry.id, EscrowEntry.via)
        .where(EscrowEntry.origin.in_(list(origins)))
        .order_by(EscrowEntry.origin, EscrowEntry.seq)
    )
    return [EscrowRef(*row) for row in rows]


async def escrow_wires(
    session: AsyncSession, origin: bytes, seqs: Collection[int]
) -> dict[int, bytes]:
    rows = await session.execute(
        select(EscrowEntry.seq, EscrowEntry.wire).where(
            EscrowEntry.origin == origin, EscrowEntry.seq.in_(list(seqs))
        )
    )
    return {row.seq: row.wire for row in rows}


async def count_escrow(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(EscrowEntry)) or 0)


async def put_escrow(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        await session.execute(insert(_ESCROW), list(rows))


async def delete_escrow(session: AsyncSession, keys: Collection[tuple[bytes, int]]) -> None:
    if keys:
        await session.execute(
            delete(EscrowEntry)
            .where(tuple_(EscrowEntry.origin, EscrowEntry.seq).in_(list(keys)))
            .execution_options(synchronize_session=False)
        )


async def list_gaps(session: AsyncSession) -> list[Gap]:
    """Every origin with escrowed envelopes: its head, and who sent the first escrowed one."""
    firsts = (
        select(EscrowEntry.origin, func.min(EscrowEntry.seq).label("first"))
        .group_by(EscrowEntry.origin)
        .subquery()
    )
    rows = await session.execute(
        select(firsts.c.origin, func.coalesce(OriginHead.seq, 0), EscrowEntry.via, firsts.c.first)
        .join(EscrowEntry, (EscrowEntry.origin == firsts.c.origin)
              & (EscrowEntry.seq == firsts.c.first))
        .outerjoin(OriginHead, OriginHead.origin == firsts.c.origin)
        .order_by(firsts.c.origin)
    )  # fmt: skip
    return [Gap(*row) for row in rows]


# --- evidence -------------------------------------------------------------------------------


async def put_fork_evidence(
    session: AsyncSession, *, id: bytes, kind: str, origin: bytes, seq: int, wire: bytes, now: int
) -> None:
    """Keep evidence once (by the id of the envelope that proves it)."""
    if await session.get(ForkEvidence, id) is None:
        session.add(
            ForkEvidence(id=id, kind=kind, origin=origin, seq=seq, wire=wire, received_at=now)
        )
        await session.flush()
