"""Every known-answer vector in tests/vectors/*.json, checked against the implementation.

Valid cases must reproduce their bytes, ids and signatures exactly; invalid ones must fail
at the stated stage with exactly the stated error code (SPEC.md §13).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from protocol import (
    CoalitionEvent,
    CoalitionSeed,
    DecodeError,
    KeyLogError,
    KeyState,
    ProtocolError,
    SignedEnvelope,
    SignedKeyEvent,
    SigningKey,
    check_coalition_envelope,
    decode,
    encode,
    fingerprint,
    membership,
    parse_body,
    verify,
    verify_signature,
)
from protocol.envelope import ENVELOPE_SIG_DOMAIN
from protocol.keylog import KEYEVENT_SIG_DOMAIN
from protocol.registry import is_core_type

VECTORS = Path(__file__).parents[1] / "vectors"


def cases(name: str) -> list[dict[str, Any]]:
    document = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    return list(document["cases"])


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [c["name"] for c in items]


def untyped(value: dict[str, Any]) -> Any:
    """The typed JSON form of SPEC.md §13.2 back into a value."""
    ((tag, inner),) = value.items()
    match tag:
        case "nil":
            return None
        case "bool" | "str":
            return inner
        case "int":
            return int(inner)
        case "bin":
            return bytes.fromhex(inner)
        case "array":
            return [untyped(v) for v in inner]
        case "map":
            return {k: untyped(v) for k, v in inner}
    raise AssertionError(tag)


def test_vector_counts_meet_the_contract() -> None:
    total = sum(len(cases(p.name)) for p in VECTORS.glob("*.json"))
    assert total >= 60
    for path in VECTORS.glob("*.json"):
        for case in cases(path.name):
            assert isinstance(case["name"], str)
            assert isinstance(case["valid"], bool)
            assert case["valid"] or "error" in case, case["name"]


def test_vectors_are_what_the_generator_makes_now() -> None:
    generator = VECTORS / "gen_vectors.py"
    result = subprocess.run(  # noqa: S603 - our own script, fixed arguments
        [sys.executable, str(generator), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


ENCODING = cases("encoding.json")


@pytest.mark.parametrize("case", ENCODING, ids=ids(ENCODING))
def test_encoding_vector(case: dict[str, Any]) -> None:
    if case["valid"]:
        wire = bytes.fromhex(case["canonical_hex"])
        value = untyped(case["value"])
        assert decode(wire) == value
        assert encode(value) == wire
    else:
        with pytest.raises(DecodeError) as caught:
            decode(bytes.fromhex(case["wire_hex"]))
        assert caught.value.code == case["error"]


def check_signature_fields(case: dict[str, Any], domain: bytes) -> None:
    """What an independent implementation checks with any Ed25519 and SHA-256 library."""
    key = SigningKey(bytes.fromhex(case["seed_hex"]))
    assert key.public.hex() == case["public_key_hex"]
    id_ = hashlib.sha256(bytes.fromhex(case["id_input_hex"])).digest()
    assert id_.hex() == case["id_hex"]
    signing_input = bytes.fromhex(case["signing_input_hex"])
    assert signing_input == domain + id_
    signature = bytes.fromhex(case["signature_hex"])
    assert verify_signature(key.public, signature, signing_input)
    assert key.sign(signing_input) == signature  # Ed25519 is deterministic


def load_log(hexes: list[str]) -> list[SignedKeyEvent]:
    return [SignedKeyEvent.from_bytes(bytes.fromhex(h)) for h in hexes]


KEYLOG = cases("keylog.json")


def present_log(case: dict[str, Any]) -> KeyState:
    """Verify the case's log, on top of the log already known if the case has one."""
    if "known_hex" not in case:
        return KeyState.from_log(load_log(case["log_hex"]))
    known = KeyState.from_log(load_log(case["known_hex"]))
    return known.extend(load_log(case["log_hex"]), complete=case["complete"])


@pytest.mark.parametrize("case", KEYLOG, ids=ids(KEYLOG))
def test_keylog_vector(case: dict[str, Any]) -> None:
    if not case["valid"]:
        with pytest.raises(KeyLogError) as caught:
            present_log(case)
        assert caught.value.code == case["error"]
        return
    state = KeyState.from_log(load_log(case["log_hex"]))
    assert state.node_id.hex() == case["node_id_hex"]
    assert fingerprint(state.node_id) == case["fingerprint"]
    inception = load_log(case["log_hex"][:1])[0].event
    assert state.node_id == hashlib.sha256(inception.canonical).digest()
    expected = case["state"]
    assert state.position == expected["position"]
    assert state.op.hex() == expected["op_hex"]
    assert state.threshold == expected["threshold"]
    assert [k.hex() for k in state.officers] == expected["officers_hex"]
    assert [k.hex() for k in state.next] == expected["next_hex"]
    signed = SignedKeyEvent.from_bytes(bytes.fromhex(case["canonical_hex"]))
    assert signed.to_bytes().hex() == case["canonical_hex"]
    assert signed.event.canonical.hex() == case["id_input_hex"]
    check_signature_fields(case, KEYEVENT_SIG_DOMAIN)


ENVELOPES = cases("envelopes.json")


@pytest.mark.parametrize("case", ENVELOPES, ids=ids(ENVELOPES))
def test_envelope_vector(case: dict[str, Any]) -> None:
    state = KeyState.from_log(load_log(case["log_hex"]))
    if case["valid"]:
        wire = bytes.fromhex(case["canonical_hex"])
        signed = SignedEnvelope.from_bytes(wire)
        assert signed.to_bytes() == wire
        assert signed.id.hex() == case["id_hex"]
        assert signed.envelope.canonical.hex() == case["id_input_hex"]
        assert signed.sig.hex() == case["signature_hex"]
        verify(signed, state, now=case["now"])
        if is_core_type(case["type"]):
            parse_body(signed.envelope.type, signed.envelope.body)
        if case["type"].startswith("coalition."):
            check_coalition_envelope(signed.envelope)
        check_signature_fields(case, ENVELOPE_SIG_DOMAIN)
        return
    reached: list[str] = []
    with pytest.raises(ProtocolError) as caught:
        run_stages(case, state, reached)
    assert (reached[-1], caught.value.code) == (case["stage"], case["error"])


def run_stages(case: dict[str, Any], state: KeyState, reached: list[str]) -> None:
    """Decode, verify, parse and (coalitions) check, noting each stage before it runs."""
    reached.append("decode")
    signed = SignedEnvelope.from_bytes(bytes.fromhex(case["wire_hex"]))
    reached.append("verify")
    verify(signed, state, now=case["now"])
    reached.append("parse")
    parse_body(signed.envelope.type, signed.envelope.body)
    reached.append("coalition")
    check_coalition_envelope(signed.envelope)


MEMBERSHIP = cases("membership.json")


@pytest.mark.parametrize("case", MEMBERSHIP, ids=ids(MEMBERSHIP))
def test_membership_vector(case: dict[str, Any]) -> None:
    seed = CoalitionSeed(
        {bytes.fromhex(node): since for node, since in case["seed"]["members"]},
        {bytes.fromhex(i): (bytes.fromhex(who), at) for i, who, at in case["seed"]["invites"]},
    )
    events = [
        CoalitionEvent(bytes.fromhex(e["id"]), bytes.fromhex(e["origin"]), e["seq"],
                       e["created"], e["kind"],
                       bytes.fromhex(e["subject"]) if "subject" in e else None)
        for e in case["events"]
    ]  # fmt: skip
    computed = {node.hex(): s.state for node, s in membership(seed, events).items()}
    assert computed == case["standings"]
    assert {n.hex(): s.state for n, s in membership(seed, events[::-1]).items()} == computed
