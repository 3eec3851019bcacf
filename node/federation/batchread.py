"""What an inbox batch reads besides its items (node.federation.inbox): the escrowed
envelopes its chains could reach, the coalitions its envelopes address (locked, by id), and
log-page entries as items."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from node.federation.batch import Item, decode_escrowed, decode_item
from node.federation.wire import LogEntry
from node.storage import coalitions
from node.storage import inbox as store
from protocol import ErrorCode, coalition_of

__all__ = ["coalition_states", "escrowed", "from_entry", "reachable"]


async def escrowed(
    session: AsyncSession,
    heads: dict[bytes, tuple[int, bytes]],
    escrow: dict[bytes, dict[int, store.EscrowRef]],
    items: list[Item],
) -> dict[tuple[bytes, int], Item]:
    """The escrowed envelopes the batch's chains could reach, decoded."""
    found: dict[tuple[bytes, int], Item] = {}
    for origin, waiting in escrow.items():
        wanted = reachable(heads.get(origin), waiting, items, origin)
        if wanted:
            wires = await store.escrow_wires(session, origin, wanted)
            found.update({(origin, seq): decode_escrowed(w) for seq, w in wires.items()})
    return found


async def coalition_states(
    session: AsyncSession, items: list[Item]
) -> dict[bytes, dict[bytes, str]]:
    """Who is in the coalitions the batch's ``coalition:`` envelopes address (SPEC §15.4),
    read once their rows are locked, all at once and by id (PostgreSQL): applying the
    batch's ``coalition.*`` envelopes later finds their rows held already, so two batches
    touching the same coalitions in opposite orders never deadlock, and what the audience
    checks read still holds when the batch is applied."""
    wanted = {c for i in items if (c := coalition_of(i.audience)) is not None}
    if not wanted:
        return {}
    await coalitions.lock_coalitions(session, wanted)
    states: dict[bytes, dict[bytes, str]] = dict(await coalitions.states_of(session, wanted))
    return states


def from_entry(index: int, origin: bytes, entry: LogEntry) -> Item | str:
    if entry.env is None:
        return Item(index, origin, entry.seq, entry.id, None, None)
    item = decode_item(index, entry.env)
    if isinstance(item, Item) and (item.origin, item.seq, item.id) != (origin, entry.seq, entry.id):
        return str(ErrorCode.INVALID_FIELD)  # not the entry it is listed as
    return item


def reachable(
    head: tuple[int, bytes] | None,
    refs: dict[int, store.EscrowRef],
    items: list[Item],
    origin: bytes,
) -> list[int]:
    """Escrowed seqs the chain could reach if every item of the batch were good."""
    seqs = {item.seq for item in items if item.origin == origin} | refs.keys()
    seq = (head[0] if head is not None else 0) + 1
    wanted = []
    while seq in seqs:
        if seq in refs:
            wanted.append(seq)
        seq += 1
    return wanted
