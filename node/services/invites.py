"""Invite links: made by admins (or the operator), single or multi use, with an expiry and
the role the new member gets. The token is in the link and in the answer that makes it;
the node keeps only its SHA-256 hash."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.clock import Clock
from node.errors import not_found
from node.services.members import Actor, Page, audit
from node.services.setup import invite_token
from node.storage.errors import NotFound
from node.storage.invites import delete_invite, list_invites, put_invite
from node.storage.models import Invite

__all__ = ["DEFAULT_EXPIRY_HOURS", "MAX_EXPIRY_HOURS", "MAX_USES", "Invites", "invite_link"]

DEFAULT_EXPIRY_HOURS: Final = 7 * 24
MAX_EXPIRY_HOURS: Final = 90 * 24
MAX_USES: Final = 10_000


def invite_link(base_url: str, token: str) -> str:
    return f"{base_url}/join/{token}"


@dataclass(frozen=True, slots=True)
class Invites:
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    base_url: str

    async def create(
        self, actor: Actor, role: str, uses: int, expires_hours: int = DEFAULT_EXPIRY_HOURS
    ) -> dict[str, Any]:
        token, token_hash = invite_token()
        now = self.clock.now()
        async with self.sessions.begin() as session:
            invite = await put_invite(
                session,
                Invite(
                    token_hash=token_hash,
                    role=role,
                    uses_left=uses,
                    expires_at=now + expires_hours * 3600,
                    created_at=now,
                    created_by=actor.member_id,
                ),
            )
            await audit(
                session,
                now,
                actor,
                "invite.create",
                invite=invite.id,
                role=role,
                uses=uses,
                expires_at=invite.expires_at,
            )
            return self._view(invite) | {"token": token, "link": invite_link(self.base_url, token)}

    async def list(self, after: int | None, limit: int) -> Page:
        async with self.sessions() as session:
            rows = await list_invites(session, after, limit + 1)
        return Page.of(list(rows), limit, self._view)

    async def delete(self, actor: Actor, invite_id: int) -> None:
        async with self.sessions.begin() as session:
            try:
                invite = await delete_invite(session, invite_id)
            except NotFound:
                raise not_found("invite") from None
            await audit(
                session,
                self.clock.now(),
                actor,
                "invite.delete",
                invite=invite.id,
                role=invite.role,
                uses_left=invite.uses_left,
            )

    def _view(self, invite: Invite) -> dict[str, Any]:
        expired = invite.expires_at is not None and invite.expires_at <= self.clock.now()
        state = "used_up" if invite.uses_left <= 0 else "expired" if expired else "usable"
        return {
            "id": invite.id,
            "role": invite.role,
            "uses_left": invite.uses_left,
            "expires_at": invite.expires_at,
            "created_at": invite.created_at,
            "created_by": invite.created_by,
            "state": state,
        }
