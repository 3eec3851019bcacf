"""Repository of coalitions (SPEC §15): the coalitions this node knows, the ``coalition.*``
envelopes membership is computed from (as :class:`protocol.CoalitionEvent`), and every node's
standing, which :func:`put_standings` replaces with what :func:`protocol.membership` computed.

Every function takes an open session; the service owns the transaction. States are keyed by
coalition id (32 bytes) and node id.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.storage.errors import NotFound
from node.storage.models import CoalitionEventRow, CoalitionMember, CoalitionRow
from protocol import CoalitionEvent, Standing

__all__ = [
    "get_coalition",
    "get_coalition_by_number",
    "list_coalitions",
    "list_events",
    "list_standings",
    "put_coalition",
    "put_event",
    "put_standings",
    "states_of",
    "states_of_node",
]


async def get_coalition(
    session: AsyncSession, coalition: bytes, *, lock: bool = False
) -> CoalitionRow | None:
    """The coalition; ``lock``: hold its row until the transaction ends (PostgreSQL; SQLite's
    writers are serialised anyway), so that two processes never compute its membership from
    two different sets of events at once."""
    query = select(CoalitionRow).where(CoalitionRow.coalition_id == coalition)
    return await session.scalar(query.with_for_update() if lock else query)


async def get_coalition_by_number(
    session: AsyncSession, number: int, *, lock: bool = False
) -> CoalitionRow:
    """The coalition with this node's number ``number``; NotFound if none. ``lock`` as for
    :func:`get_coalition`."""
    row = await session.get(CoalitionRow, number, with_for_update=lock)
    if row is None:
        raise NotFound(f"coalition {number}")
    return row


async def list_coalitions(session: AsyncSession) -> list[CoalitionRow]:
    return list(await session.scalars(select(CoalitionRow).order_by(CoalitionRow.id)))


async def put_coalition(session: AsyncSession, row: CoalitionRow) -> CoalitionRow:
    session.add(row)
    await session.flush()
    return row


async def put_event(session: AsyncSession, coalition: bytes, event: CoalitionEvent) -> bool:
    """Record ``event`` of ``coalition``; False if it was recorded already."""
    if await session.get(CoalitionEventRow, event.id) is not None:
        return False
    session.add(
        CoalitionEventRow(
            id=event.id, coalition=coalition, origin=event.origin, seq=event.seq,
            kind=event.kind, subject=event.subject, created_at=event.created,
        )
    )  # fmt: skip
    await session.flush()
    return True


async def list_events(session: AsyncSession, coalition: bytes) -> list[CoalitionEvent]:
    rows = await session.scalars(
        select(CoalitionEventRow).where(CoalitionEventRow.coalition == coalition)
    )
    return [
        CoalitionEvent(row.id, row.origin, row.seq, row.created_at, row.kind, row.subject)
        for row in rows
    ]


async def list_standings(session: AsyncSession, coalition: bytes) -> list[CoalitionMember]:
    """Every node the coalition names, members first, then by node id."""
    rows = await session.scalars(
        select(CoalitionMember).where(CoalitionMember.coalition == coalition)
    )
    order = {"member": 0, "invited": 1, "left": 2}
    return sorted(rows, key=lambda row: (order.get(row.state, 3), row.node))


async def put_standings(
    session: AsyncSession, coalition: bytes, standings: Mapping[bytes, Standing], *, now: int
) -> dict[bytes, tuple[str | None, str | None]]:
    """Replace the coalition's standings with ``standings``; the changes, node -> (before,
    after), a state None meaning not named."""
    held = {row.node: row for row in await list_standings(session, coalition)}
    changes: dict[bytes, tuple[str | None, str | None]] = {}
    for node, standing in standings.items():
        row = held.pop(node, None)
        if row is None:
            row = CoalitionMember(coalition=coalition, node=node, state=standing.state)
            session.add(row)
            changes[node] = (None, standing.state)
        elif row.state != standing.state:
            changes[node] = (row.state, standing.state)
        row.state, row.since, row.invite_id = standing.state, standing.since, standing.invite
        row.invited_at, row.join_id, row.leave_id = (
            standing.invited_at, standing.join, standing.leave,
        )  # fmt: skip
        row.updated_at = now
    if held:
        await session.execute(
            delete(CoalitionMember).where(
                CoalitionMember.coalition == coalition, CoalitionMember.node.in_(list(held))
            )
        )
        changes.update({node: (row.state, None) for node, row in held.items()})
    await session.flush()
    return changes


async def states_of(
    session: AsyncSession, coalitions: Collection[bytes]
) -> dict[bytes, dict[bytes, str]]:
    """Coalition id -> node -> state, for the coalitions of ``coalitions`` this node knows."""
    if not coalitions:
        return {}
    rows = await session.execute(
        select(CoalitionMember.coalition, CoalitionMember.node, CoalitionMember.state).where(
            CoalitionMember.coalition.in_(list(coalitions))
        )
    )
    found: dict[bytes, dict[bytes, str]] = {}
    for coalition, node, state in rows:
        found.setdefault(coalition, {})[node] = state
    return found


async def states_of_node(session: AsyncSession, node: bytes) -> dict[bytes, str]:
    """Coalition id -> ``node``'s state, in every coalition that names it."""
    rows = await session.execute(
        select(CoalitionMember.coalition, CoalitionMember.state).where(CoalitionMember.node == node)
    )
    return dict(rows.all())
