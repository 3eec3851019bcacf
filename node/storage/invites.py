"""Repository of invites. Only a SHA-256 hash of an invite's token is stored."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from node.storage.errors import NotFound
from node.storage.models import Invite

__all__ = ["consume_invite", "delete_invite", "find_invite", "list_invites", "put_invite"]


async def put_invite(session: AsyncSession, invite: Invite) -> Invite:
    session.add(invite)
    await session.flush()
    return invite


async def find_invite(session: AsyncSession, token_hash: bytes) -> Invite | None:
    return await session.scalar(select(Invite).where(Invite.token_hash == token_hash))


async def consume_invite(session: AsyncSession, token_hash: bytes, now: int) -> Invite | None:
    """Take one use of a live invite in a single conditional UPDATE, so concurrent
    registrations can never use it more often than it allows; None if it cannot be used."""
    statement = (
        update(Invite)
        .where(
            Invite.token_hash == token_hash,
            Invite.uses_left > 0,
            or_(Invite.expires_at.is_(None), Invite.expires_at > now),
        )
        .values(uses_left=Invite.uses_left - 1)
        .returning(Invite)
        .execution_options(synchronize_session=False)
    )
    return (await session.scalars(statement)).first()


async def list_invites(session: AsyncSession, after: int | None, limit: int) -> Sequence[Invite]:
    query = select(Invite).order_by(Invite.id).limit(limit)
    if after is not None:
        query = query.where(Invite.id > after)
    return (await session.scalars(query)).all()


async def delete_invite(session: AsyncSession, invite_id: int) -> Invite:
    statement = delete(Invite).where(Invite.id == invite_id).returning(Invite)
    invite = (await session.scalars(statement)).first()
    if invite is None:
        raise NotFound(f"invite {invite_id}")
    return invite
