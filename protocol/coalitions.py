"""Coalitions: named groups of nodes with their own audience (SPEC.md §15).

A coalition's id binds it to its founder: ``H("TADAMUN-COALITION-V1" || 0x00 || founder ||
salt)``, so nobody else can found a coalition with that id. Every ``coalition.*`` envelope is
addressed ``coalition:<id hex>`` and names the coalition in its body too.
:func:`check_coalition_envelope` checks what a body alone cannot (the audience, the founder,
the inviter's place in its own snapshot); :mod:`protocol.membership` computes who is in.

An invite carries the inviter's view of the coalition (its name, founder and salt, members
with the ``seq`` from which each is a member, invites still open), so that the invitee, who
held none of the coalition's envelopes, learns it from one signed envelope (§15.3).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Final, TypeVar

from .errors import UnknownMessageType
from .fields import (
    MAX_TEXT,
    MAX_TITLE,
    check_bytes,
    check_int,
    check_lang_text,
    check_list,
    invalid,
)
from .keys import DIGEST_SIZE, digest
from .message import Message, Part

if TYPE_CHECKING:
    from .envelope import Envelope

__all__ = [
    "COALITION_DOMAIN",
    "COALITION_PREFIX",
    "COALITION_TYPES",
    "MAX_MEMBERS",
    "CoalitionFound",
    "CoalitionInvite",
    "CoalitionJoin",
    "CoalitionLeave",
    "CoalitionMessage",
    "Member",
    "OpenInvite",
    "check_coalition_envelope",
    "coalition_audience",
    "coalition_id",
    "coalition_of",
]

COALITION_DOMAIN: Final = b"TADAMUN-COALITION-V1\x00"
COALITION_PREFIX: Final = "coalition:"
MAX_MEMBERS: Final = 256  # members, and open invites, an invite's snapshot can list


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


def coalition_id(founder: bytes, salt: bytes) -> bytes:
    """The id of the coalition ``founder`` founds with the 32-byte ``salt`` (§15.1)."""
    check_bytes("founder", founder, DIGEST_SIZE)
    check_bytes("salt", salt, DIGEST_SIZE)
    return digest(COALITION_DOMAIN + founder + salt)


def coalition_audience(coalition: bytes) -> str:
    return COALITION_PREFIX + check_bytes("coalition", coalition, DIGEST_SIZE).hex()


def coalition_of(audience: str) -> bytes | None:
    """The coalition id of a ``coalition:<hex>`` audience; None for any other audience."""
    if not audience.startswith(COALITION_PREFIX):
        return None
    try:
        found = bytes.fromhex(audience[len(COALITION_PREFIX) :])
    except ValueError:
        return None
    return found if len(found) == DIGEST_SIZE else None


def _check_name(obj: object, purpose: Mapping[str, str] | None, name: Mapping[str, str]) -> None:
    _set(obj, "name", check_lang_text("name", name, MAX_TITLE))
    if purpose is not None:
        _set(obj, "purpose", check_lang_text("purpose", purpose, MAX_TEXT))


@dataclass(frozen=True, slots=True)
class CoalitionFound(Message):
    """``coalition.found``: the origin founds the coalition ``H(domain || origin || salt)``."""

    TYPE: ClassVar[str] = "coalition.found"
    coalition: bytes
    salt: bytes
    name: Mapping[str, str]
    purpose: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        check_bytes("coalition", self.coalition, DIGEST_SIZE)
        check_bytes("salt", self.salt, DIGEST_SIZE)
        _check_name(self, self.purpose, self.name)


@dataclass(frozen=True, slots=True)
class Member(Part):
    """A member in an invite's snapshot: a member from its own envelope ``since`` on."""

    node: bytes
    since: int

    def __post_init__(self) -> None:
        check_bytes("node", self.node, DIGEST_SIZE)
        check_int("since", self.since, 1)


@dataclass(frozen=True, slots=True)
class OpenInvite(Part):
    """An invite not yet used, in an invite's snapshot: its envelope id, invitee, time."""

    invite: bytes
    invitee: bytes
    created: int

    def __post_init__(self) -> None:
        check_bytes("invite", self.invite, DIGEST_SIZE)
        check_bytes("invitee", self.invitee, DIGEST_SIZE)
        check_int("created", self.created)


P = TypeVar("P", Member, OpenInvite)


def _parts(name: str, value: object, part: type[P], low: int) -> tuple[P, ...]:
    """An array of 0 or ``low`` to 256 maps, each a ``part`` (maps from a body are parsed)."""

    def item(where: str, entry: object) -> P:
        if isinstance(entry, part):
            return entry
        if not isinstance(entry, Mapping):
            raise invalid(where, "must be a map")
        return part.from_body(entry)

    return check_list(name, value, item, MAX_MEMBERS, low)


@dataclass(frozen=True, slots=True)
class CoalitionInvite(Message):
    """``coalition.invite``: a member invites ``invitee``, and tells it the coalition as the
    inviter sees it: ``members`` (1 to 256, distinct nodes) and ``invites`` still open."""

    TYPE: ClassVar[str] = "coalition.invite"
    coalition: bytes
    invitee: bytes
    founder: bytes
    salt: bytes
    name: Mapping[str, str]
    members: tuple[Member, ...]
    invites: tuple[OpenInvite, ...] = ()
    purpose: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        check_bytes("invitee", self.invitee, DIGEST_SIZE)
        if check_bytes("coalition", self.coalition, DIGEST_SIZE) != coalition_id(
            self.founder, self.salt
        ):
            raise invalid("coalition", "is not H(domain || founder || salt)")
        _check_name(self, self.purpose, self.name)
        _set(self, "members", _parts("members", self.members, Member, 1))
        _set(self, "invites", _parts("invites", self.invites, OpenInvite, 0))
        nodes = [m.node for m in self.members]
        if len(set(nodes)) != len(nodes):
            raise invalid("members", "a node is listed twice")
        if self.invitee in nodes:
            raise invalid("invitee", "is a member already")
        if len({i.invite for i in self.invites}) != len(self.invites):
            raise invalid("invites", "an invite is listed twice")

    def since(self, node: bytes) -> int | None:
        """The ``since`` of ``node`` in the snapshot; None if it is not listed."""
        return next((m.since for m in self.members if m.node == node), None)


@dataclass(frozen=True, slots=True)
class CoalitionJoin(Message):
    """``coalition.join``: the origin joins, using ``invite`` (the invite envelope's id)."""

    TYPE: ClassVar[str] = "coalition.join"
    coalition: bytes
    invite: bytes

    def __post_init__(self) -> None:
        check_bytes("coalition", self.coalition, DIGEST_SIZE)
        check_bytes("invite", self.invite, DIGEST_SIZE)


@dataclass(frozen=True, slots=True)
class CoalitionLeave(Message):
    """``coalition.leave``: the origin leaves, or declines the invites it had."""

    TYPE: ClassVar[str] = "coalition.leave"
    coalition: bytes

    def __post_init__(self) -> None:
        check_bytes("coalition", self.coalition, DIGEST_SIZE)


CoalitionMessage = CoalitionFound | CoalitionInvite | CoalitionJoin | CoalitionLeave
COALITION_TYPES: Final[Mapping[str, type[CoalitionMessage]]] = {
    cls.TYPE: cls for cls in (CoalitionFound, CoalitionInvite, CoalitionJoin, CoalitionLeave)
}


def check_coalition_envelope(envelope: Envelope) -> CoalitionMessage:
    """The parsed body of a verified ``coalition.*`` envelope, after the checks of §15.2 that
    need the envelope: the audience names the body's coalition; a found's coalition is the
    origin's with its salt; an invite's origin is in its own snapshot, a member from before
    the invite, and does not invite itself. Raises ``ValidationError`` (``invalid_field``)."""
    cls = COALITION_TYPES.get(envelope.type)
    if cls is None:
        raise UnknownMessageType(envelope.type)
    message = cls.from_body(envelope.body)
    if envelope.audience != coalition_audience(message.coalition):
        raise invalid("aud", "must be coalition:<the body's coalition in hex>")
    origin = envelope.origin
    if isinstance(message, CoalitionFound):
        if message.coalition != coalition_id(origin, message.salt):
            raise invalid("coalition", "is not H(domain || origin || salt)")
    elif isinstance(message, CoalitionInvite):
        since = message.since(origin)
        if since is None or since >= envelope.seq:
            raise invalid("members", "the inviter must be a member from before its invite")
    return message
