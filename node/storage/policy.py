"""Repository of the node's governance policy: one row, id 1, absent until first saved."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from node.storage.models import GovernancePolicy

__all__ = ["POLICY_ID", "get_policy", "put_policy"]

POLICY_ID = 1


async def get_policy(session: AsyncSession) -> GovernancePolicy | None:
    return await session.get(GovernancePolicy, POLICY_ID)


async def put_policy(
    session: AsyncSession, values: Mapping[str, Any], now: int
) -> GovernancePolicy:
    row = await session.get(GovernancePolicy, POLICY_ID, with_for_update=True)
    if row is None:
        row = GovernancePolicy(id=POLICY_ID)
        session.add(row)
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_at = now
    await session.flush()
    return row
