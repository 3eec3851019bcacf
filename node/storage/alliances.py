"""Who is allied with whom, as far as this node knows: the ``allies`` audience (SPEC §5.5).

Other nodes' alliances are what they declared in ``peer.alliance`` envelopes (the newest by
``seq`` wins); this node's own are its peers in state ``allied``. :func:`allies_of` answers
both, so delivery and the log endpoint ask one question: may ``peer`` see ``origin``'s
``allies`` envelopes?

Every function takes an open session; the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.storage.envelopes import get_node_id
from node.storage.models import Alliance, Peer
from node.storage.peers import ALLIED

__all__ = ["ALLIANCE_STATES", "allies_of", "declared_allied", "is_allied", "put_alliance"]

ALLIANCE_STATES: Final = ("allied", "ended")


async def put_alliance(
    session: AsyncSession, node: bytes, peer: bytes, state: str, *, seq: int, now: int
) -> bool:
    """Record ``node``'s declaration about ``peer`` unless a newer one is held; True if it
    was recorded. Two transactions recording a first declaration at once: the second gets
    an IntegrityError from the primary key, and its caller retries."""
    held = await session.get(Alliance, (node, peer))
    if held is None:
        session.add(Alliance(node=node, peer=peer, state=state, seq=seq, updated_at=now))
    elif held.seq < seq:
        held.state, held.seq, held.updated_at = state, seq, now
    else:
        return False
    await session.flush()
    return True


async def allies_of(session: AsyncSession, origin: bytes) -> set[bytes]:
    """The nodes ``origin`` is allied with: its declarations, or this node's allied peers."""
    if origin == await get_node_id(session):
        rows = await session.scalars(select(Peer.node_id).where(Peer.state == ALLIED))
    else:
        rows = await session.scalars(
            select(Alliance.peer).where(Alliance.node == origin, Alliance.state == "allied")
        )
    return set(rows)


async def is_allied(session: AsyncSession, origin: bytes, peer: bytes) -> bool:
    """Whether ``origin`` is allied with ``peer`` (see :func:`allies_of`)."""
    if origin == await get_node_id(session):
        state = await session.scalar(select(Peer.state).where(Peer.node_id == peer))
        return state == ALLIED
    state = await session.scalar(
        select(Alliance.state).where(Alliance.node == origin, Alliance.peer == peer)
    )
    return state == "allied"


async def declared_allied(
    session: AsyncSession, origins: Collection[bytes], peer: bytes
) -> set[bytes]:
    """Which of ``origins`` last declared themselves allied with ``peer``."""
    if not origins:
        return set()
    rows = await session.scalars(
        select(Alliance.node).where(
            Alliance.node.in_(list(origins)), Alliance.peer == peer, Alliance.state == "allied"
        )
    )
    return set(rows)
