"""Peering invite strings (SPEC §14.6) and the invite secret.

An invite string is ``tadamun-peer:`` followed by base64url, without padding, of the canonical
msgpack map ``{"v": 1, "e": endpoint url, "n": node id (bin 32), "i": invite id (bin 16),
"s": secret (bin 32)}``. ``v`` versions the form; a reader refuses any other version, any
other key and any non-canonical encoding, so one invite has one string.

The secret is HMAC-SHA256 of the invite id under a subkey of the node's local secret: it is
never stored, so a copy of the database alone cannot answer an invite.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Final

from node.services.secrets import NodeSecrets
from protocol import DecodeError, decode, encode
from protocol.messages import URL_RE

__all__ = [
    "INVITE_PREFIX",
    "INVITE_SECRET_LABEL",
    "InviteCode",
    "InviteCodeError",
    "decode_invite",
    "encode_invite",
    "invite_secret",
]

INVITE_PREFIX: Final = "tadamun-peer:"
INVITE_VERSION: Final = 1
INVITE_SECRET_LABEL: Final = "tadamun/v1/peer-invite"  # noqa: S105 - an HKDF label
MAX_INVITE_CHARS: Final = 2_048
_KEYS: Final = frozenset({"v", "e", "n", "i", "s"})


class InviteCodeError(ValueError):
    """Not an invite string this node can read; the message says why."""


@dataclass(frozen=True, slots=True)
class InviteCode:
    endpoint: str  # the inviter's base URL
    node: bytes  # the inviter's node id
    invite: bytes  # 16-byte invite id
    secret: bytes = field(repr=False)  # 32 bytes

    def __post_init__(self) -> None:
        if not (isinstance(self.endpoint, str) and len(self.endpoint.encode()) <= 512):
            raise InviteCodeError("the endpoint is not a URL of at most 512 bytes")
        if not URL_RE.fullmatch(self.endpoint):
            raise InviteCodeError("the endpoint is not an http(s) URL")
        for name, value, size in (("n", self.node, 32), ("i", self.invite, 16),
                                  ("s", self.secret, 32)):  # fmt: skip
            if type(value) is not bytes or len(value) != size:
                raise InviteCodeError(f"{name} must be {size} bytes")


def invite_secret(secrets: NodeSecrets, invite_id: bytes) -> bytes:
    """The 32-byte secret of invite ``invite_id``, derived again whenever it is needed."""
    key = secrets.subkey(INVITE_SECRET_LABEL)
    return hmac.new(key, invite_id, hashlib.sha256).digest()


def encode_invite(code: InviteCode) -> str:
    value = {"v": INVITE_VERSION, "e": code.endpoint, "n": code.node, "i": code.invite,
             "s": code.secret}  # fmt: skip
    return INVITE_PREFIX + base64.urlsafe_b64encode(encode(value)).decode().rstrip("=")


def decode_invite(text: str) -> InviteCode:
    """The invite in ``text`` (surrounding whitespace ignored); :class:`InviteCodeError`."""
    text = text.strip()
    if len(text) > MAX_INVITE_CHARS or not text.startswith(INVITE_PREFIX):
        raise InviteCodeError(f"an invite starts with {INVITE_PREFIX!r}")
    payload = text.removeprefix(INVITE_PREFIX)
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    except (binascii.Error, ValueError):
        raise InviteCodeError("the invite is not base64url") from None
    if base64.urlsafe_b64encode(raw).decode().rstrip("=") != payload:
        raise InviteCodeError("the invite is not base64url")
    try:
        value = decode(raw)
    except DecodeError as exc:
        raise InviteCodeError(f"the invite does not decode ({exc.code})") from None
    if not isinstance(value, dict) or set(value) != _KEYS:
        raise InviteCodeError("the invite does not have the fields v, e, n, i, s")
    if type(value["v"]) is not int or value["v"] != INVITE_VERSION:
        raise InviteCodeError(f"invite version {value['v']!r} is not one this node reads")
    return InviteCode(value["e"], value["n"], value["i"], value["s"])
