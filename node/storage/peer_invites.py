"""Peering invites this node made (SPEC §8.3). The secret is never stored: the service
derives it from the local secret and the invite id.

Every function takes an open session; the caller owns the transaction.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from node.storage.errors import NotFound
from node.storage.models import PeerInvite

__all__ = [
    "delete_peer_invite",
    "get_peer_invite",
    "list_peer_invites",
    "put_peer_invite",
    "use_peer_invite",
]


async def put_peer_invite(session: AsyncSession, invite: PeerInvite) -> PeerInvite:
    session.add(invite)
    await session.flush()
    return invite


async def get_peer_invite(session: AsyncSession, invite_id: bytes) -> PeerInvite:
    invite = await session.get(PeerInvite, invite_id)
    if invite is None:
        raise NotFound(f"peer invite {invite_id.hex()}")
    return invite


async def list_peer_invites(session: AsyncSession, limit: int = 100) -> list[PeerInvite]:
    """The newest ``limit`` invites, newest first."""
    rows = await session.scalars(
        select(PeerInvite).order_by(PeerInvite.created_at.desc(), PeerInvite.id).limit(limit)
    )
    return list(rows)


async def delete_peer_invite(session: AsyncSession, invite_id: bytes) -> PeerInvite:
    invite = await get_peer_invite(session, invite_id)
    await session.execute(
        delete(PeerInvite)
        .where(PeerInvite.id == invite_id)
        .execution_options(synchronize_session=False)
    )
    return invite


async def use_peer_invite(session: AsyncSession, invite_id: bytes, joiner: bytes, now: int) -> bool:
    """Mark the invite used by ``joiner`` if it is still unused and unexpired; False if it is
    not (another request took it first, on any process: the UPDATE is the arbiter)."""
    result = await session.execute(
        update(PeerInvite)
        .where(
            PeerInvite.id == invite_id,
            PeerInvite.used_at.is_(None),
            PeerInvite.expires_at > now,
        )
        .values(used_at=now, used_by=joiner)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]
