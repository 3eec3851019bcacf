"""The bounded log of refused federation contacts: unknown or blocked senders, requests whose
transport signature failed. It is the only trace a node that was never introduced leaves
(DESIGN §2), and it never grows beyond :data:`KEEP` rows: each insert drops the oldest.

Every function takes an open session; the caller owns the transaction.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.storage.models import ContactLogEntry

__all__ = ["KEEP", "count_contacts", "list_contacts", "put_contact"]

KEEP: Final = 10_000


async def put_contact(
    session: AsyncSession, node_id: bytes | None, code: str, now: int, *, keep: int = KEEP
) -> None:
    """Log a refused contact, then delete what lies beyond the newest ``keep`` rows."""
    await session.execute(insert(ContactLogEntry).values(at=now, node_id=node_id, code=code[:64]))
    cutoff = (
        select(ContactLogEntry.id).order_by(ContactLogEntry.id.desc()).offset(keep).limit(1)
    ).scalar_subquery()
    await session.execute(
        delete(ContactLogEntry)
        .where(ContactLogEntry.id <= cutoff)
        .execution_options(synchronize_session=False)
    )


async def list_contacts(session: AsyncSession, limit: int = 100) -> list[ContactLogEntry]:
    """The newest refused contacts first."""
    rows = await session.scalars(
        select(ContactLogEntry).order_by(ContactLogEntry.id.desc()).limit(limit)
    )
    return list(rows)


async def count_contacts(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(ContactLogEntry)) or 0)
