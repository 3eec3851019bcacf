"""The key log: who may sign for a node, and from which position on (SPEC.md §4).

A node's key log is a hash chain of signed key events. Officers (k of n) control the node;
the server signs day-to-day with a separate operational key. Three kinds of event:

* ``key.inception`` (position 0): officer keys, threshold, commitments to the next officer
  keys (pre-rotation) and the first operational key. Its digest is the node id.
* ``key.delegation``: a new operational key, signed by a threshold of the current officers
  (the server-was-seized case).
* ``key.rotation``: reveals officer keys that match the previous commitments, signed by the
  revealed keys meeting both the previous and the new threshold, each key counted once.

Delegation and rotation carry a ``seal``: envelopes that name an earlier position stay valid
only up to that per-origin sequence number, so a stolen old key cannot backdate (§4.5).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .canonical import decode, encode
from .errors import ErrorCode, KeyLogError, SignatureError, ValidationError
from .fields import check_bytes, check_int
from .keys import (
    DIGEST_SIZE,
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    SigningKey,
    commitment,
    digest,
    public_key,
)
from .keys import verify_signature as ed25519_verify

__all__ = [
    "DELEGATION",
    "INCEPTION",
    "KEYEVENT_SIG_DOMAIN",
    "MAX_OFFICERS",
    "ROTATION",
    "KeyEvent",
    "KeyState",
    "SignedKeyEvent",
    "sign_key_event",
]

INCEPTION: Final = "key.inception"
DELEGATION: Final = "key.delegation"
ROTATION: Final = "key.rotation"
KEYEVENT_SIG_DOMAIN: Final = b"TADAMUN-KEYEVENT-SIG-V1\x00"
MAX_OFFICERS: Final = 16
VERSION: Final = 1

# The exact field set of each event type (§4.2); key events admit no unknown fields.
_FIELDS: Final = {
    INCEPTION: frozenset({"created", "next", "officers", "op", "pos", "threshold", "type", "v"}),
    DELEGATION: frozenset({"created", "node", "op", "pos", "prev", "seal", "type", "v"}),
    ROTATION: frozenset(
        {
            "created",
            "next",
            "node",
            "officers",
            "op",
            "pos",
            "prev",
            "seal",
            "threshold",
            "type",
            "v",
        }
    ),
}


def _bad(code: ErrorCode, detail: str) -> KeyLogError:
    return KeyLogError(code, detail)


def _keys(name: str, value: object, size: int) -> tuple[bytes, ...]:
    if not isinstance(value, list | tuple) or not 1 <= len(value) <= MAX_OFFICERS:
        raise _bad(ErrorCode.KEYLOG_BAD_EVENT, f"{name}: 1 to {MAX_OFFICERS} entries")
    try:
        keys = tuple(check_bytes(f"{name}[{i}]", k, size) for i, k in enumerate(value))
    except ValidationError as exc:
        raise _bad(ErrorCode.KEYLOG_BAD_EVENT, exc.detail) from None
    if len(set(keys)) != len(keys):  # §4.3: each key counted once
        raise _bad(ErrorCode.KEYLOG_DUPLICATE_KEY, f"{name} lists a key twice")
    return keys


def _as_tuple(name: str, value: object) -> tuple[bytes, ...]:
    if not isinstance(value, list):
        raise _bad(ErrorCode.KEYLOG_BAD_EVENT, f"{name} must be an array")
    return tuple(value)


@dataclass(frozen=True, slots=True)
class KeyEvent:
    """One key event, unsigned. Fields not used by a type are ``None`` / empty (§4.2)."""

    type: str
    pos: int
    created: int
    op: bytes
    node: bytes | None = None
    prev: bytes | None = None
    officers: tuple[bytes, ...] = ()
    threshold: int = 0
    next: tuple[bytes, ...] = ()
    seal: int | None = None
    canonical: bytes = field(init=False, repr=False, compare=False)
    digest: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        wire = self._validate()
        canonical = encode(wire)
        object.__setattr__(self, "canonical", canonical)
        object.__setattr__(self, "digest", digest(canonical))

    def _validate(self) -> dict[str, Any]:
        if self.type not in _FIELDS:
            raise _bad(ErrorCode.KEYLOG_BAD_EVENT, f"unknown key event type {self.type!r}")
        first = self.type == INCEPTION
        if type(self.pos) is not int or (self.pos == 0) != first or self.pos < 0:
            raise _bad(ErrorCode.KEYLOG_BAD_POSITION, "inception is at 0, other events after it")
        try:
            wire: dict[str, Any] = {
                "type": self.type,
                "v": VERSION,
                "pos": self.pos,
                "created": check_int("created", self.created),
                "op": check_bytes("op", self.op, PUBLIC_KEY_SIZE),
            }
            if not first:
                wire["node"] = check_bytes("node", self.node, DIGEST_SIZE)
                wire["prev"] = check_bytes("prev", self.prev, DIGEST_SIZE)
                wire["seal"] = check_int("seal", self.seal)
        except ValidationError as exc:
            raise _bad(ErrorCode.KEYLOG_BAD_EVENT, exc.detail) from None
        if self.type != DELEGATION:
            wire |= self._validate_officers()
        elif self.officers or self.next or self.threshold:
            raise _bad(ErrorCode.KEYLOG_BAD_EVENT, "a delegation changes only the operational key")
        return wire

    def _validate_officers(self) -> dict[str, Any]:
        officers = _keys("officers", self.officers, PUBLIC_KEY_SIZE)
        nxt = _keys("next", self.next, DIGEST_SIZE)
        if type(self.threshold) is not int or not 1 <= self.threshold <= len(officers):
            raise _bad(ErrorCode.KEYLOG_BAD_THRESHOLD, f"threshold must be 1..{len(officers)}")
        if len(nxt) < self.threshold:  # else no later rotation could ever meet it (§4.3)
            raise _bad(ErrorCode.KEYLOG_BAD_THRESHOLD, "fewer next commitments than threshold")
        if self.op in officers:  # the server never holds an officer key (§4.1)
            raise _bad(ErrorCode.KEYLOG_BAD_EVENT, "the operational key is also an officer key")
        return {"officers": list(officers), "threshold": self.threshold, "next": list(nxt)}

    @classmethod
    def inception(
        cls,
        *,
        officers: Sequence[bytes],
        threshold: int,
        next_officers: Sequence[bytes],
        op: bytes,
        created: int,
    ) -> KeyEvent:
        """A node's first event; ``next_officers`` are public keys, committed by digest."""
        return cls(
            type=INCEPTION, pos=0, created=created, op=op, officers=tuple(officers),
            threshold=threshold, next=tuple(commitment(k) for k in next_officers),
        )  # fmt: skip

    @classmethod
    def from_wire(cls, wire: object) -> KeyEvent:
        if not isinstance(wire, dict):
            raise _bad(ErrorCode.KEYLOG_BAD_EVENT, "a key event is a map")
        kind = wire.get("type")
        if type(kind) is not str or kind not in _FIELDS or set(wire) != _FIELDS[kind]:
            raise _bad(ErrorCode.KEYLOG_BAD_EVENT, f"fields of {kind!r} must be exactly its own")
        if type(wire["v"]) is not int or wire["v"] != VERSION:
            raise _bad(ErrorCode.KEYLOG_BAD_EVENT, f"key event version {wire['v']!r}")
        return cls(
            type=kind,
            pos=wire["pos"],
            created=wire["created"],
            op=wire["op"],
            node=wire.get("node"),
            prev=wire.get("prev"),
            officers=_as_tuple("officers", wire.get("officers", [])),
            threshold=wire.get("threshold", 0),
            next=_as_tuple("next", wire.get("next", [])),
            seal=wire.get("seal"),
        )

    @property
    def signing_input(self) -> bytes:
        """What officers sign: a domain prefix and the event digest (§4.4)."""
        return KEYEVENT_SIG_DOMAIN + self.digest


@dataclass(frozen=True, slots=True)
class SignedKeyEvent:
    """A key event and its officer signatures: ``(index into the signer list, signature)``."""

    event: KeyEvent
    sigs: tuple[tuple[int, bytes], ...]

    def to_bytes(self) -> bytes:
        return encode(
            {"event": decode(self.event.canonical), "sigs": [[i, s] for i, s in self.sigs]}
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> SignedKeyEvent:
        return cls.from_wire(decode(data))

    @classmethod
    def from_wire(cls, wire: object) -> SignedKeyEvent:
        if not isinstance(wire, dict) or set(wire) != {"event", "sigs"}:
            raise _bad(ErrorCode.KEYLOG_BAD_EVENT, "a signed key event is {event, sigs}")
        sigs = wire["sigs"]
        if not isinstance(sigs, list) or not 1 <= len(sigs) <= MAX_OFFICERS:
            raise _bad(ErrorCode.KEYLOG_BAD_EVENT, f"sigs: 1 to {MAX_OFFICERS} entries")
        pairs = []
        for pair in sigs:
            if not (
                isinstance(pair, list)
                and len(pair) == 2
                and type(pair[0]) is int
                and type(pair[1]) is bytes
                and len(pair[1]) == SIGNATURE_SIZE
            ):
                raise _bad(ErrorCode.KEYLOG_BAD_EVENT, "each sig is [index, bin 64]")
            pairs.append((pair[0], pair[1]))
        return cls(KeyEvent.from_wire(wire["event"]), tuple(pairs))


def sign_key_event(
    event: KeyEvent, officer_keys: Iterable[SigningKey], state: KeyState | None = None
) -> SignedKeyEvent:
    """Sign ``event`` with each officer key given (§4.4).

    Inception and rotation are signed by the officers they list; a delegation by the current
    officers, so it needs the ``state`` it extends. Signatures are sorted by signer index.
    """
    signers = _signer_list(event, state)
    sigs = sorted((signers.index(k.public), k.sign(event.signing_input)) for k in officer_keys)
    return SignedKeyEvent(event, tuple(sigs))


def _signer_list(event: KeyEvent, state: KeyState | None) -> tuple[bytes, ...]:
    """Delegations are signed by the current officers; other events by the officers they list."""
    if event.type == DELEGATION:
        if state is None:
            raise _bad(ErrorCode.KEYLOG_BAD_EVENT, "a delegation is signed against a key state")
        return state.officers
    return event.officers


def _count_signers(signed: SignedKeyEvent, signers: Sequence[bytes]) -> int:
    """Check every signature; return how many distinct signer keys signed (§4.4)."""
    last = -1
    for index, sig in signed.sigs:
        if not 0 <= index < len(signers):
            raise _bad(ErrorCode.KEYLOG_BAD_SIGNATURE, f"no signer {index}")
        if index == last:
            raise _bad(ErrorCode.KEYLOG_DUPLICATE_SIGNATURE, f"two signatures by signer {index}")
        if index < last:
            raise _bad(ErrorCode.KEYLOG_BAD_EVENT, "signatures must be sorted by signer index")
        if not ed25519_verify(signers[index], sig, signed.event.signing_input):
            raise _bad(ErrorCode.KEYLOG_BAD_SIGNATURE, f"signature by signer {index} fails")
        last = index
    return len(signed.sigs)


@dataclass(frozen=True, slots=True)
class KeyState:
    """The verified state of one node's key log, after its last known event (§4.5)."""

    events: tuple[KeyEvent, ...]
    node_id: bytes = field(init=False)
    position: int = field(init=False)
    # The loaded key object of each position's operational key, for envelope checks.
    _verifiers: tuple[Ed25519PublicKey, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "node_id", self.events[0].digest)
        object.__setattr__(self, "position", len(self.events) - 1)
        object.__setattr__(self, "_verifiers", tuple(public_key(e.op) for e in self.events))

    @property
    def head(self) -> bytes:
        return self.events[-1].digest

    @property
    def op(self) -> bytes:
        return self.events[-1].op

    @property
    def _establishment(self) -> KeyEvent:
        return next(e for e in reversed(self.events) if e.type != DELEGATION)

    @property
    def officers(self) -> tuple[bytes, ...]:
        return self._establishment.officers

    @property
    def threshold(self) -> int:
        return self._establishment.threshold

    @property
    def next(self) -> tuple[bytes, ...]:
        return self._establishment.next

    @classmethod
    def from_log(cls, log: Sequence[SignedKeyEvent]) -> KeyState:
        """Verify a whole log from its inception (§4.3)."""
        if not log or log[0].event.type != INCEPTION:
            raise _bad(ErrorCode.KEYLOG_BAD_POSITION, "a key log starts with its inception")
        inception = log[0]
        if _count_signers(inception, inception.event.officers) < inception.event.threshold:
            raise _bad(ErrorCode.KEYLOG_THRESHOLD_NOT_MET, "inception under threshold")
        return cls((inception.event,)).extend(log[1:])

    def extend(self, events: Iterable[SignedKeyEvent], *, complete: bool = False) -> KeyState:
        """Apply events after what is known; known positions must match exactly (§4.6).

        With ``complete=True`` the events are a peer's whole log, which must not be shorter
        than what we hold (rollback).
        """
        state = self
        last_pos = -1
        for signed in events:
            state = state._apply(signed)
            last_pos = signed.event.pos
        if complete and last_pos < self.position:
            raise _bad(ErrorCode.KEYLOG_ROLLBACK, f"log ends at {last_pos}, known {self.position}")
        return state

    def _apply(self, signed: SignedKeyEvent) -> KeyState:
        event = signed.event
        if event.pos <= self.position:  # already known: must be the same event (§4.6)
            if event.digest != self.events[event.pos].digest:
                raise _bad(ErrorCode.KEYLOG_DUPLICITY, f"two events at position {event.pos}")
            return self
        if event.type == INCEPTION or event.node != self.node_id:
            raise _bad(ErrorCode.KEYLOG_WRONG_NODE, "event belongs to another node")
        if event.pos != self.position + 1:
            raise _bad(ErrorCode.KEYLOG_BAD_POSITION, f"gap before position {event.pos}")
        if event.prev != self.head:
            raise _bad(ErrorCode.KEYLOG_BROKEN_CHAIN, "prev is not the digest of the head")
        previous_seal = self.events[-1].seal
        if previous_seal is not None and event.seal is not None and event.seal < previous_seal:
            raise _bad(ErrorCode.KEYLOG_BAD_EVENT, "seal lower than the previous seal")
        self._authorise(signed)
        return KeyState((*self.events, event))

    def _authorise(self, signed: SignedKeyEvent) -> None:
        event = signed.event
        if event.type == DELEGATION:
            needed = self.threshold
        else:  # rotation: revealed keys must match commitments, meet old and new thresholds
            committed = set(self.next)
            if any(commitment(k) not in committed for k in event.officers):
                raise _bad(ErrorCode.KEYLOG_COMMITMENT_MISMATCH, "a revealed key was not committed")
            needed = max(self.threshold, event.threshold)
        if _count_signers(signed, _signer_list(event, self)) < needed:
            raise _bad(ErrorCode.KEYLOG_THRESHOLD_NOT_MET, f"{event.type} needs {needed} officers")

    def delegation(self, *, op: bytes, seal: int, created: int) -> KeyEvent:
        """The next event: a new operational key, to be signed by the current officers."""
        return KeyEvent(
            type=DELEGATION, pos=self.position + 1, created=created, op=op,
            node=self.node_id, prev=self.head, seal=seal,
        )  # fmt: skip

    def rotation(
        self,
        *,
        officers: Sequence[bytes],
        threshold: int,
        next_officers: Sequence[bytes],
        seal: int,
        created: int,
        op: bytes | None = None,
    ) -> KeyEvent:
        """The next event: revealed officers (public keys) take over; the op key may stay."""
        return KeyEvent(
            type=ROTATION, pos=self.position + 1, created=created, op=op or self.op,
            node=self.node_id, prev=self.head, seal=seal, officers=tuple(officers),
            threshold=threshold, next=tuple(commitment(k) for k in next_officers),
        )  # fmt: skip

    def key_for(self, kpos: int, seq: int) -> bytes:
        """The operational key for an envelope naming ``kpos`` with sequence ``seq`` (§4.5)."""
        self._check_position(kpos, seq)
        return self.events[kpos].op

    def verifier_for(self, kpos: int, seq: int) -> Ed25519PublicKey:
        """:meth:`key_for`, as a key object ready to verify with."""
        self._check_position(kpos, seq)
        return self._verifiers[kpos]

    def _check_position(self, kpos: int, seq: int) -> None:
        if kpos > self.position:
            raise SignatureError(ErrorCode.KEY_POSITION_UNKNOWN, f"{kpos} > {self.position}")
        if kpos < self.position:
            seal = self.events[kpos + 1].seal
            if seal is not None and seq > seal:
                raise SignatureError(ErrorCode.KEY_REVOKED, f"seq {seq} after seal {seal}")
