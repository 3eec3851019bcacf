"""What admins (and the operator at the command line) do to members, and the audit log.

Every change writes an audit row naming the actor. A change that would leave a node that
had an active admin without one is refused (409 ``last_admin``): the check runs after the
change, in its transaction, with the admins' rows locked, so two admins cannot demote each
other at the same moment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.clock import Clock
from node.errors import conflict, not_found
from node.services.members import Actor, Page, audit, member_view
from node.storage.audit import detail_of, list_audit
from node.storage.errors import NotFound
from node.storage.members import (
    count_active_admins,
    get_member,
    list_members,
    lock_active_admins,
)
from node.storage.models import AuditEntry, Member

__all__ = ["Administration", "ensure_an_admin_remains"]

# action -> (statuses it applies to, the status it sets)
TRANSITIONS: Final = {
    "approve": (("pending",), "active"),
    "suspend": (("pending", "active"), "suspended"),
    "reinstate": (("suspended",), "active"),
}


@asynccontextmanager
async def ensure_an_admin_remains(session: AsyncSession) -> AsyncIterator[None]:
    had_admin = bool(await lock_active_admins(session))
    yield
    if had_admin and await count_active_admins(session) == 0:
        raise conflict("last_admin", "the node would have no active admin left")


@dataclass(frozen=True, slots=True)
class Administration:
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock

    async def members(
        self, after: int | None, limit: int, status: str | None = None, role: str | None = None
    ) -> Page:
        async with self.sessions() as session:
            rows = await list_members(session, after, limit + 1, status=status, role=role)
        return Page.of(list(rows), limit, member_view)

    async def member(self, member_id: int) -> dict[str, Any]:
        async with self.sessions() as session:
            return member_view(await self._get(session, member_id))

    async def transition(self, actor: Actor, member_id: int, action: str) -> dict[str, Any]:
        """approve, suspend or reinstate a member; 409 ``invalid_transition`` otherwise."""
        sources, target = TRANSITIONS[action]
        async with self.sessions.begin() as session:
            async with ensure_an_admin_remains(session):
                member = await self._get(session, member_id)
                if member.status not in sources:
                    raise conflict(
                        "invalid_transition", f"cannot {action} a member who is {member.status}"
                    )
                before, member.status = member.status, target
            await audit(
                session,
                self.clock.now(),
                actor,
                f"member.{action}",
                member=member.id,
                before=before,
                after=target,
            )
            return member_view(member)

    async def set_role(self, actor: Actor, member_id: int, role: str) -> dict[str, Any]:
        async with self.sessions.begin() as session:
            async with ensure_an_admin_remains(session):
                member = await self._get(session, member_id)
                if member.status in ("left", "deleted"):
                    raise conflict(
                        "invalid_transition", f"cannot change the role of a {member.status} member"
                    )
                before, member.role = member.role, role
            if before != role:
                await audit(
                    session,
                    self.clock.now(),
                    actor,
                    "member.role",
                    member=member.id,
                    before=before,
                    after=role,
                )
            return member_view(member)

    @staticmethod
    async def _get(session: AsyncSession, member_id: int) -> Member:
        try:
            return await get_member(session, member_id)
        except NotFound:
            raise not_found("member") from None

    async def audit_log(self, before: int | None, limit: int) -> Page:
        async with self.sessions() as session:
            rows = await list_audit(session, before, limit + 1)
        return Page.of(list(rows), limit, _audit_view)


def _audit_view(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": entry.at,
        "actor": entry.actor,
        "action": entry.action,
        "detail": detail_of(entry),
    }
