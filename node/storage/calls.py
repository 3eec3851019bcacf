"""Repository of calls to action: calls, early cancels, updates, endorsements, tallies and
activations (SPEC §8.5, §9). Pledges and notifications are in :mod:`node.storage.pledges`.

Every function takes an open session; the service owns the transaction. State changes of a
call that may race (a tally falling due, a recheck, voiding) are conditional UPDATEs
(``claim_*``) that say whether they matched, so one transaction wins, in any process.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Final, cast

from sqlalchemy import ColumnElement, CursorResult, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from node.storage.errors import Conflict, NotFound
from node.storage.models import (
    ActivationRow,
    CallRow,
    CallUpdateRow,
    EarlyCancel,
    Endorsement,
    Member,
    Peer,
    Proposal,
    TallyRow,
)

__all__ = [
    "LIVE_STATES",
    "STATES",
    "advance_tally_due",
    "claim_recheck",
    "claim_stance",
    "claim_tally",
    "claim_void",
    "count_deciders",
    "delete_activation",
    "get_activation",
    "get_call",
    "get_call_by_number",
    "get_call_proposal",
    "get_endorsement",
    "get_tally",
    "list_activations",
    "list_due_tallies",
    "list_endorsements",
    "list_names",
    "list_rechecks",
    "list_tallies",
    "list_tallies_by_id",
    "list_updates",
    "list_voidable",
    "live_proposals",
    "next_due_at",
    "page_calls",
    "pop_early_cancels",
    "put_activation",
    "put_call",
    "put_early_cancel",
    "put_endorsement",
    "put_tally",
    "put_update",
    "set_call",
    "tally_siblings",
]

STATES: Final = ("open", "activated", "cancelled", "concluded", "void")
LIVE_STATES: Final = ("open", "activated")  # a call members can still act on


def _changed(result: object) -> int:
    return cast(CursorResult[Any], result).rowcount


# Calls


async def put_call(session: AsyncSession, row: CallRow) -> CallRow:
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"call {row.call_id.hex()} is held") from exc
    return row


async def get_call(session: AsyncSession, call_id: bytes) -> CallRow | None:
    """The call whose ``call.issue`` envelope has id ``call_id``, if held."""
    query = select(CallRow).where(CallRow.call_id == call_id)
    return (await session.scalars(query.execution_options(populate_existing=True))).first()


async def get_call_by_number(session: AsyncSession, number: int) -> CallRow:
    """The call with the local row id ``number`` (the JSON API's handle)."""
    row = await session.get(CallRow, number, populate_existing=True)
    if row is None:
        raise NotFound(f"call {number}")
    return row


async def set_call(session: AsyncSession, number: int, **values: Any) -> None:
    await session.execute(
        update(CallRow)
        .where(CallRow.id == number)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def page_calls(
    session: AsyncSession, where: Sequence[ColumnElement[bool]], before: int | None, limit: int
) -> list[CallRow]:
    """Up to ``limit`` calls matching every condition in ``where``, newest first."""
    query = select(CallRow).where(*where).order_by(CallRow.id.desc()).limit(limit)
    if before is not None:
        query = query.where(CallRow.id < before)
    return list(await session.scalars(query))


async def live_proposals(session: AsyncSession, call_id: bytes) -> list[Proposal]:
    """The "do we join?" proposals of a call that can still be voted on."""
    query = select(Proposal).where(
        Proposal.call_id == call_id, Proposal.status.in_(("scheduled", "open"))
    )
    return list(await session.scalars(query))


async def claim_stance(session: AsyncSession, number: int, before: str, after: str) -> bool:
    """Move this node's stance on a call from ``before`` to ``after``, once."""
    result = await session.execute(
        update(CallRow)
        .where(CallRow.id == number, CallRow.stance == before)
        .values(stance=after)
        .execution_options(synchronize_session=False)
    )
    return _changed(result) == 1


async def count_deciders(session: AsyncSession, roles: Collection[str]) -> int:
    """Active members with one of ``roles``: the electorate of an officers' decision."""
    query = select(func.count()).where(Member.status == "active", Member.role.in_(tuple(roles)))
    return int(await session.scalar(query) or 0)


async def get_call_proposal(session: AsyncSession, call_id: bytes) -> bytes | None:
    """The public id of the latest "do we join?" proposal on a call, if any."""
    query = (
        select(Proposal.public_id)
        .where(Proposal.call_id == call_id)
        .order_by(Proposal.id.desc())
        .limit(1)
    )
    return await session.scalar(query)


async def list_names(session: AsyncSession, origins: Collection[bytes]) -> dict[bytes, str]:
    """The names of the peers among ``origins``, as their descriptors gave them."""
    query = select(Peer.node_id, Peer.name).where(Peer.node_id.in_(tuple(origins)))
    return {node_id: name for node_id, name in await session.execute(query) if name}


# The scheduler's claims: each matches once, whoever runs it.


async def list_due_tallies(session: AsyncSession, now: int, limit: int = 100) -> list[int]:
    query = select(CallRow.id).where(CallRow.tally_due_at <= now).limit(limit)
    return list(await session.scalars(query))


async def advance_tally_due(session: AsyncSession, number: int, due: int) -> None:
    """Make the call's next tally due at ``due`` unless one is due sooner already."""
    later = or_(CallRow.tally_due_at.is_(None), CallRow.tally_due_at > due)
    await session.execute(
        update(CallRow)
        .where(CallRow.id == number, later)
        .values(tally_due_at=due)
        .execution_options(synchronize_session=False)
    )


async def claim_tally(session: AsyncSession, number: int, now: int) -> bool:
    result = await session.execute(
        update(CallRow)
        .where(CallRow.id == number, CallRow.tally_due_at <= now)
        .values(tally_due_at=None)
        .execution_options(synchronize_session=False)
    )
    return _changed(result) == 1


async def list_rechecks(session: AsyncSession, limit: int = 100) -> list[int]:
    query = select(CallRow.id).where(CallRow.recheck.is_(True)).limit(limit)
    return list(await session.scalars(query))


async def claim_recheck(session: AsyncSession, number: int) -> bool:
    result = await session.execute(
        update(CallRow)
        .where(CallRow.id == number, CallRow.recheck.is_(True))
        .values(recheck=False)
        .execution_options(synchronize_session=False)
    )
    return _changed(result) == 1


async def list_voidable(session: AsyncSession, cutoff: int, limit: int = 100) -> list[int]:
    """Open calls whose threshold's deadline is at or before ``cutoff``."""
    query = (
        select(CallRow.id).where(CallRow.state == "open", CallRow.deadline <= cutoff).limit(limit)
    )
    return list(await session.scalars(query))


async def claim_void(session: AsyncSession, number: int, cutoff: int) -> bool:
    result = await session.execute(
        update(CallRow)
        .where(CallRow.id == number, CallRow.state == "open", CallRow.deadline <= cutoff)
        .values(state="void")
        .execution_options(synchronize_session=False)
    )
    return _changed(result) == 1


async def next_due_at(session: AsyncSession, grace: int) -> int | None:
    """The earliest time the scheduler has work: a tally due, or a deadline plus ``grace``
    passing on an open call; 0 if a recheck waits."""
    if await session.scalar(select(CallRow.id).where(CallRow.recheck.is_(True)).limit(1)):
        return 0
    tally = await session.scalar(select(func.min(CallRow.tally_due_at)))
    deadline = await session.scalar(
        select(func.min(CallRow.deadline)).where(CallRow.state == "open")
    )
    times = [t for t in (tally, None if deadline is None else deadline + grace) if t is not None]
    return min(times, default=None)


# Cancels that came before their call, and updates


async def put_early_cancel(session: AsyncSession, row: EarlyCancel) -> None:
    if await session.get(EarlyCancel, (row.call_id, row.origin)) is None:
        session.add(row)
        await session.flush()


async def pop_early_cancels(session: AsyncSession, call_id: bytes) -> list[EarlyCancel]:
    """The cancels kept for ``call_id``, deleted from the table."""
    rows = list(await session.scalars(select(EarlyCancel).where(EarlyCancel.call_id == call_id)))
    await session.execute(delete(EarlyCancel).where(EarlyCancel.call_id == call_id))
    return rows


async def put_update(session: AsyncSession, row: CallUpdateRow) -> None:
    session.add(row)
    await session.flush()


async def list_updates(session: AsyncSession, number: int) -> list[CallUpdateRow]:
    query = select(CallUpdateRow).where(CallUpdateRow.call == number).order_by(CallUpdateRow.id)
    return list(await session.scalars(query))


# Endorsements


async def get_endorsement(
    session: AsyncSession, call_id: bytes, origin: bytes
) -> Endorsement | None:
    return await session.get(Endorsement, (call_id, origin), populate_existing=True)


async def put_endorsement(session: AsyncSession, row: Endorsement) -> None:
    """Insert, or replace the origin's earlier verdict on the call."""
    await session.merge(row)
    await session.flush()


async def list_endorsements(session: AsyncSession, call_id: bytes) -> list[Endorsement]:
    query = select(Endorsement).where(Endorsement.call_id == call_id).order_by(Endorsement.seq)
    return list(await session.scalars(query))


# Tallies


async def get_tally(session: AsyncSession, tally_id: bytes) -> TallyRow | None:
    return await session.get(TallyRow, tally_id)


async def put_tally(session: AsyncSession, row: TallyRow) -> None:
    session.add(row)
    await session.flush()


async def tally_siblings(session: AsyncSession, row: TallyRow) -> list[TallyRow]:
    """Other tallies of the same origin, call and ``seq``: equivocation if any."""
    query = select(TallyRow).where(
        TallyRow.call_id == row.call_id,
        TallyRow.origin == row.origin,
        TallyRow.seq == row.seq,
        TallyRow.id != row.id,
    )
    return list(await session.scalars(query))


async def list_tallies(session: AsyncSession, call_id: bytes) -> list[TallyRow]:
    """Every tally held for a call, by origin and ``seq``."""
    query = (
        select(TallyRow)
        .where(TallyRow.call_id == call_id)
        .order_by(TallyRow.origin, TallyRow.seq, TallyRow.id)
    )
    return list(await session.scalars(query))


async def list_tallies_by_id(session: AsyncSession, ids: Collection[bytes]) -> list[TallyRow]:
    return list(await session.scalars(select(TallyRow).where(TallyRow.id.in_(tuple(ids)))))


# Activations


async def get_activation(session: AsyncSession, activation_id: bytes) -> ActivationRow | None:
    return await session.get(ActivationRow, activation_id, populate_existing=True)


async def delete_activation(session: AsyncSession, activation_id: bytes) -> None:
    await session.execute(delete(ActivationRow).where(ActivationRow.id == activation_id))


async def put_activation(session: AsyncSession, row: ActivationRow) -> None:
    await session.merge(row)
    await session.flush()


async def list_activations(
    session: AsyncSession, call_id: bytes, state: str | None = None
) -> list[ActivationRow]:
    query = select(ActivationRow).where(ActivationRow.call_id == call_id)
    if state is not None:
        query = query.where(ActivationRow.state == state)
    return list(await session.scalars(query.order_by(ActivationRow.received_at)))
