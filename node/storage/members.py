"""Repository of members (and the anonymous rows that deleted members leave behind)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from node.storage.errors import Conflict, NotFound
from node.storage.models import Member

__all__ = [
    "count_active_admins",
    "find_member",
    "get_member",
    "list_members",
    "lock_active_admins",
    "put_member",
]


async def get_member(session: AsyncSession, member_id: int) -> Member:
    member = await session.get(Member, member_id)
    if member is None:
        raise NotFound(f"member {member_id}")
    return member


async def find_member(session: AsyncSession, pseudonym: str) -> Member | None:
    """The member with this pseudonym, ignoring case (ASCII case on SQLite)."""
    query = (
        select(Member)
        .where(func.lower(Member.pseudonym) == pseudonym.lower())
        .order_by(Member.id)
        .limit(1)
    )
    return (await session.scalars(query)).first()


async def put_member(session: AsyncSession, member: Member) -> Member:
    """Insert or update ``member`` and flush, so a new row has its id."""
    session.add(member)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("pseudonym already in use") from exc
    return member


async def list_members(
    session: AsyncSession,
    after: int | None,
    limit: int,
    status: str | None = None,
    role: str | None = None,
) -> Sequence[Member]:
    query = select(Member).order_by(Member.id).limit(limit)
    if after is not None:
        query = query.where(Member.id > after)
    if status is not None:
        query = query.where(Member.status == status)
    if role is not None:
        query = query.where(Member.role == role)
    return (await session.scalars(query)).all()


def _active_admins() -> Select[int]:
    return select(Member.id).where(Member.role == "admin", Member.status == "active")


async def lock_active_admins(session: AsyncSession) -> list[int]:
    """Lock the active admins' rows (PostgreSQL; SQLite serialises writers anyway), so two
    concurrent changes cannot both remove 'the other' last admin."""
    query = _active_admins().order_by(Member.id).with_for_update()
    return list((await session.scalars(query)).all())


async def count_active_admins(session: AsyncSession) -> int:
    query = select(func.count()).select_from(_active_admins().subquery())
    return int((await session.scalar(query)) or 0)
