"""Write the known-answer vectors of SPEC.md §13: encoding, key log and envelopes.

Run ``python tests/vectors/gen_vectors.py`` to rewrite the JSON files, or with ``--check``
to fail if the committed files differ from what the implementation produces now. Every
input is fixed (seeds, times), so the output is byte-for-byte reproducible.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

from protocol import (
    DELEGATION,
    INCEPTION,
    ROTATION,
    CallActivate,
    CallAmend,
    CallCancel,
    CallConclude,
    CallDecline,
    CallEndorse,
    CallIssue,
    CallTally,
    CallUpdate,
    CoalitionEvent,
    CoalitionFound,
    CoalitionInvite,
    CoalitionJoin,
    CoalitionLeave,
    CoalitionSeed,
    DecisionOutcome,
    DecisionSummary,
    KeyEvent,
    KeyState,
    Location,
    NodeDescriptor,
    PeerAlliance,
    PeerIntroduce,
    ProtocolError,
    Ratio,
    SignedEnvelope,
    SignedKeyEvent,
    SigningKey,
    Threshold,
    build_envelope,
    coalition_audience,
    coalition_id,
    commitment,
    decode,
    encode,
    fingerprint,
    membership,
    sign,
    sign_key_event,
)
from protocol.coalitions import Member, OpenInvite
from protocol.message import Message

HERE = Path(__file__).parent
T0 = 1_800_000_000  # the "now" of every vector: 2027-01-15T08:00:00Z
Case = dict[str, Any]


def seed(label: str) -> bytes:
    return hashlib.sha256(b"tadamun-vector:" + label.encode()).digest()


def key(label: str) -> SigningKey:
    return SigningKey(seed(label))


def raw(value: Any) -> bytes:
    """Plain msgpack, for hand-made invalid inputs (no canonical checks)."""
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


# ---------------------------------------------------------------- encoding (§3)


def typed(value: Any) -> Any:
    """A value in the language-neutral typed JSON form of SPEC.md §13.2."""
    if value is None:
        return {"nil": None}
    if isinstance(value, bool):
        return {"bool": value}
    if isinstance(value, int):
        return {"int": str(value)}
    if isinstance(value, str):
        return {"str": value}
    if isinstance(value, bytes):
        return {"bin": value.hex()}
    if isinstance(value, list):
        return {"array": [typed(v) for v in value]}
    return {"map": [[k, typed(v)] for k, v in sorted(value.items(), key=lambda i: i[0].encode())]}


def encoding_cases() -> list[Case]:
    valid: list[tuple[str, Any]] = [
        *[(f"int {n}", n) for n in (0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32)],
        ("int max 2^53-1", 2**53 - 1),
        *[(f"int {n}", n) for n in (-1, -32, -33, -128, -129, -32768, -32769, -(2**31))],
        ("int -2^31-1", -(2**31) - 1),
        ("int min -(2^53-1)", -(2**53 - 1)),
        ("nil", None),
        ("true", True),
        ("false", False),
        ("empty str", ""),
        ("str 31 bytes", "a" * 31),
        ("str 32 bytes (str8)", "b" * 32),
        ("str 256 bytes (str16)", "c" * 256),
        ("Arabic and Sorani text", "إضراب عام — مانگرتنی گشتی"),
        ("bin 0", b""),
        ("bin 64", bytes(range(64))),
        ("bin 256 (bin16)", bytes(256)),
        ("empty array", []),
        ("empty map", {}),
        ("array 16 (array16)", list(range(16))),
        ("map keys in UTF-8 byte order", {"b": 1, "a": 2, "aa": 3, "B": 4, "é": 5, "z": 6}),
        ("nested", {"body": {"list": [1, "x", b"\x00", None, {"k": True}]}, "v": 1}),
        ("depth 16 (the limit)", [[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]),
    ]
    cases = [
        {
            "name": f"encoding: {name}",
            "valid": True,
            "value": typed(v),
            "canonical_hex": encode(v).hex(),
        }
        for name, v in valid
    ]
    invalid: list[tuple[str, bytes, str]] = [
        ("unsorted keys", bytes.fromhex("82a162 01 a161 02".replace(" ", "")), "unsorted_keys"),
        ("duplicate keys", bytes.fromhex("82a16101a16102"), "duplicate_key"),
        (
            "duplicate keys, sorted neighbours",
            bytes.fromhex("83a16101a16101a16202"),
            "duplicate_key",
        ),
        ("non-shortest int: uint8 for 5", bytes.fromhex("cc05"), "noncanonical"),
        ("non-shortest int: uint16 for 200", bytes.fromhex("cd00c8"), "noncanonical"),
        ("non-shortest int: int8 for positive 5", bytes.fromhex("d005"), "noncanonical"),
        ("non-shortest int: int16 for -5", bytes.fromhex("d1fffb"), "noncanonical"),
        ("non-shortest int: uint64 for 1", bytes.fromhex("cf0000000000000001"), "noncanonical"),
        ("non-shortest str: str8 for 3 bytes", bytes.fromhex("d903616263"), "noncanonical"),
        ("non-shortest array: array16 of 2", bytes.fromhex("dc00020102"), "noncanonical"),
        ("non-shortest map: map16 of 1", bytes.fromhex("de0001a16101"), "noncanonical"),
        ("out-of-range int 2^53", raw(2**53), "int_out_of_range"),
        ("out-of-range int -2^53", raw(-(2**53)), "int_out_of_range"),
        ("out-of-range int uint64 max", raw(2**64 - 1), "int_out_of_range"),
        ("out-of-range int nested in a map", raw({"n": 2**60}), "int_out_of_range"),
        ("float64", bytes.fromhex("cb3ff0000000000000"), "float_not_allowed"),
        ("float32", bytes.fromhex("ca3f800000"), "float_not_allowed"),
        ("float NaN in an array", bytes.fromhex("91cb7ff8000000000000"), "float_not_allowed"),
        ("ext fixext1", bytes.fromhex("d40100"), "ext_not_allowed"),
        ("ext timestamp32", bytes.fromhex("d6ff00000001"), "ext_not_allowed"),
        ("invalid UTF-8 in str", bytes.fromhex("a2fffe"), "invalid_utf8"),
        ("invalid UTF-8: encoded surrogate", bytes.fromhex("a3eda080"), "invalid_utf8"),
        ("invalid UTF-8 in a key", bytes.fromhex("81a1ff01"), "invalid_utf8"),
        ("integer map key", bytes.fromhex("810102"), "non_string_key"),
        ("bin map key", bytes.fromhex("81c4016101"), "non_string_key"),
        ("too deep: 17 levels", bytes([0x91] * 16 + [0x90]), "too_deep"),
        ("too deep: 5000 levels", bytes([0x91] * 5000 + [0xC0]), "too_deep"),
        ("too large: 65537 bytes", raw("x" * (65_537 - 3)), "too_large"),
        ("str too long: 32769 bytes", raw("y" * 32_769), "too_long"),
        ("bin too long: 4097 bytes", raw(bytes(4_097)), "too_long"),
        ("array too long: 1025 items", raw([0] * 1_025), "too_long"),
        ("map too long: 257 entries", raw({f"k{i:03d}": 0 for i in range(257)}), "too_long"),
        ("array32 header claiming 2^32-1 items", bytes.fromhex("ddffffffff"), "too_long"),
        ("truncated array", bytes.fromhex("9301"), "truncated"),
        ("truncated str", bytes.fromhex("a5616263"), "truncated"),
        ("empty input", b"", "truncated"),
        ("trailing bytes", bytes.fromhex("0102"), "trailing_bytes"),
        ("reserved byte 0xc1", bytes.fromhex("c1"), "malformed"),
    ]
    cases += [
        {"name": f"encoding: {name}", "valid": False, "wire_hex": data.hex(), "error": error}
        for name, data, error in invalid
    ]
    return cases


# ---------------------------------------------------------------- key log (§4)

OFFICERS = [key(f"officer-{i}") for i in range(3)]
NEXT_OFFICERS = [key(f"next-officer-{i}") for i in range(3)]
THIRD_OFFICERS = [key(f"third-officer-{i}") for i in range(3)]
OP = key("operational-0")
OP_1 = key("operational-1")


def inception(
    officers: list[SigningKey] = OFFICERS, threshold: int = 2, op: SigningKey = OP
) -> KeyEvent:
    return KeyEvent(
        type=INCEPTION,
        pos=0,
        created=T0 - 86_400,
        op=op.public,
        officers=tuple(k.public for k in officers),
        threshold=threshold,
        next=tuple(commitment(k.public) for k in NEXT_OFFICERS),
    )


def base_log() -> tuple[list[SignedKeyEvent], KeyState]:
    signed = sign_key_event(inception(), OFFICERS[:2])
    return [signed], KeyState.from_log([signed])


def delegation(state: KeyState, seal: int = 2, op: SigningKey = OP_1) -> KeyEvent:
    return KeyEvent(
        type=DELEGATION,
        pos=state.position + 1,
        created=T0 - 3_600,
        op=op.public,
        node=state.node_id,
        prev=state.head,
        seal=seal,
    )


def rotation(state: KeyState, officers: list[SigningKey], threshold: int = 2) -> KeyEvent:
    return KeyEvent(
        type=ROTATION,
        pos=state.position + 1,
        created=T0 - 1_800,
        op=state.op,
        node=state.node_id,
        prev=state.head,
        seal=3,
        officers=tuple(k.public for k in officers),
        threshold=threshold,
        next=tuple(commitment(k.public) for k in THIRD_OFFICERS),
    )


def signed_bytes(event: KeyEvent, sigs: list[tuple[int, bytes]]) -> bytes:
    return SignedKeyEvent(event, tuple(sigs)).to_bytes()


def event_fields(signed: SignedKeyEvent, signer: SigningKey) -> Case:
    ev = signed.event
    return {
        "seed_hex": signer.seed.hex(),
        "public_key_hex": signer.public.hex(),
        "canonical_hex": signed.to_bytes().hex(),
        "id_input_hex": ev.canonical.hex(),
        "id_hex": ev.digest.hex(),
        "signing_input_hex": ev.signing_input.hex(),
        "signature_hex": dict(signed.sigs)[_index(signed, signer)].hex(),
    }


def _index(signed: SignedKeyEvent, signer: SigningKey) -> int:
    officers = signed.event.officers or OFFICERS_PUBLIC
    return officers.index(signer.public)


OFFICERS_PUBLIC = tuple(k.public for k in OFFICERS)


def keylog_cases() -> list[Case]:
    log, state = base_log()
    solo = sign_key_event(inception([OFFICERS[0]], 1), [OFFICERS[0]])
    deleg = sign_key_event(delegation(state), OFFICERS[1:], state)
    state_d = state.extend([deleg])
    rot = sign_key_event(rotation(state_d, NEXT_OFFICERS), NEXT_OFFICERS[:2], state_d)
    cases: list[Case] = [
        valid_log("inception 1-of-1", [solo], solo, OFFICERS[0]),
        valid_log("inception 2-of-3", log, log[0], OFFICERS[0]),
        valid_log(
            "delegation of a new operational key by 2 of 3 officers",
            [*log, deleg],
            deleg,
            OFFICERS[1],
        ),
        valid_log(
            "rotation to the pre-committed officers, 2-of-3",
            [*log, deleg, rot],
            rot,
            NEXT_OFFICERS[0],
        ),
        valid_log(
            "known event presented again is idempotent", [*log, deleg, deleg], deleg, OFFICERS[1]
        ),
    ]
    cases += invalid_keylog_cases(log, state, deleg, state_d)
    return cases


def valid_log(
    name: str, log: list[SignedKeyEvent], last: SignedKeyEvent, signer: SigningKey
) -> Case:
    state = KeyState.from_log(log)
    return {
        "name": f"keylog: {name}",
        "valid": True,
        "log_hex": [e.to_bytes().hex() for e in log],
        "node_id_hex": state.node_id.hex(),
        "fingerprint": fingerprint(state.node_id),
        "state": {
            "position": state.position,
            "op_hex": state.op.hex(),
            "threshold": state.threshold,
            "officers_hex": [k.hex() for k in state.officers],
            "next_hex": [k.hex() for k in state.next],
        },
        **event_fields(last, signer),
    }


def invalid_keylog_cases(
    log: list[SignedKeyEvent], state: KeyState, deleg: SignedKeyEvent, state_d: KeyState
) -> list[Case]:
    inc = log[0].event
    bad_threshold_0 = _wire_event(inc, threshold=0)
    bad_threshold_4 = _wire_event(inc, threshold=4)
    dup_officer = _wire_event(
        inc, officers=[OFFICERS[0].public, OFFICERS[0].public, OFFICERS[1].public]
    )
    dup_sig = signed_bytes(inc, [(0, OFFICERS[0].sign(inc.signing_input))] * 2)
    under = signed_bytes(inc, [(0, OFFICERS[0].sign(inc.signing_input))])
    forged = signed_bytes(
        inc, [(0, OFFICERS[0].sign(inc.signing_input)), (1, OFFICERS[2].sign(inc.signing_input))]
    )
    wrong_reveal = rotation(state_d, [THIRD_OFFICERS[0], NEXT_OFFICERS[1], NEXT_OFFICERS[2]])
    old_threshold = rotation(state_d, NEXT_OFFICERS, threshold=1)
    new_threshold = rotation(state_d, NEXT_OFFICERS, threshold=3)
    broken = KeyEvent(
        type=DELEGATION,
        pos=1,
        created=T0,
        op=OP_1.public,
        node=state.node_id,
        prev=bytes(32),
        seal=2,
    )
    gap = KeyEvent(
        type=DELEGATION,
        pos=2,
        created=T0,
        op=OP_1.public,
        node=state.node_id,
        prev=state.head,
        seal=2,
    )
    fork = sign_key_event(
        delegation(state, seal=2, op=key("operational-fork")), OFFICERS[:2], state
    )
    outsider = sign_key_event(
        delegation(state),
        [NEXT_OFFICERS[0], NEXT_OFFICERS[1]],
        KeyState(
            (
                KeyEvent(
                    type=INCEPTION,
                    pos=0,
                    created=0,
                    op=OP.public,
                    officers=tuple(k.public for k in NEXT_OFFICERS),
                    threshold=2,
                    next=inc.next,
                ),
            )
        ),
    )
    head = log[0].to_bytes().hex()
    foreign = KeyEvent(
        type=DELEGATION,
        pos=1,
        created=T0,
        op=OP_1.public,
        node=seed("another-node"),
        prev=state.head,
        seal=2,
    )
    sig_0 = (0, OFFICERS[0].sign(inc.signing_input))
    sig_1 = (1, OFFICERS[1].sign(inc.signing_input))

    def case(name: str, events: list[bytes], error: str, **extra: Any) -> Case:
        return {
            "name": f"keylog: {name}",
            "valid": False,
            "log_hex": [e.hex() for e in events],
            **extra,
            "error": error,
        }

    return [
        case("threshold 0", [bad_threshold_0], "keylog_bad_threshold"),
        case("threshold above n", [bad_threshold_4], "keylog_bad_threshold"),
        case("one officer key listed twice", [dup_officer], "keylog_duplicate_key"),
        case("two signatures by one key", [dup_sig], "keylog_duplicate_signature"),
        case("inception under its threshold", [under], "keylog_threshold_not_met"),
        case("signature by a key that is not that officer", [forged], "keylog_bad_signature"),
        case(
            "delegation signed by non-officers",
            [log[0].to_bytes(), outsider.to_bytes()],
            "keylog_bad_signature",
        ),
        case(
            "delegation under threshold",
            [log[0].to_bytes(), signed_bytes(deleg.event, list(deleg.sigs[:1]))],
            "keylog_threshold_not_met",
        ),
        case(
            "rotation reveals a key that was not committed",
            [
                log[0].to_bytes(),
                deleg.to_bytes(),
                sign_key_event(wrong_reveal, [NEXT_OFFICERS[1], NEXT_OFFICERS[2]]).to_bytes(),
            ],
            "keylog_commitment_mismatch",
        ),
        case(
            "rotation signed to the new threshold 1 but not the old 2",
            [
                log[0].to_bytes(),
                deleg.to_bytes(),
                sign_key_event(old_threshold, [NEXT_OFFICERS[0]]).to_bytes(),
            ],
            "keylog_threshold_not_met",
        ),
        case(
            "rotation signed to the old threshold 2 but not the new 3",
            [
                log[0].to_bytes(),
                deleg.to_bytes(),
                sign_key_event(new_threshold, NEXT_OFFICERS[:2]).to_bytes(),
            ],
            "keylog_threshold_not_met",
        ),
        case(
            "broken hash chain",
            [log[0].to_bytes(), sign_key_event(broken, OFFICERS[:2], state).to_bytes()],
            "keylog_broken_chain",
        ),
        case(
            "gap in positions",
            [log[0].to_bytes(), sign_key_event(gap, OFFICERS[:2], state).to_bytes()],
            "keylog_bad_position",
        ),
        case("log not starting with an inception", [deleg.to_bytes()], "keylog_bad_position"),
        case(
            "two events at one position (duplicity)",
            [log[0].to_bytes(), deleg.to_bytes(), fork.to_bytes()],
            "keylog_duplicity",
        ),
        {
            **case(
                "presented log forks from the known one",
                [log[0].to_bytes(), fork.to_bytes()],
                "keylog_duplicity",
            ),
            "known_hex": [head, deleg.to_bytes().hex()],
            "complete": True,
        },
        {
            **case(
                "presented log rolls back the known one", [log[0].to_bytes()], "keylog_rollback"
            ),
            "known_hex": [head, deleg.to_bytes().hex()],
            "complete": True,
        },
        case(
            "event naming another node",
            [log[0].to_bytes(), sign_key_event(foreign, OFFICERS[:2], state).to_bytes()],
            "keylog_wrong_node",
        ),
        case("unknown field in a key event", [_wire_event(inc, extra="x")], "keylog_bad_event"),
        case(
            "signatures out of signer order",
            [signed_bytes(inc, [sig_1, sig_0])],
            "keylog_bad_event",
        ),
        case(
            "negative signer index",
            [signed_bytes(inc, [(-1, sig_0[1]), sig_1])],
            "keylog_bad_signature",
        ),
    ]


def _wire_event(event: KeyEvent, **changes: Any) -> bytes:
    """A signed inception with fields no valid KeyEvent may hold, built by hand."""
    fields = decode(event.canonical) | changes
    canonical = encode(fields)
    sig_input = b"TADAMUN-KEYEVENT-SIG-V1\x00" + hashlib.sha256(canonical).digest()
    sigs = [[i, OFFICERS[i].sign(sig_input)] for i in range(2)]
    return encode({"event": fields, "sigs": sigs})


# ---------------------------------------------------------------- envelopes (§5-§8)


CALL_ID = hashlib.sha256(b"tadamun-vector:call").digest()
TALLY_IDS = sorted(hashlib.sha256(f"tadamun-vector:tally-{i}".encode()).digest() for i in range(3))
SUMMARY = DecisionSummary(
    by="vote", method="majority", electorate=120, turnout=87, yes=61, no=20, abstain=6
)
MESSAGES: list[tuple[str, Message]] = [
    (
        "node.descriptor",
        NodeDescriptor(
            name={
                "ar": "نقابة عمال النفط في البصرة",
                "en": "Basra Oil Workers' Union",
                "ckb": "سەندیکای کرێکارانی نەوتی بەسرە",
            },
            endpoints=("https://oil-basra.example.org",),
            langs=("ar", "ckb", "en"),
            caps=("tadamun.v1",),
            region="IQ-BA",
        ),
    ),
    (
        "peer.introduce",
        PeerIntroduce(
            inviter=seed("inviter"),
            invite=seed("invite")[:16],
            proof=seed("proof"),
            endpoint="https://teachers.example",
        ),
    ),
    ("peer.alliance", PeerAlliance(peer=seed("peer"), state="allied")),
    (
        "decision.outcome",
        DecisionOutcome(
            proposal=seed("proposal")[:16],
            title={"en": "Do we join the port strike?"},
            method="supermajority",
            fraction=Ratio(2, 3),
            quorum=Ratio(1, 2),
            ballot="secret",
            electorate=120,
            turnout=87,
            options=("yes", "no"),
            counts=(61, 20),
            abstain=6,
            outcome="adopted",
            winner=0,
            opened=T0 - 7 * 86_400,
            closed=T0 - 86_400,
        ),
    ),
    (
        "call.issue",
        CallIssue(
            kind="strike",
            title={
                "ar": "إضراب عام في الموانئ",
                "ckb": "مانگرتنی گشتی لە بەندەرەکان",
                "en": "General strike at the ports",
            },
            text={"ar": "ندعو جميع العمال إلى الإضراب.", "en": "We call every worker out."},
            starts=T0 + 14 * 86_400,
            ends=T0 + 15 * 86_400,
            location=Location("IQ-BA", "Umm Qasr"),
            sectors=("oil", "ports"),
            regions=("IQ-BA",),
            threshold=Threshold(pledges=5_000, orgs=3, deadline=T0 + 10 * 86_400),
        ),
    ),
    ("call.amend", CallAmend(call=CALL_ID, starts=T0 + 15 * 86_400, ends=T0 + 16 * 86_400)),
    ("call.cancel", CallCancel(call=CALL_ID, reason={"en": "Demands met."})),
    ("call.update", CallUpdate(call=CALL_ID, text={"en": "Assembly points published."})),
    ("call.conclude", CallConclude(call=CALL_ID, outcome="held", text={"en": "Thank you."})),
    ("call.endorse", CallEndorse(call=CALL_ID, decision=SUMMARY)),
    (
        "call.decline",
        CallDecline(
            call=CALL_ID,
            decision=DecisionSummary(by="admins", electorate=3, turnout=3, yes=1, no=2),
        ),
    ),
    ("call.tally", CallTally(call=CALL_ID, seq=4, firm=1_200, conditional=300, bucket=50, k=10)),
    ("call.activate", CallActivate(call=CALL_ID, tallies=tuple(TALLY_IDS), pledges=5_150, orgs=3)),
]


def envelope_cases() -> list[Case]:
    log, state = base_log()
    context = {"log_hex": [e.to_bytes().hex() for e in log], "now": T0}
    cases = [
        valid_envelope(f"envelope: {name}", msg.TYPE, msg.to_body(), state, context, seq=i + 1)
        for i, (name, msg) in enumerate(MESSAGES)
    ]
    cases.append(
        valid_envelope(
            "envelope: extension type under a reverse-DNS name",
            "org.example.poll.open",
            {"question": "Lunch?"},
            state,
            context,
        )
    )
    cases.append(
        valid_envelope(
            "envelope: unknown non-critical fields kept byte-exactly",
            "call.update",
            {"call": CALL_ID, "text": {"en": "x"}, "x-future": [1, 2]},
            state,
            context,
            extra={"zz-hint": "kept"},
        )
    )
    cases.append(
        valid_envelope(
            "envelope: known field listed in crit",
            "call.update",
            {"call": CALL_ID, "text": {"en": "x"}},
            state,
            context,
            crit=("body.text", "expires"),
            expires=T0 + 3_600,
        )
    )
    cases.append(valid_relayed(state, context))
    cases += after_delegation(log, state)
    return cases + invalid_envelope_cases(log, state, context) + coalition_cases(state, context)


def after_delegation(log: list[SignedKeyEvent], state: KeyState) -> list[Case]:
    """Envelopes once officers moved the node to operational key 1 with seal 1 (§4.5)."""
    deleg = sign_key_event(delegation(state, seal=1), OFFICERS[:2], state)
    moved = state.extend([deleg])
    context = {"log_hex": [e.to_bytes().hex() for e in (*log, deleg)], "now": T0}
    body = {"call": CALL_ID, "text": {"en": "moved"}}
    return [
        valid_envelope(
            "envelope: signed under key-log position 1 by the delegated key",
            "call.update",
            body,
            moved,
            context,
            seq=2,
            kpos=1,
            signer=OP_1,
        ),
        valid_envelope(
            "envelope: old position, seq within the seal, still valid",
            "call.update",
            body,
            moved,
            context,
            seq=1,
            kpos=0,
            signer=OP,
        ),
    ]


def valid_envelope(
    name: str,
    type_: str,
    body: dict[str, Any],
    state: KeyState,
    context: Case,
    seq: int = 1,
    kpos: int = 0,
    signer: SigningKey = OP,
    audience: str = "allies",
    **extra: Any,
) -> Case:
    env = build_envelope(
        type=type_,
        origin=state.node_id,
        kpos=kpos,
        seq=seq,
        prev=None if seq == 1 else seed(f"prev-{seq}"),
        created=T0 - 60,
        body=body,
        audience=audience,
        **extra,
    )
    signed = sign(env, signer)
    return {
        "name": name,
        "valid": True,
        "type": type_,
        **context,
        "seed_hex": signer.seed.hex(),
        "public_key_hex": signer.public.hex(),
        "canonical_hex": signed.to_bytes().hex(),
        "id_input_hex": env.canonical.hex(),
        "id_hex": env.id.hex(),
        "signing_input_hex": env.signing_input.hex(),
        "signature_hex": signed.sig.hex(),
    }


def valid_relayed(state: KeyState, context: Case) -> Case:
    case = valid_envelope(
        "envelope: relayed twice, relay path outside the signature",
        "call.update",
        {"call": CALL_ID, "text": {"en": "relay"}},
        state,
        context,
    )
    signed = SignedEnvelope.from_bytes(bytes.fromhex(case["canonical_hex"]))
    relayed = signed.relayed_by(seed("relay-1")).relayed_by(seed("relay-2"))
    return case | {"canonical_hex": relayed.to_bytes().hex()}


def invalid_envelope_cases(log: list[SignedKeyEvent], state: KeyState, context: Case) -> list[Case]:
    base: dict[str, Any] = {
        "type": "call.update",
        "origin": state.node_id,
        "kpos": 0,
        "seq": 1,
        "created": T0 - 60,
        "aud": "allies",
        "v": 1,
        "body": {"call": CALL_ID, "text": {"en": "hold the line"}},
    }
    good = sign_fields(base, OP)
    other_log = [sign_key_event(inception([OFFICERS[1]], 1, OP_1), [OFFICERS[1]])]
    deleg = sign_key_event(delegation(state, seal=1), OFFICERS[:2], state)
    revoked_log = [*context["log_hex"], deleg.to_bytes().hex()]

    def case(name: str, wire: bytes, error: str, stage: str, **extra: Any) -> Case:
        return {
            "name": f"envelope: {name}",
            "valid": False,
            **context,
            "stage": stage,
            "wire_hex": wire.hex(),
            **extra,
            "error": error,
        }

    return [
        case("tampered body", tamper(good), "bad_signature", "verify"),
        case("tampered signature", good[:-1] + bytes([good[-1] ^ 1]), "bad_signature", "verify"),
        case(
            "signed by another key than the origin's",
            sign_fields(base, OP_1),
            "bad_signature",
            "verify",
        ),
        case(
            "origin does not match the signer's key log",
            good,
            "origin_mismatch",
            "verify",
            log_hex=[e.to_bytes().hex() for e in other_log],
        ),
        case(
            "old key after it was replaced (seq beyond the seal)",
            sign_fields(base | {"seq": 2, "prev": seed("p")}, OP),
            "key_revoked",
            "verify",
            log_hex=revoked_log,
        ),
        case(
            "key-log position in the future",
            sign_fields(base | {"kpos": 5}, OP),
            "key_position_unknown",
            "verify",
        ),
        case(
            "created beyond the skew bound",
            sign_fields(base | {"created": T0 + 301}, OP),
            "from_future",
            "verify",
        ),
        case(
            "expired",
            sign_fields(base | {"created": T0 - 7200, "expires": T0 - 1}, OP),
            "expired",
            "verify",
        ),
        case(
            "unknown critical field",
            sign_fields(base | {"zz": 1, "crit": ["zz"]}, OP),
            "unknown_critical",
            "decode",
        ),
        case(
            "unknown critical body field",
            sign_fields(base | {"body": base["body"] | {"poll": 1}, "crit": ["body.poll"]}, OP),
            "unknown_critical",
            "decode",
        ),
        case(
            "crit naming an absent field",
            sign_fields(base | {"crit": ["expires"]}, OP),
            "invalid_field",
            "decode",
        ),
        case(
            "unsupported major version",
            sign_fields(base | {"v": 2}, OP),
            "unsupported_version",
            "decode",
        ),
        case(
            "prev missing after the first envelope",
            sign_fields(base | {"seq": 2}, OP),
            "invalid_field",
            "decode",
        ),
        case(
            "origin of the wrong length",
            sign_fields(base | {"origin": b"\x01" * 31}, OP),
            "invalid_field",
            "decode",
        ),
        case(
            "audience not in the grammar",
            sign_fields(base | {"aud": "everyone"}, OP),
            "invalid_field",
            "decode",
        ),
        case(
            "extension type without a reverse-DNS prefix",
            sign_fields(base | {"type": "poll.open"}, OP),
            "invalid_field",
            "decode",
        ),
        case(
            "non-canonical envelope (unsorted keys)", unsorted_wire(base), "unsorted_keys", "decode"
        ),
        case(
            "signature of 63 bytes",
            good[:-66] + b"\xc4\x3f" + good[-63:],
            "invalid_field",
            "decode",
        ),
        case(
            "unknown core message type",
            sign_fields(base | {"type": "call.retract"}, OP),
            "unknown_type",
            "parse",
        ),
        case(
            "tally with a count below k",
            sign_fields(
                base
                | {
                    "type": "call.tally",
                    "body": {
                        "call": CALL_ID,
                        "seq": 1,
                        "firm": 5,
                        "conditional": 0,
                        "bucket": 1,
                        "k": 10,
                    },
                },
                OP,
            ),
            "invalid_field",
            "parse",
        ),
        case(
            "call.issue missing its title",
            sign_fields(
                base | {"type": "call.issue", "body": {"kind": "strike", "text": {"en": "x"}}}, OP
            ),
            "missing_field",
            "parse",
        ),
        case(
            "call.issue of an unknown kind",
            sign_fields(
                base
                | {
                    "type": "call.issue",
                    "body": {"kind": "riot", "title": {"en": "x"}, "text": {"en": "x"}},
                },
                OP,
            ),
            "invalid_field",
            "parse",
        ),
        case(
            "activation whose proof repeats a tally",
            sign_fields(
                base
                | {
                    "type": "call.activate",
                    "body": {
                        "call": CALL_ID,
                        "tallies": [TALLY_IDS[0]] * 2,
                        "pledges": 10,
                        "orgs": 1,
                    },
                },
                OP,
            ),
            "invalid_field",
            "parse",
        ),
        case(
            "signature with a non-canonical S (S + L)",
            non_canonical_s(good),
            "bad_signature",
            "verify",
        ),
        case(
            "outer map with an unknown key",
            encode({"env": base, "sig": bytes(64), "zz": 1}),
            "malformed",
            "decode",
        ),
        case(
            "relay path entry of 31 bytes",
            encode({"env": base, "relay": {"path": [b"\x01" * 31]}, "sig": bytes(64)}),
            "invalid_field",
            "decode",
        ),
        case(
            "type longer than 128 bytes",
            sign_fields(base | {"type": "org.example." + "a" * 120}, OP),
            "too_long",
            "decode",
        ),
        case(
            "language tag not lower case",
            sign_fields(base | {"body": {"call": CALL_ID, "text": {"EN": "x"}}}, OP),
            "invalid_field",
            "parse",
        ),
    ]


def coalition_cases(state: KeyState, context: Case) -> list[Case]:
    """Coalition messages (§15): valid ones, and ones that parse but break §15.2."""
    salt = seed("coalition-salt")
    coalition = coalition_id(state.node_id, salt)
    aud = coalition_audience(coalition)
    name = {"ar": "نقابات الجنوب", "ckb": "یەکێتییەکانی باشوور", "en": "Southern unions"}
    members = (Member(state.node_id, 1), Member(seed("member"), 4))
    invite = CoalitionInvite(
        coalition, seed("invitee"), state.node_id, salt, name, members,
        (OpenInvite(seed("open-invite"), seed("invitee-2"), T0 - 3_600),), {"en": "Together."},
    )  # fmt: skip
    messages: list[tuple[str, Message]] = [
        ("coalition.found", CoalitionFound(coalition, salt, name, {"en": "Together."})),
        ("coalition.invite", invite),
        ("coalition.join", CoalitionJoin(coalition, seed("the-invite"))),
        ("coalition.leave", CoalitionLeave(coalition)),
    ]
    cases = [
        valid_envelope(f"envelope: {label}", m.TYPE, m.to_body(), state, context, i + 1,
                       audience=aud)
        for i, (label, m) in enumerate(messages)
    ]  # fmt: skip
    base = {"origin": state.node_id, "kpos": 0, "seq": 2, "prev": seed("prev-2"),
            "created": T0 - 60, "aud": aud, "v": 1}  # fmt: skip
    found = {
        "type": "coalition.found",
        "body": {"coalition": coalition, "salt": salt, "name": name},
    }
    other = coalition_id(seed("someone-else"), salt)
    body = invite.to_body()

    def bad(label: str, fields: dict[str, Any], error: str, stage: str) -> Case:
        return {
            "name": f"envelope: {label}", "valid": False, **context, "stage": stage,
            "wire_hex": sign_fields(base | fields, OP).hex(), "error": error,
        }  # fmt: skip

    broken = [
        bad("coalition.invite whose id is not of its founder and salt",
            {"type": "coalition.invite", "body": body | {"founder": seed("someone-else")}},
            "invalid_field", "parse"),
        bad("coalition.invite listing a member twice",
            {"type": "coalition.invite", "body": body | {"members": [m.to_body()
             for m in (members[0], members[0])]}}, "invalid_field", "parse"),
        bad("coalition.join without its invite",
            {"type": "coalition.join", "body": {"coalition": coalition}}, "missing_field", "parse"),
        bad("coalition.found addressed to another coalition",
            found | {"aud": coalition_audience(other)}, "invalid_field", "coalition"),
        bad("coalition.found of a coalition its origin did not found",
            {"type": "coalition.found", "aud": coalition_audience(other),
             "body": {"coalition": other, "salt": salt, "name": name}},
            "invalid_field", "coalition"),
        bad("coalition.invite whose inviter is not among its members",
            {"type": "coalition.invite", "body": body | {"members": [members[1].to_body()]}},
            "invalid_field", "coalition"),
        bad("coalition.invite whose inviter is a member only from a later envelope",
            {"type": "coalition.invite", "body": body | {"members": [
                Member(state.node_id, 2).to_body(), members[1].to_body()]}},
            "invalid_field", "coalition"),
    ]  # fmt: skip
    return [*cases, *broken]


# The order of the Ed25519 group (RFC 8032 §5.1): a signature's S must be below it.
ED25519_L = 2**252 + 27742317777372353535851937790883648493


def non_canonical_s(wire: bytes) -> bytes:
    """The same signature with S replaced by S + L: equal modulo L, but not canonical."""
    sig = wire[-64:]
    s = int.from_bytes(sig[32:], "little") + ED25519_L
    assert s < 2**256
    return wire[:-64] + sig[:32] + s.to_bytes(32, "little")


def sign_fields(fields: dict[str, Any], signer: SigningKey) -> bytes:
    """Sign arbitrary envelope fields without validation, to make invalid envelopes."""
    canonical = encode(fields)
    sig = signer.sign(b"TADAMUN-ENVELOPE-SIG-V1\x00" + hashlib.sha256(canonical).digest())
    return encode({"env": fields, "sig": sig})


def tamper(wire: bytes) -> bytes:
    """Change one letter of the body text: still canonical, no longer what was signed."""
    at = wire.index(b"hold the line")
    return wire[:at] + b"H" + wire[at + 1 :]


def unsorted_wire(fields: dict[str, Any]) -> bytes:
    env = dict(sorted(fields.items(), reverse=True))
    return raw({"env": env, "sig": bytes(64)})


# ---------------------------------------------------------------- coalition membership


def _node(label: str) -> bytes:
    return seed(f"member {label}")


def _ev(
    origin: str, seq: int, kind: str, subject: bytes | None = None, at: int = 0
) -> CoalitionEvent:
    return CoalitionEvent(seed(f"event {origin} {seq}"), _node(origin), seq, at or T0 + seq,
                          kind, subject)  # fmt: skip


def _membership_case(name: str, seed_: CoalitionSeed, events: list[CoalitionEvent]) -> Case:
    standings = membership(seed_, events)
    return {
        "name": f"membership: {name}",
        "valid": True,
        "seed": {
            "members": [[n.hex(), since] for n, since in sorted(seed_.members.items())],
            "invites": [[i.hex(), who.hex(), at] for i, (who, at) in sorted(seed_.invites.items())],
        },
        "events": [
            {"id": e.id.hex(), "origin": e.origin.hex(), "seq": e.seq, "created": e.created,
             "kind": e.kind} | ({"subject": e.subject.hex()} if e.subject else {})
            for e in events
        ],
        "standings": {n.hex(): st.state for n, st in sorted(standings.items())},
    }  # fmt: skip


def membership_cases() -> list[Case]:
    """Membership as one node computes it (§15.3): events in a shuffled order, since the
    result depends on the set only."""
    found = _ev("a", 1, "found")
    by_a = {x: _ev("a", i, "invite", _node(x)) for i, x in ((2, "b"), (3, "c"), (4, "d"))}
    join_b = _ev("b", 1, "join", by_a["b"].id)
    b_invites_e = _ev("b", 2, "invite", _node("e"))
    join_e = _ev("e", 1, "join", b_invites_e.id)
    early_b = _ev("b", 1, "invite", _node("e"))  # before b's own join (at 2)
    late_join_b = _ev("b", 2, "join", by_a["b"].id)
    join_e_early = _ev("e", 1, "join", early_b.id)
    leave_b = _ev("b", 3, "leave", at=T0 + 100)
    reuse = _ev("b", 4, "join", by_a["b"].id, at=T0 + 101)
    stale = _ev("a", 5, "invite", _node("b"), at=T0 + 50)
    stale_join = _ev("b", 5, "join", stale.id, at=T0 + 102)
    fresh = _ev("a", 6, "invite", _node("b"), at=T0 + 200)
    rejoin = _ev("b", 6, "join", fresh.id, at=T0 + 201)
    thief = _ev("x", 1, "join", by_a["c"].id)
    decline = _ev("d", 1, "leave", at=T0 + 60)
    founded = CoalitionSeed.founded(found)
    snapshot = CoalitionSeed({_node("a"): 1, _node("b"): 4}, {by_a["c"].id: (_node("c"), T0 + 3)})
    return [
        _membership_case("the founder alone", founded, [found]),
        _membership_case("invited, one joined", founded, [join_b, by_a["c"], found, by_a["b"]]),
        _membership_case("a join whose invite is not held waits", founded, [join_b, found]),
        _membership_case(
            "an invite counts once its inviter's join does",
            founded,
            [join_e, b_invites_e, found, join_b, by_a["b"]],
        ),
        _membership_case(
            "an invite made before its inviter joined does not count",
            founded,
            [join_e_early, early_b, late_join_b, by_a["b"], found],
        ),
        _membership_case(
            "after a leave, only a newer invite lets a node back",
            founded,
            [stale_join, reuse, found, by_a["b"], join_b, leave_b, stale],
        ),
        _membership_case(
            "re-invited and joined again",
            founded,
            [rejoin, fresh, stale_join, reuse, found, by_a["b"], join_b, leave_b, stale],
        ),
        _membership_case(
            "a declined invite; another node's join burns nothing",
            founded,
            [decline, thief, by_a["d"], by_a["c"], found],
        ),
        _membership_case(
            "a snapshot seed: old events skipped, its open invite used",
            snapshot,
            [_ev("b", 3, "leave"), _ev("c", 1, "join", by_a["c"].id)],
        ),
    ]


# ---------------------------------------------------------------- main

FILES: dict[str, Callable[[], list[Case]]] = {
    "encoding.json": encoding_cases,
    "keylog.json": keylog_cases,
    "envelopes.json": envelope_cases,
    "membership.json": membership_cases,
}
DESCRIPTIONS = {
    "encoding.json": "Canonical msgpack profile (SPEC.md §3, §13.2).",
    "keylog.json": "Key logs: inception, delegation, rotation, failures (SPEC.md §4, §13.3).",
    "envelopes.json": "Signed envelopes of every message type, failures (SPEC.md §5-§9, §13.4).",
    "membership.json": "Coalition membership from a seed and events (SPEC.md §15.3, §13.6).",
}


def render(name: str) -> str:
    document = {"description": DESCRIPTIONS[name], "cases": FILES[name]()}
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    args = parser.parse_args()
    stale = []
    for name in FILES:
        text, path = render(name), HERE / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print("stale vectors:", ", ".join(stale), file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ProtocolError as exc:  # a generator bug: say which rule tripped
        sys.exit(f"generator error: {exc}")
