"""Repository of members' pledges to calls and their in-app notifications. Nothing here ever
leaves the node: tallies are computed from these rows as counts only.

Every function takes an open session; the service owns the transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from node.storage.models import CallRow, Member, Notification, Pledge

__all__ = [
    "count_pledges",
    "count_unread",
    "delete_conditional",
    "delete_member_records",
    "delete_pledge",
    "get_pledge",
    "mark_all_read",
    "mark_read",
    "notify",
    "page_notifications",
    "put_pledge",
]


async def get_pledge(session: AsyncSession, call: int, member_id: int) -> Pledge | None:
    return await session.get(Pledge, (call, member_id), populate_existing=True)


async def put_pledge(session: AsyncSession, call: int, member_id: int, kind: str, now: int) -> None:
    """Make or replace the member's pledge."""
    await session.merge(Pledge(call=call, member_id=member_id, kind=kind, updated_at=now))
    await session.flush()


async def delete_pledge(session: AsyncSession, call: int, member_id: int) -> bool:
    result = await session.execute(
        delete(Pledge).where(Pledge.call == call, Pledge.member_id == member_id)
    )
    return cast(CursorResult[Any], result).rowcount == 1


async def delete_conditional(session: AsyncSession, call: int) -> int:
    result = await session.execute(
        delete(Pledge).where(Pledge.call == call, Pledge.kind == "conditional")
    )
    return cast(CursorResult[Any], result).rowcount


async def count_pledges(session: AsyncSession, call: int) -> dict[str, int]:
    """Pledges per kind, of members who are active now (a suspended member's pledge waits)."""
    query = (
        select(Pledge.kind, func.count())
        .join(Member, Member.id == Pledge.member_id)
        .where(Pledge.call == call, Member.status == "active")
        .group_by(Pledge.kind)
    )
    counts = {"firm": 0, "conditional": 0}
    for kind, number in await session.execute(query):
        counts[kind] = int(number)
    return counts


async def delete_member_records(session: AsyncSession, member_id: int) -> None:
    """Erase a member's pledges and notifications (their account is being deleted)."""
    await session.execute(delete(Pledge).where(Pledge.member_id == member_id))
    await session.execute(delete(Notification).where(Notification.member_id == member_id))


# Notifications


async def notify(session: AsyncSession, call: int, kind: str, now: int, *, everyone: bool) -> None:
    """One notification per recipient, in one statement: every active member if
    ``everyone``, else the members who pledged to the call."""
    if everyone:
        members = select(Member.id).where(Member.status == "active")
    else:
        members = select(Pledge.member_id).where(Pledge.call == call)
    rows = members.add_columns(literal(kind), literal(call), literal(now))
    await session.execute(
        insert(Notification).from_select(["member_id", "kind", "call", "created_at"], rows)
    )


async def page_notifications(
    session: AsyncSession, member_id: int, before: int | None, limit: int
) -> list[tuple[Notification, CallRow]]:
    """The member's notifications with their calls, newest first."""
    query = (
        select(Notification, CallRow)
        .join(CallRow, CallRow.id == Notification.call)
        .where(Notification.member_id == member_id)
        .order_by(Notification.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(Notification.id < before)
    return [(n, c) for n, c in await session.execute(query)]


async def mark_read(session: AsyncSession, member_id: int, ids: Collection[int], now: int) -> int:
    """Mark the member's notifications in ``ids`` read; how many were theirs."""
    result = await session.execute(
        update(Notification)
        .where(Notification.member_id == member_id, Notification.id.in_(tuple(ids)))
        .values(read_at=func.coalesce(Notification.read_at, now))
        .execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], result).rowcount


async def mark_all_read(session: AsyncSession, member_id: int, now: int) -> None:
    await session.execute(
        update(Notification)
        .where(Notification.member_id == member_id, Notification.read_at.is_(None))
        .values(read_at=now)
        .execution_options(synchronize_session=False)
    )


async def count_unread(session: AsyncSession, member_id: int) -> int:
    query = select(func.count()).where(
        Notification.member_id == member_id, Notification.read_at.is_(None)
    )
    return int(await session.scalar(query) or 0)
