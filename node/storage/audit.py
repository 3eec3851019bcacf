"""Repository of the audit log: who did what, never a password, token or contact field.

``detail`` is compact JSON with sorted keys; a row about a member names them as
``"member": <id>``, which is how :func:`list_audit_about` finds a member's history.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.storage.models import AuditEntry

__all__ = ["detail_of", "list_audit", "list_audit_about", "put_audit"]


def _encode(detail: Mapping[str, Any]) -> str:
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def detail_of(entry: AuditEntry) -> dict[str, Any]:
    value = json.loads(entry.detail or "{}")
    return value if isinstance(value, dict) else {}


async def put_audit(
    session: AsyncSession,
    *,
    at: int,
    actor_id: int | None,
    actor: str,
    action: str,
    detail: Mapping[str, Any],
) -> None:
    session.add(
        AuditEntry(at=at, actor_id=actor_id, actor=actor, action=action, detail=_encode(detail))
    )
    await session.flush()


async def list_audit(session: AsyncSession, before: int | None, limit: int) -> Sequence[AuditEntry]:
    """Newest first, ids below ``before`` (a page cursor)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    return (await session.scalars(query)).all()


async def list_audit_about(session: AsyncSession, member_id: int) -> list[AuditEntry]:
    """Rows the member acted in or that name them as ``member``, oldest first."""
    named = f'%"member":{member_id}'
    query = (
        select(AuditEntry)
        .where(
            or_(
                AuditEntry.actor_id == member_id,
                AuditEntry.detail.like(named + ",%"),
                AuditEntry.detail.like(named + "}%"),
            )
        )
        .order_by(AuditEntry.id)
    )
    rows = (await session.scalars(query)).all()
    return [r for r in rows if r.actor_id == member_id or detail_of(r).get("member") == member_id]
