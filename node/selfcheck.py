"""``tadamun selfcheck``: prove on this machine that the protocol core works end to end.

It creates a throw-away 2-of-3 key log, signs and verifies envelopes, recovers from a
"seized server" by delegation, rotates officers, and checks an RFC 9421 example. Each step
prints one line; the first failure stops the run with a non-zero exit status.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocol import (
    CallIssue,
    KeyEvent,
    KeyState,
    ProtocolError,
    SignedEnvelope,
    SigningKey,
    Threshold,
    build_envelope,
    fingerprint,
    sign,
    sign_key_event,
    verify,
)
from protocol.httpsig import verify_http_signature

__all__ = ["run_selfcheck"]

# RFC 9421 Appendix B.2.6: the ed25519 test key and its signature over the B.2 request.
RFC_PUBLIC_KEY = bytes.fromhex("26b40b8f93fff3d897112f7ebc582b232dbd72517d082fe83cfb30ddce43d1bb")
RFC_HEADERS = {
    "Host": "example.com",
    "Date": "Tue, 20 Apr 2021 02:07:55 GMT",
    "Content-Type": "application/json",
    "Content-Length": "18",
    "Signature-Input": 'sig-b26=("date" "@method" "@path" "@authority" "content-type" '
    '"content-length");created=1618884473;keyid="test-key-ed25519"',
    "Signature": "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w"
    "6vuQv5lIp5WPpBKRCw==:",
}


@dataclass
class _Node:
    officers: list[SigningKey]
    next_officers: list[SigningKey]
    op: SigningKey
    state: KeyState
    seq: int = 0
    prev: bytes | None = None

    def envelope(
        self, now: int, op: SigningKey | None = None, kpos: int | None = None
    ) -> SignedEnvelope:
        self.seq += 1
        call = CallIssue(
            kind="strike",
            title={"ar": "إضراب", "ckb": "مانگرتن", "en": "Strike"},
            text={"en": "Self-check call."},
            threshold=Threshold(pledges=100, orgs=2, deadline=now + 86_400),
        )
        env = build_envelope(
            type=call.TYPE,
            origin=self.state.node_id,
            kpos=self.state.position if kpos is None else kpos,
            seq=self.seq,
            prev=self.prev,
            created=now,
            body=call.to_body(),
            audience="allies",
        )
        self.prev = env.id
        return sign(env, op or self.op)


def _new_node(now: int) -> _Node:
    officers = [SigningKey.generate() for _ in range(3)]
    next_officers = [SigningKey.generate() for _ in range(3)]
    op = SigningKey.generate()
    event = KeyEvent.inception(
        officers=[k.public for k in officers],
        threshold=2,
        next_officers=[k.public for k in next_officers],
        op=op.public,
        created=now,
    )
    state = KeyState.from_log([sign_key_event(event, officers[:2])])
    return _Node(officers, next_officers, op, state)


def _expect_error(code: str, action: Callable[[], object]) -> None:
    try:
        action()
    except ProtocolError as exc:
        if exc.code != code:
            raise AssertionError(f"expected {code}, got {exc.code}") from exc
        return
    raise AssertionError(f"expected {code}, but it was accepted")


def _steps(now: int) -> list[tuple[str, Callable[[], str]]]:
    node = _new_node(now)
    first = node.envelope(now)
    seized_op = node.op

    def round_trip() -> str:
        wire = first.to_bytes()
        back = SignedEnvelope.from_bytes(wire)
        verify(back, node.state, now=now)
        if back.to_bytes() != wire or back.id != first.id:
            raise AssertionError("decoding and re-encoding changed the envelope")
        return f"{len(wire)} bytes, id {first.id.hex()[:16]}…"

    def tamper() -> str:
        wire = bytearray(first.to_bytes())
        wire[wire.index(b"Self-check")] ^= 0x20
        _expect_error(
            "bad_signature",
            lambda: verify(SignedEnvelope.from_bytes(bytes(wire)), node.state, now=now),
        )
        return "one changed letter is refused (bad_signature)"

    def delegate() -> str:
        node.op = SigningKey.generate()
        event = node.state.delegation(op=node.op.public, seal=node.seq, created=now)
        node.state = node.state.extend([sign_key_event(event, node.officers[1:], node.state)])
        verify(first, node.state, now=now)  # sealed history stays valid
        thief = node.envelope(now, op=seized_op, kpos=0)  # backdated to the old key's position
        _expect_error("key_revoked", lambda: verify(thief, node.state, now=now))
        forged = node.envelope(now, op=seized_op)
        _expect_error("bad_signature", lambda: verify(forged, node.state, now=now))
        verify(node.envelope(now), node.state, now=now)
        return "2 of 3 officers moved the node to a new server key; the seized key is refused"

    def rotate() -> str:
        event = node.state.rotation(
            officers=[k.public for k in node.next_officers],
            threshold=2,
            next_officers=[SigningKey.generate().public for _ in range(3)],
            seal=node.seq,
            created=now,
        )
        node.state = node.state.extend([sign_key_event(event, node.next_officers[:2])])
        return f"pre-committed officers took over at key-log position {node.state.position}"

    def rfc9421() -> str:
        def resolve(keyid: str) -> Ed25519PublicKey | None:
            ok = keyid == "test-key-ed25519"
            return Ed25519PublicKey.from_public_bytes(RFC_PUBLIC_KEY) if ok else None

        verify_http_signature(
            method="POST",
            url="https://example.com/foo?param=Value&Pet=dog",
            headers=RFC_HEADERS,
            resolve_key=resolve,
            label="sig-b26",
        )
        return "RFC 9421 Appendix B.2.6 (ed25519) verifies"

    return [
        ("node identity", lambda: f"fingerprint {fingerprint(node.state.node_id)}"),
        ("envelope round trip", round_trip),
        ("tampering detected", tamper),
        ("seized-server recovery", delegate),
        ("officer rotation", rotate),
        ("transport signatures", rfc9421),
    ]


def run_selfcheck(now: int, out: Callable[[str], None]) -> bool:
    """Run every step, printing through ``out``; True if all passed."""
    started = time.perf_counter()
    for name, step in _steps(now):
        try:
            detail = step()
        except (AssertionError, ProtocolError) as exc:
            out(f"FAIL  {name}: {exc}")
            return False
        out(f"ok    {name}: {detail}")
    out(f"protocol self-check passed in {time.perf_counter() - started:.3f} s")
    return True
