"""Repository of login sessions and personal API tokens. Only SHA-256 hashes of their
secrets are stored, so a copy of the database opens no account."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.storage.errors import NotFound
from node.storage.models import ApiToken, LoginSession, Member

__all__ = [
    "count_tokens",
    "delete_expired_sessions",
    "delete_session",
    "delete_sessions",
    "delete_token",
    "delete_tokens",
    "list_sessions",
    "list_tokens",
    "put_session",
    "put_token",
    "session_member",
    "token_member",
]


async def put_session(session: AsyncSession, row: LoginSession) -> None:
    session.add(row)
    await session.flush()


async def session_member(session: AsyncSession, token_hash: bytes, now: int) -> Member | None:
    """The member a live session belongs to."""
    query = (
        select(Member)
        .join(LoginSession, LoginSession.member_id == Member.id)
        .where(LoginSession.token_hash == token_hash, LoginSession.expires_at > now)
    )
    return await session.scalar(query)


async def list_sessions(session: AsyncSession, member_id: int) -> Sequence[LoginSession]:
    query = select(LoginSession).where(LoginSession.member_id == member_id)
    return (await session.scalars(query.order_by(LoginSession.created_at))).all()


async def delete_session(session: AsyncSession, token_hash: bytes) -> None:
    await session.execute(delete(LoginSession).where(LoginSession.token_hash == token_hash))


async def delete_sessions(session: AsyncSession, member_id: int, keep: bytes | None = None) -> None:
    """Remove a member's sessions, except the one whose hash is ``keep``."""
    statement = delete(LoginSession).where(LoginSession.member_id == member_id)
    if keep is not None:
        statement = statement.where(LoginSession.token_hash != keep)
    await session.execute(statement)


async def delete_expired_sessions(session: AsyncSession, now: int) -> None:
    await session.execute(delete(LoginSession).where(LoginSession.expires_at <= now))


async def put_token(session: AsyncSession, token: ApiToken) -> ApiToken:
    session.add(token)
    await session.flush()
    return token


async def token_member(session: AsyncSession, token_hash: bytes) -> Member | None:
    query = (
        select(Member)
        .join(ApiToken, ApiToken.member_id == Member.id)
        .where(ApiToken.token_hash == token_hash)
    )
    return await session.scalar(query)


async def list_tokens(session: AsyncSession, member_id: int) -> Sequence[ApiToken]:
    query = select(ApiToken).where(ApiToken.member_id == member_id).order_by(ApiToken.id)
    return (await session.scalars(query)).all()


async def count_tokens(session: AsyncSession, member_id: int) -> int:
    query = select(func.count()).select_from(ApiToken).where(ApiToken.member_id == member_id)
    return int((await session.scalar(query)) or 0)


async def delete_token(session: AsyncSession, member_id: int, token_id: int) -> None:
    """Delete one of the member's own tokens; NotFound if it is not theirs."""
    statement = (
        delete(ApiToken)
        .where(ApiToken.id == token_id, ApiToken.member_id == member_id)
        .returning(ApiToken.id)
    )
    if (await session.scalars(statement)).first() is None:
        raise NotFound(f"token {token_id}")


async def delete_tokens(session: AsyncSession, member_id: int) -> None:
    await session.execute(delete(ApiToken).where(ApiToken.member_id == member_id))
