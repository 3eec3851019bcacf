"""Accounts: registration with an invite, login and logout, and who a credential belongs to.

Logins are throttled per account (a keyed hash of the pseudonym), never per IP address:
each attempt is counted before its password is checked, so concurrent guesses all count;
after ``THROTTLE_LIMIT`` attempts in ``THROTTLE_WINDOW`` seconds without a success the
account is locked for ``THROTTLE_LOCK`` seconds (429 ``too_many_attempts``, with the seconds
left in ``Retry-After``). Unknown
pseudonyms are counted and checked against a dummy hash just the same, so neither the
answer nor its timing tells which accounts exist.
"""

from __future__ import annotations

import asyncio
import hashlib
import unicodedata
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.clock import Clock
from node.errors import NodeError, conflict, forbidden
from node.services.members import (
    Actor,
    Caller,
    audit,
    check_pseudonym,
    clean_contact,
    member_view,
    new_secret,
    profile_view,
)
from node.services.passwords import PasswordHasher
from node.services.policy import approval_required
from node.services.secrets import NodeSecrets
from node.services.setup import invite_token_hash
from node.storage.credentials import (
    delete_expired_sessions,
    delete_session,
    delete_sessions,
    put_session,
    session_member,
    token_member,
)
from node.storage.errors import Conflict
from node.storage.invites import consume_invite, find_invite
from node.storage.members import find_member, get_member, put_member
from node.storage.models import Invite, LoginSession, Member
from node.storage.throttle import clear_throttle, count_attempt, lock_account, prune_throttle

__all__ = ["SESSION_TTL", "THROTTLE_LIMIT", "THROTTLE_LOCK", "THROTTLE_WINDOW", "Accounts"]

SESSION_TTL: Final = 14 * 86_400
THROTTLE_WINDOW: Final = 15 * 60
THROTTLE_LIMIT: Final = 5
THROTTLE_LOCK: Final = 15 * 60
REFUSED_STATUS: Final = {
    "pending": ("account_not_active", "this account is waiting for an admin's approval"),
    "suspended": ("account_suspended", "this account is suspended"),
    "left": ("account_not_active", "this account has left the organisation"),
    "deleted": ("account_not_active", "this account has been deleted"),
}


def status_refusal(status: str) -> NodeError | None:
    """The 403 for a member whose status does not let them act, or None if it does."""
    if status == "active":
        return None
    code, message = REFUSED_STATUS.get(status, ("account_not_active", "account not active"))
    return forbidden(code, message)


def too_many_attempts(retry_after: int = THROTTLE_LOCK) -> NodeError:
    """The 429 of a locked account; ``retry_after`` is the seconds left of the lock."""
    minutes = max(1, -(-retry_after // 60))
    return NodeError(
        429, "too_many_attempts", f"too many login attempts; try again in {minutes} minutes",
        retry_after=retry_after,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Accounts:
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    secrets: NodeSecrets
    hasher: PasswordHasher

    # --- registration ----------------------------------------------------------------------

    async def register(self, form: dict[str, Any]) -> dict[str, Any]:
        """Create a member from an invite (one use taken atomically); pending if the policy
        wants approval. Cheap checks come before the password is hashed."""
        pseudonym = check_pseudonym(form["pseudonym"])
        token_hash = invite_token_hash(form["invite"])
        async with self.sessions() as session:
            await self._check_invite(session, token_hash)
            await self._check_free(session, pseudonym)
        password_hash = await asyncio.to_thread(self.hasher.hash, form["password"])
        async with self.sessions.begin() as session:
            # The conditional UPDATE comes first: it takes the write lock on SQLite.
            invite = await consume_invite(session, token_hash, self.clock.now())
            if invite is None:
                await self._check_invite(session, token_hash)  # says why it cannot be used
                raise NodeError(410, "invite_used_up", "this invite link has been used up")
            member = await self._create(session, invite, pseudonym, password_hash, form)
            return member_view(member, clean_contact(form.get("contact")))

    async def _check_invite(self, session: AsyncSession, token_hash: bytes) -> None:
        invite = await find_invite(session, token_hash)
        if invite is None:
            raise NodeError(400, "invalid_invite", "this invite link is not valid")
        if invite.expires_at is not None and invite.expires_at <= self.clock.now():
            raise NodeError(410, "invite_expired", "this invite link has expired")
        if invite.uses_left <= 0:
            raise NodeError(410, "invite_used_up", "this invite link has been used up")

    @staticmethod
    async def _check_free(session: AsyncSession, pseudonym: str) -> None:
        if await find_member(session, pseudonym) is not None:
            raise conflict("pseudonym_taken", "this pseudonym is taken; choose another")

    async def _create(
        self,
        session: AsyncSession,
        invite: Invite,
        pseudonym: str,
        password_hash: str,
        form: dict[str, Any],
    ) -> Member:
        await self._check_free(session, pseudonym)
        now = self.clock.now()
        status = "pending" if await approval_required(session) else "active"
        member = Member(
            pseudonym=pseudonym,
            real_name=form.get("real_name"),
            role=invite.role,
            status=status,
            password_hash=password_hash,
            language=form.get("language", "ar"),
            created_at=now,
        )
        try:
            await put_member(session, member)
        except Conflict:
            raise conflict("pseudonym_taken", "this pseudonym is taken; choose another") from None
        if contact := clean_contact(form.get("contact")):
            member.contact_sealed = self.secrets.seal_contact(member.id, contact)
            await put_member(session, member)
        await audit(
            session,
            now,
            Actor.member(member.id),
            "member.register",
            member=member.id,
            role=member.role,
            status=status,
            invite=invite.id,
        )
        return member

    # --- login and logout ------------------------------------------------------------------

    async def login(self, pseudonym: str, password: str) -> tuple[str, int, dict[str, Any]]:
        """A new session's token, its lifetime in seconds and the member's profile; or
        401/403/429."""
        pseudonym = unicodedata.normalize("NFC", pseudonym)
        key = self.secrets.account_key(pseudonym)
        attempts = await self._count_attempt(key)
        async with self.sessions() as session:
            member = await find_member(session, pseudonym)
        stored = member.password_hash if member is not None else None
        if not await asyncio.to_thread(self.hasher.verify, password, stored):
            await self._failed(key, attempts)
            raise NodeError(401, "invalid_credentials", "wrong pseudonym or password")
        async with self.sessions.begin() as session:
            await clear_throttle(session, key)
        if member is None:  # pragma: no cover - verify() is False without a stored hash
            raise NodeError(401, "invalid_credentials", "wrong pseudonym or password")
        if refusal := status_refusal(member.status):
            raise refusal
        return await self._open_session(member, password)

    async def _count_attempt(self, key: bytes) -> int:
        now = self.clock.now()
        async with self.sessions.begin() as session:
            row = await count_attempt(session, key, now, THROTTLE_WINDOW)
            locked, attempts = row.locked_until > now, row.failures
            if attempts > THROTTLE_LIMIT:  # concurrent guesses beyond the budget
                await lock_account(session, key, now, now + THROTTLE_LOCK)
        if attempts > THROTTLE_LIMIT:
            raise too_many_attempts(THROTTLE_LOCK)
        if locked:
            raise too_many_attempts(row.locked_until - now)
        return attempts

    async def _failed(self, key: bytes, attempts: int) -> None:
        now = self.clock.now()
        async with self.sessions.begin() as session:
            if attempts >= THROTTLE_LIMIT:
                await lock_account(session, key, now, now + THROTTLE_LOCK)
            await prune_throttle(session, now, THROTTLE_WINDOW)

    async def _open_session(self, member: Member, password: str) -> tuple[str, int, dict[str, Any]]:
        token, token_hash = new_secret()
        now = self.clock.now()
        rehash = self.hasher.needs_rehash(member.password_hash)
        new_hash = await asyncio.to_thread(self.hasher.hash, password) if rehash else None
        async with self.sessions.begin() as session:
            await delete_expired_sessions(session, now)
            await put_session(
                session,
                LoginSession(
                    token_hash=token_hash,
                    member_id=member.id,
                    created_at=now,
                    expires_at=now + SESSION_TTL,
                ),
            )
            if new_hash is not None:
                row = await get_member(session, member.id)
                row.password_hash = new_hash
        return token, SESSION_TTL, profile_view(member, self.secrets)

    async def logout(self, token: str) -> None:
        async with self.sessions.begin() as session:
            await delete_session(session, hashlib.sha256(token.encode()).digest())

    # --- credentials -----------------------------------------------------------------------

    async def by_session(self, token: str) -> Caller | None:
        digest = hashlib.sha256(token.encode()).digest()
        async with self.sessions() as session:
            member = await session_member(session, digest, self.clock.now())
        return None if member is None else Caller.of(member, "session", digest)

    async def by_token(self, token: str) -> Caller | None:
        digest = hashlib.sha256(token.encode()).digest()
        async with self.sessions() as session:
            member = await token_member(session, digest)
        return None if member is None else Caller.of(member, "token", digest)

    # --- password change -------------------------------------------------------------------

    async def change_password(self, caller: Caller, current: str, new: str) -> None:
        """Check the current password (throttled like a login), store the new hash, and
        end the member's other sessions."""
        key = self.secrets.account_key(caller.pseudonym)
        attempts = await self._count_attempt(key)
        async with self.sessions() as session:
            stored = (await get_member(session, caller.member_id)).password_hash
        if not await asyncio.to_thread(self.hasher.verify, current, stored):
            await self._failed(key, attempts)
            raise forbidden("wrong_password", "the current password is not right")
        new_hash = await asyncio.to_thread(self.hasher.hash, new)
        now = self.clock.now()
        async with self.sessions.begin() as session:
            await clear_throttle(session, key)
            member = await get_member(session, caller.member_id)
            member.password_hash = new_hash
            keep = caller.credential if caller.via == "session" else None
            await delete_sessions(session, member.id, keep=keep)
            await audit(session, now, caller.actor, "member.password_change", member=member.id)
