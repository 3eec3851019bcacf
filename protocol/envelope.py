"""Envelopes: every object that crosses nodes, signed by its origin node (SPEC.md §5, §6).

Wire form of a signed envelope (§5.1), a canonical map::

    {"env": <unsigned envelope map>, "relay": {"path": [node id, ...]}, "sig": bin 64}

``relay`` is optional and outside the signature. The envelope id is SHA-256 of the canonical
bytes of ``env`` (§6.1); the signature is Ed25519 over ``ENVELOPE_SIG_DOMAIN || id`` (§6.2).
Unknown non-critical fields in ``env`` and in its body are kept, so re-encoding gives the
same bytes and relays pass them on untouched (§5.3).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from hashlib import sha256
from types import MappingProxyType
from typing import Any, Final

from cryptography.exceptions import InvalidSignature

from .canonical import DEFAULT_LIMITS, MAX_INT, Limits, decode, encode
from .errors import (
    DecodeError,
    ErrorCode,
    FreshnessError,
    SignatureError,
    UnknownCritical,
    UnsupportedVersion,
)
from .fields import check_bytes, check_int, check_str, invalid, require
from .keylog import KeyState
from .keys import DIGEST_SIZE, SIGNATURE_SIZE, SigningKey, digest
from .registry import CORE_ROOTS, MESSAGE_TYPES, body_fields, check_type_namespace

__all__ = [
    "ENVELOPE_FIELDS",
    "ENVELOPE_SIG_DOMAIN",
    "MAX_RELAY_PATH",
    "PROTOCOL_VERSION",
    "Envelope",
    "SignedEnvelope",
    "build_envelope",
    "sign",
    "verify",
]

PROTOCOL_VERSION: Final = 1
ENVELOPE_SIG_DOMAIN: Final = b"TADAMUN-ENVELOPE-SIG-V1\x00"
ENVELOPE_FIELDS: Final = frozenset(
    {"aud", "body", "created", "crit", "expires", "kpos", "origin", "prev", "seq", "type", "v"}
)
MAX_RELAY_PATH: Final = 16
MAX_CRIT: Final = 16
TYPE_RE: Final = re.compile(r"[a-z0-9-]+(\.[a-z0-9_-]+)+")
AUDIENCE_RE: Final = re.compile(r"public|allies|(coalition|node):[0-9a-f]{64}")
_ABSENT: Final = object()
_PLAIN_AUDIENCES: Final = frozenset({"public", "allies"})
_OUTER_REQUIRED: Final = frozenset({"env", "sig"})
_OUTER_FIELDS: Final = frozenset({"env", "relay", "sig"})
_HEAD: Final = b"\xa3env"  # "env" is the first key of the outer map
_RELAY_KEY: Final = b"\xa5relay"
_SIG_KEY: Final = b"\xa3sig\xc4\x40"  # "sig", then the bin8 header of 64 bytes


@dataclass(frozen=True, slots=True)
class Envelope:
    """An unsigned envelope: its fields (unknown ones included), canonical bytes and id."""

    fields: Mapping[str, Any]
    canonical: bytes = field(repr=False)
    id: bytes = field(repr=False)

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> Envelope:
        """Validate ``fields`` (§5.2) and compute the canonical bytes and id."""
        _validate(fields)
        canonical = encode(fields)
        return cls(MappingProxyType(decode(canonical)), canonical, digest(canonical))

    @property
    def type(self) -> str:
        return str(self.fields["type"])

    @property
    def origin(self) -> bytes:
        return bytes(self.fields["origin"])

    @property
    def kpos(self) -> int:
        return int(self.fields["kpos"])

    @property
    def seq(self) -> int:
        return int(self.fields["seq"])

    @property
    def prev(self) -> bytes | None:
        prev = self.fields.get("prev")
        return None if prev is None else bytes(prev)

    @property
    def created(self) -> int:
        return int(self.fields["created"])

    @property
    def expires(self) -> int | None:
        expires = self.fields.get("expires")
        return None if expires is None else int(expires)

    @property
    def audience(self) -> str:
        return str(self.fields["aud"])

    @property
    def crit(self) -> tuple[str, ...]:
        return tuple(self.fields.get("crit", ()))

    @property
    def body(self) -> Mapping[str, Any]:
        return MappingProxyType(self.fields["body"])

    @property
    def signing_input(self) -> bytes:
        return ENVELOPE_SIG_DOMAIN + self.id


def build_envelope(
    *,
    type: str,
    origin: bytes,
    kpos: int,
    seq: int,
    prev: bytes | None,
    created: int,
    body: Mapping[str, Any],
    audience: str,
    expires: int | None = None,
    crit: tuple[str, ...] = (),
    extra: Mapping[str, Any] | None = None,
) -> Envelope:
    """Assemble and validate an envelope. ``extra`` holds extension fields (§11.2)."""
    fields: dict[str, Any] = dict(extra or {})
    fields |= {
        "v": PROTOCOL_VERSION,
        "type": type,
        "origin": origin,
        "kpos": kpos,
        "seq": seq,
        "created": created,
        "aud": audience,
        "body": dict(body),
    }
    for name, value in (("prev", prev), ("expires", expires), ("crit", list(crit) or None)):
        if value is not None:
            fields[name] = value
    return Envelope.from_fields(fields)


def _validate(fields: Mapping[str, Any]) -> None:
    """Envelope-level rules of §5.2 and §5.3.

    Ingest runs this for every envelope, so a single boolean pass accepts well-formed
    fields; only when it fails do the precise checks run, to raise the exact code.
    """
    if not _looks_valid(fields):
        _validate_precisely(fields)
    if "crit" in fields:
        _check_crit(fields)


def _looks_valid(f: Mapping[str, Any]) -> bool:
    """True only if every rule of :func:`_validate_precisely` holds (same rules, no errors)."""
    v, t, origin, kpos, seq = (
        f.get("v"),
        f.get("type"),
        f.get("origin"),
        f.get("kpos"),
        f.get("seq"),
    )
    created, aud, body, prev = f.get("created"), f.get("aud"), f.get("body"), f.get("prev")
    expires = f.get("expires", _ABSENT)
    return (
        type(v) is int and v == PROTOCOL_VERSION
        and type(t) is str and (t in MESSAGE_TYPES or _extension_type_ok(t))
        and type(origin) is bytes and len(origin) == DIGEST_SIZE
        and type(kpos) is int and 0 <= kpos <= MAX_INT
        and type(seq) is int and 1 <= seq <= MAX_INT
        and ((seq == 1 and prev is None and "prev" not in f)
             or (seq > 1 and type(prev) is bytes and len(prev) == DIGEST_SIZE))
        and type(created) is int and 0 <= created <= MAX_INT
        and (expires is _ABSENT or (type(expires) is int and created < expires <= MAX_INT))
        and type(aud) is str
        and (aud in _PLAIN_AUDIENCES or (len(aud) <= 80 and AUDIENCE_RE.fullmatch(aud) is not None))
        and type(body) is dict
    )  # fmt: skip


def _extension_type_ok(t: str) -> bool:
    """An unknown type that the grammar and namespace rules admit (§5.2, §8.1)."""
    return (
        len(t) <= 128
        and TYPE_RE.fullmatch(t) is not None
        and (t.partition(".")[0] in CORE_ROOTS or t.count(".") >= 2)
    )


def _validate_precisely(fields: Mapping[str, Any]) -> None:
    """Envelope-level rules of §5.2, in the order the SPEC gives them."""
    version = require(fields, "v")
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise UnsupportedVersion(ErrorCode.UNSUPPORTED_VERSION, f"v={version!r}")
    check_type_namespace(check_str("type", require(fields, "type"), 128, TYPE_RE))
    check_bytes("origin", require(fields, "origin"), DIGEST_SIZE)
    check_int("kpos", require(fields, "kpos"))
    seq = check_int("seq", require(fields, "seq"), 1)
    if (seq == 1) != ("prev" not in fields):
        raise invalid("prev", "present exactly when seq > 1")
    if seq > 1:
        check_bytes("prev", fields["prev"], DIGEST_SIZE)
    created = check_int("created", require(fields, "created"))
    if "expires" in fields:
        check_int("expires", fields["expires"], created + 1)
    check_str("aud", require(fields, "aud"), 80, AUDIENCE_RE)
    if not isinstance(require(fields, "body"), Mapping):
        raise invalid("body", "must be a map")


def _check_crit(fields: Mapping[str, Any]) -> None:
    """Every field named in ``crit`` must be present and understood (§5.3)."""
    crit = fields["crit"]
    if not isinstance(crit, list | tuple) or not 1 <= len(crit) <= MAX_CRIT:
        raise invalid("crit", f"must list 1 to {MAX_CRIT} field names")
    if any(type(c) is not str for c in crit) or list(crit) != sorted(set(crit)):
        raise invalid("crit", "names must be strings, sorted and distinct")
    known_body = body_fields(fields["type"])
    for name in crit:
        section, _, sub = name.partition(".")
        present = sub in fields["body"] if section == "body" and sub else name in fields
        if not present:
            raise invalid("crit", f"{name!r} names an absent field")
        understood = (name in ENVELOPE_FIELDS) or (
            section == "body" and known_body is not None and sub in known_body
        )
        if not understood:
            raise UnknownCritical(ErrorCode.UNKNOWN_CRITICAL, name)


@dataclass(frozen=True, slots=True)
class SignedEnvelope:
    """An envelope, its origin's signature, and the relay path it travelled (unsigned)."""

    envelope: Envelope
    sig: bytes = field(repr=False)
    path: tuple[bytes, ...] = ()

    @property
    def id(self) -> bytes:
        return self.envelope.id

    def relayed_by(self, node_id: bytes) -> SignedEnvelope:
        """A copy with ``node_id`` appended to the relay path (§5.4)."""
        if len(self.path) >= MAX_RELAY_PATH:
            raise invalid("relay.path", f"at most {MAX_RELAY_PATH} hops")
        return SignedEnvelope(self.envelope, self.sig, (*self.path, node_id))

    def to_bytes(self) -> bytes:
        """The wire bytes (§5.1): canonical, since the outer keys sort env < relay < sig."""
        entries = 3 if self.path else 2
        relay = _RELAY_KEY + encode({"path": list(self.path)}) if self.path else b""
        head = bytes([0x80 | entries]) + _HEAD
        return head + self.envelope.canonical + relay + _SIG_KEY + self.sig

    @classmethod
    def from_bytes(cls, data: bytes, limits: Limits = DEFAULT_LIMITS) -> SignedEnvelope:
        """Strictly decode wire bytes (§3, §5); the signature is checked by :func:`verify`."""
        outer = decode(data, limits)
        if type(outer) is not dict or not _OUTER_REQUIRED <= outer.keys() <= _OUTER_FIELDS:
            raise DecodeError(ErrorCode.MALFORMED, "a signed envelope is {env, relay?, sig}")
        fields, sig, relay = outer["env"], outer["sig"], outer.get("relay")
        if type(sig) is not bytes or len(sig) != SIGNATURE_SIZE:
            raise invalid("sig", f"must be bin of {SIGNATURE_SIZE} bytes")
        if type(fields) is not dict:
            raise invalid("env", "must be a map")
        _validate(fields)
        tail = len(_SIG_KEY) + SIGNATURE_SIZE
        if relay is not None:
            tail += len(_RELAY_KEY) + len(encode(relay))
        canonical = data[len(_HEAD) + 1 : len(data) - tail]  # canonical input: env is a slice
        envelope = Envelope(MappingProxyType(fields), canonical, sha256(canonical).digest())
        return cls(envelope, sig, () if relay is None else _relay_path(relay))


def _relay_path(relay: object) -> tuple[bytes, ...]:
    if relay is None:
        return ()
    if not isinstance(relay, dict) or set(relay) != {"path"}:
        raise invalid("relay", "must be {path}")
    path = relay["path"]
    if not isinstance(path, list) or not 1 <= len(path) <= MAX_RELAY_PATH:
        raise invalid("relay.path", f"1 to {MAX_RELAY_PATH} node ids")
    return tuple(check_bytes("relay.path", p, DIGEST_SIZE) for p in path)


def sign(envelope: Envelope, key: SigningKey) -> SignedEnvelope:
    """Sign with the origin's operational key; the envelope itself is never changed (§6.2)."""
    return SignedEnvelope(envelope, key.sign(envelope.signing_input))


def verify(signed: SignedEnvelope, state: KeyState, *, now: int, max_skew: int = 300) -> None:
    """Check origin, key position, freshness and signature against ``state`` (§6.3-§6.5)."""
    env = signed.envelope
    fields = env.fields
    if fields["origin"] != state.node_id:
        raise SignatureError(ErrorCode.ORIGIN_MISMATCH, "origin is not the key log's node")
    verifier = state.verifier_for(fields["kpos"], fields["seq"])
    created = fields["created"]
    if created > now + max_skew:
        raise FreshnessError(ErrorCode.FROM_FUTURE, f"created {created} > now {now}")
    expires = fields.get("expires")
    if expires is not None and expires <= now:
        raise FreshnessError(ErrorCode.EXPIRED, f"expired at {expires}")
    try:
        verifier.verify(signed.sig, ENVELOPE_SIG_DOMAIN + env.id)
    except InvalidSignature:
        raise SignatureError(ErrorCode.BAD_SIGNATURE, "signature does not verify") from None
