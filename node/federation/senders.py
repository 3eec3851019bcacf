"""Who may talk to this node's federation endpoints: peers it was introduced to (state
``introduced`` or ``allied``). Anyone else is refused with 403 (``unknown_sender``, or
``blocked``) and leaves one row in the bounded contact log, nothing more (DESIGN §2).
An admitted request is authenticated contact: it ends the sender's delivery backoff.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.errors import NodeError
from node.storage import contact_log, peers
from node.storage import outbox as outbox_store
from node.storage.models import Peer

__all__ = ["ADMITTED", "SenderRefused", "admit", "refusal", "refusal_for", "refuse"]

ADMITTED: Final = frozenset({peers.INTRODUCED, peers.ALLIED})
UNKNOWN_SENDER: Final = "unknown_sender"
BLOCKED: Final = "blocked"


class SenderRefused(NodeError):
    """The (authenticated) sender is not a peer this node talks to."""

    def __init__(self, code: str) -> None:
        message = "this node is blocked here" if code == BLOCKED else "this node is not a peer"
        super().__init__(403, code, message)


async def refusal(session: AsyncSession, sender: bytes) -> SenderRefused | None:
    """Why ``sender`` may not be heard, or None if it may (a read: no lock taken)."""
    return refusal_for(await session.scalar(select(Peer.state).where(Peer.node_id == sender)))


def refusal_for(state: str | None) -> SenderRefused | None:
    """Why a sender whose state as a peer is ``state`` (None: no peer) may not be heard."""
    if state in ADMITTED:
        return None
    return SenderRefused(BLOCKED if state == peers.BLOCKED else UNKNOWN_SENDER)


async def refuse(session: AsyncSession, sender: bytes, error: SenderRefused, now: int) -> None:
    """Log the refused contact (the bounded log is all it leaves)."""
    await contact_log.put_contact(session, sender, error.code, now)


async def admit(session: AsyncSession, sender: bytes, now: int) -> None:
    """Record authenticated contact from an admitted peer: the first write of the caller's
    transaction, so on SQLite it takes the write lock before anything else is read."""
    await peers.record_contact(session, sender, now)
    outbox_store.note_contact(session, sender)
