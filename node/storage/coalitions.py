"""Repository of coalitions (SPEC §15): the coalitions this node knows, the ``coalition.*``
envelopes membership is computed from (as :class:`protocol.CoalitionEvent`), and every node's
standing, which :func:`put_standings` replaces with what :func:`protocol.membership` computed.

Every function takes an open session; the service owns the transaction. States are keyed by
coalition id (32 bytes) and node id.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.storage.errors import NotFound
from node.storage.models import CoalitionEventRow, CoalitionMember, CoalitionRow
from protocol import CoalitionEvent, Standing

__all__ = [
    "CoalitionStates",
    "delete_events",
    "get_coalition",
    "get_coalition_by_number",
    "has_found",
    "list_coalitions",
    "list_events",
    "list_standings",
    "lock_coalitions",
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


async def lock_coalitions(session: AsyncSession, coalitions: Collection[bytes]) -> None:
    """Hold the rows of ``coalitions`` (those this node knows) until the transaction ends, taken
    in the order of their ids: a transaction that needs several takes them all at once, first,
    so that two never wait on each other in a circle (:func:`get_coalition` with ``lock`` then
    finds its row held already). PostgreSQL only: SQLite serialises its writers anyway."""
    if not coalitions or session.get_bind().dialect.name != "postgresql":
        return
    column = CoalitionRow.coalition_id
    query = select(column).where(column.in_(sorted(coalitions))).order_by(column)
    await session.execute(query.with_for_update())


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


async def delete_events(session: AsyncSession, ids: Collection[bytes]) -> None:
    """Forget the events ``ids`` (their envelopes stay held)."""
    if ids:
        await session.execute(delete(CoalitionEventRow).where(CoalitionEventRow.id.in_(list(ids))))


async def has_found(session: AsyncSession, coalition: bytes) -> bool:
    """Whether a ``coalition.found`` of ``coalition`` is held (only its founder can sign one
    that passes SPEC §15.2, so holding one confirms the founder)."""
    query = select(CoalitionEventRow.id).where(
        CoalitionEventRow.coalition == coalition, CoalitionEventRow.kind == "found"
    )
    return bool(await session.scalar(select(exists(query))))


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


class CoalitionStates(dict[bytes, str]):
    """One coalition's node -> state, and for the inbox's audience check (SPEC §15.4) its
    founder and the invites held (invite id -> invitee), whether or not they count."""

    __slots__ = ("founder", "invites")

    def __init__(self, founder: bytes = b"") -> None:
        super().__init__()
        self.founder = founder
        self.invites: dict[bytes, bytes] = {}


async def states_of(
    session: AsyncSession, coalitions: Collection[bytes]
) -> dict[bytes, dict[bytes, str]]:
    """Coalition id -> node -> state, for the coalitions of ``coalitions`` this node knows;
    each a :class:`CoalitionStates`, with the founder and the invites held."""
    if not coalitions:
        return {}
    wanted = list(coalitions)
    rows = await session.execute(
        select(CoalitionRow.coalition_id, CoalitionRow.founder).where(
            CoalitionRow.coalition_id.in_(wanted)
        )
    )
    found: dict[bytes, CoalitionStates] = {c: CoalitionStates(f) for c, f in rows}
    members = await session.execute(
        select(CoalitionMember.coalition, CoalitionMember.node, CoalitionMember.state).where(
            CoalitionMember.coalition.in_(wanted)
        )
    )
    for coalition, node, state in members:
        found.setdefault(coalition, CoalitionStates())[node] = state
    invites = await session.execute(
        select(CoalitionEventRow.coalition, CoalitionEventRow.id, CoalitionEventRow.subject).where(
            CoalitionEventRow.coalition.in_(wanted), CoalitionEventRow.kind == "invite"
        )
    )
    for coalition, invite, invitee in invites:
        if coalition in found and invitee is not None:
            found[coalition].invites[invite] = invitee
    return dict(found)


async def states_of_node(session: AsyncSession, node: bytes) -> dict[bytes, str]:
    """Coalition id -> ``node``'s state, in every coalition that names it."""
    rows = await session.execute(
        select(CoalitionMember.coalition, CoalitionMember.state).where(CoalitionMember.node == node)
    )
    return dict(rows.all())
