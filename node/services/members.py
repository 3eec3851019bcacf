"""What the member services share: roles, statuses, who acts, and views of a member.

Statuses: ``pending`` (waiting for approval), ``active``, ``suspended``, ``left`` and
``deleted`` (personal fields erased; the row stays, anonymous, so that foreign keys from
the audit log and open ballots still hold).
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from node.errors import invalid_field
from node.services.secrets import NodeSecrets
from node.storage.audit import put_audit
from node.storage.models import Member

__all__ = [
    "LANGUAGES",
    "ROLES",
    "STATUSES",
    "Actor",
    "Caller",
    "Page",
    "audit",
    "check_pseudonym",
    "clean_contact",
    "member_view",
    "new_secret",
    "profile_view",
    "role_at_least",
]

ROLES: Final = ("member", "organiser", "admin")
STATUSES: Final = ("pending", "active", "suspended", "left", "deleted")
LANGUAGES: Final = ("ar", "ckb", "en")
PSEUDONYM_PUNCTUATION: Final = frozenset(" ._-\u200c")  # ZWNJ: Sorani and Persian spelling


def role_at_least(role: str, minimum: str) -> bool:
    return ROLES.index(role) >= ROLES.index(minimum)


def new_secret(prefix: str = "") -> tuple[str, bytes]:
    """A fresh bearer secret for the client, and the SHA-256 that is all the node keeps."""
    token = prefix + secrets.token_urlsafe(32)
    return token, hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list; ``after`` is the id the next page starts after, None at the end."""

    items: list[dict[str, Any]]
    after: int | None

    @classmethod
    def of(cls, rows: list[Any], limit: int, view: Callable[[Any], dict[str, Any]]) -> Page:
        """From up to ``limit + 1`` rows with an ``id``: the extra one says there is more."""
        more = len(rows) > limit
        rows = rows[:limit]
        return cls([view(row) for row in rows], rows[-1].id if more else None)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did something, as the audit log names them."""

    member_id: int | None
    label: str

    @classmethod
    def member(cls, member_id: int) -> Actor:
        return cls(member_id, f"member:{member_id}")

    @classmethod
    def cli(cls) -> Actor:
        return cls(None, "cli")


@dataclass(frozen=True, slots=True)
class Caller:
    """A member who presented a session cookie or an API token."""

    member_id: int
    pseudonym: str
    role: str
    status: str
    via: Literal["session", "token"]
    credential: bytes  # the SHA-256 of the secret presented

    @classmethod
    def of(cls, member: Member, via: Literal["session", "token"], credential: bytes) -> Caller:
        return cls(member.id, member.pseudonym, member.role, member.status, via, credential)

    @property
    def actor(self) -> Actor:
        return Actor.member(self.member_id)


def check_pseudonym(raw: str) -> str:
    """The pseudonym in NFC, or a 400: letters, marks and digits in any script, with single
    spaces, dots, hyphens, underscores and ZWNJ between them; it starts with a letter or digit.
    Format and bidi-override characters are refused, so one name cannot pose as another."""
    name = unicodedata.normalize("NFC", raw)
    problem = "must be 3 to 64 letters or digits, with single spaces, '.', '-' or '_' between"
    if not 3 <= len(name) <= 64 or "  " in name or name != name.strip():
        raise invalid_field("pseudonym", problem)
    if unicodedata.category(name[0])[0] not in "LN":
        raise invalid_field("pseudonym", problem)
    for char in name:
        if unicodedata.category(char)[0] not in "LMN" and char not in PSEUDONYM_PUNCTUATION:
            raise invalid_field("pseudonym", problem)
    return name


def clean_contact(raw: dict[str, Any] | None) -> dict[str, str]:
    """The contact fields that have a value (null and empty ones are dropped)."""
    return {name: value for name, value in (raw or {}).items() if value}


def member_view(member: Member, contact: dict[str, str] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": member.id,
        "pseudonym": member.pseudonym,
        "real_name": member.real_name,
        "role": member.role,
        "status": member.status,
        "language": member.language,
        "created_at": member.created_at,
    }
    if contact is not None:
        view["contact"] = contact
    return view


def profile_view(member: Member, secrets: NodeSecrets) -> dict[str, Any]:
    """The member's own view: with their contact fields, opened."""
    sealed = member.contact_sealed
    return member_view(member, secrets.open_contact(member.id, sealed) if sealed else {})


async def audit(session: AsyncSession, now: int, actor: Actor, action: str, **detail: Any) -> None:
    """One audit row. Callers pass ids and states, never a password, token or contact."""
    await put_audit(
        session, at=now, actor_id=actor.member_id, actor=actor.label, action=action, detail=detail
    )
