"""A member's own account: their profile, contact fields, API tokens, the export of all the
node holds about them, leaving and deleting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.clock import Clock
from node.errors import conflict, invalid_field, not_found
from node.services.accounts import Accounts
from node.services.admin import ensure_an_admin_remains
from node.services.members import Caller, audit, clean_contact, new_secret, profile_view
from node.services.secrets import NodeSecrets
from node.storage.audit import detail_of, list_audit_about
from node.storage.credentials import (
    count_tokens,
    delete_sessions,
    delete_token,
    delete_tokens,
    list_sessions,
    list_tokens,
    put_token,
)
from node.storage.errors import NotFound
from node.storage.exports import (
    list_invites_created,
    list_notifications,
    list_open_votes,
    list_participation,
    list_pledges,
)
from node.storage.members import get_member
from node.storage.models import ApiToken, Member
from node.storage.pledges import delete_member_records
from node.storage.throttle import get_throttle

__all__ = ["EXCLUDED", "MAX_TOKENS", "TOKEN_PREFIX", "Profiles"]

MAX_TOKENS: Final = 20
TOKEN_PREFIX: Final = "tdm_"  # noqa: S105 - a prefix that makes leaked tokens easy to spot
EXCLUDED: Final = {
    "secret_ballot_choices": "Your choices on secret ballots are stored without anything that "
    "links them to you (and the link that lets you change your vote is erased at close), so "
    "no one, not even the node's operators, can find them to export.",
    "password": "Stored only as an Argon2id hash, which cannot be turned back into it.",
    "session_and_token_secrets": "Stored only as SHA-256 hashes; the secrets were shown "
    "once, when they were made.",
    "network_data": "No IP addresses, user agents or access logs are kept about anyone.",
}


@dataclass(frozen=True, slots=True)
class Profiles:
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    secrets: NodeSecrets
    accounts: Accounts

    async def me(self, caller: Caller) -> dict[str, Any]:
        async with self.sessions() as session:
            member = await get_member(session, caller.member_id)
            return profile_view(member, self.secrets)

    async def update(self, caller: Caller, changes: dict[str, Any]) -> dict[str, Any]:
        """Change language, real name or contact; a new password needs the current one."""
        _check_password_pair(changes)
        if "password" in changes:
            await self.accounts.change_password(
                caller, changes["current_password"], changes["password"]
            )
        async with self.sessions.begin() as session:
            member = await get_member(session, caller.member_id)
            for name in ("language", "real_name"):
                if name in changes:
                    setattr(member, name, changes[name])
            if "contact" in changes:
                contact = clean_contact(changes["contact"])
                member.contact_sealed = (
                    self.secrets.seal_contact(member.id, contact) if contact else None
                )
            return profile_view(member, self.secrets)

    # --- tokens ----------------------------------------------------------------------------

    async def tokens(self, caller: Caller) -> list[dict[str, Any]]:
        async with self.sessions() as session:
            return [_token_view(t) for t in await list_tokens(session, caller.member_id)]

    async def create_token(self, caller: Caller, name: str) -> dict[str, Any]:
        """A new personal API token; its secret is in this answer and nowhere else."""
        token, token_hash = new_secret(TOKEN_PREFIX)
        async with self.sessions.begin() as session:
            if await count_tokens(session, caller.member_id) >= MAX_TOKENS:
                raise conflict("too_many_tokens", f"at most {MAX_TOKENS} tokens; delete one")
            row = await put_token(
                session,
                ApiToken(
                    member_id=caller.member_id,
                    token_hash=token_hash,
                    name=name,
                    created_at=self.clock.now(),
                ),
            )
            return _token_view(row) | {"token": token}

    async def delete_token(self, caller: Caller, token_id: int) -> None:
        async with self.sessions.begin() as session:
            try:
                await delete_token(session, caller.member_id, token_id)
            except NotFound:
                raise not_found("token") from None

    # --- leaving ---------------------------------------------------------------------------

    async def leave(self, caller: Caller) -> None:
        """Status ``left``; every session and token ends. The profile stays (an admin can
        see the member left); deleting erases it."""
        await self._end(caller, "member.leave", _mark_left)

    async def delete(self, caller: Caller) -> None:
        """Erase pseudonym, real name, contact and password, and pledges and notifications;
        keep an anonymous row so the audit log and open ballots still refer to something."""
        await self._end(caller, "member.delete", _erase, erase=True)

    async def _end(self, caller: Caller, action: str, change: Any, *, erase: bool = False) -> None:
        now = self.clock.now()
        async with self.sessions.begin() as session:
            async with ensure_an_admin_remains(session):
                member = await get_member(session, caller.member_id)
                change(member)
            await delete_sessions(session, member.id)
            await delete_tokens(session, member.id)
            if erase:
                await delete_member_records(session, member.id)
            await audit(session, now, caller.actor, action, member=member.id)

    # --- export ----------------------------------------------------------------------------

    async def export(self, caller: Caller) -> dict[str, Any]:
        """Everything the node holds about the member, and what it cannot give and why."""
        async with self.sessions() as session:
            member = await get_member(session, caller.member_id)
            throttle = await get_throttle(session, self.secrets.account_key(member.pseudonym))
            return {
                "exported_at": self.clock.now(),
                "member": profile_view(member, self.secrets),
                "history": [_history(e) for e in await list_audit_about(session, member.id)],
                "tokens": [_token_view(t) for t in await list_tokens(session, member.id)],
                "sessions": [
                    {"created_at": s.created_at, "expires_at": s.expires_at}
                    for s in await list_sessions(session, member.id)
                ],
                "invites_created": await list_invites_created(session, member.id),
                "open_ballot_votes": await list_open_votes(session, member.id),
                "voted_in": await list_participation(session, member.id),
                "pledges": await list_pledges(session, member.id),
                "notifications": await list_notifications(session, member.id),
                "login_throttle": None
                if throttle is None
                else {"failures": throttle.failures, "locked_until": throttle.locked_until},
                "excluded": EXCLUDED,
            }


def _check_password_pair(changes: dict[str, Any]) -> None:
    for name, other in (("password", "current_password"), ("current_password", "password")):
        if name in changes and other not in changes:
            raise invalid_field(other, f"is required with {name}", code="missing_field")


def _token_view(token: ApiToken) -> dict[str, Any]:
    return {"id": token.id, "name": token.name, "created_at": token.created_at}


def _history(entry: Any) -> dict[str, Any]:
    return {"at": entry.at, "actor": entry.actor, "action": entry.action,
            "detail": detail_of(entry)}  # fmt: skip


def _mark_left(member: Member) -> None:
    member.status = "left"


def _erase(member: Member) -> None:
    member.status = "deleted"
    member.pseudonym = f"~deleted-{member.id}"  # "~" cannot start a chosen pseudonym
    member.real_name = None
    member.contact_sealed = None
    member.password_hash = ""  # matches no password
