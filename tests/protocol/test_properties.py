"""Properties of the wire protocol, checked by Hypothesis (STYLE.md §19).

Round trips and determinism of the canonical encoding (SPEC.md §3), a decoder that is total
on hostile bytes and bounded in memory, tamper detection for signed envelopes (§6) and key
logs (§4), and signing that leaves its input alone. Every test is synchronous and
deterministic in what it asserts; none measures time.
"""

from __future__ import annotations

import copy
import hashlib
import tracemalloc
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    DEFAULT_LIMITS,
    DELEGATION,
    INCEPTION,
    ROTATION,
    DecodeError,
    Envelope,
    ErrorCode,
    KeyEvent,
    KeyLogError,
    KeyState,
    Limits,
    ProtocolError,
    SignedEnvelope,
    SignedKeyEvent,
    SigningKey,
    ValidationError,
    build_envelope,
    commitment,
    decode,
    encode,
    sign,
    sign_key_event,
    verify,
)
from protocol.canonical import MAX_INT, MIN_INT

T0 = 1_800_000_000  # the "now" of every test, as in tests/vectors/gen_vectors.py


def seed(label: str) -> bytes:
    return hashlib.sha256(b"tadamun-properties:" + label.encode()).digest()


def key(label: str) -> SigningKey:
    return SigningKey(seed(label))


def raw(value: Any) -> bytes:
    """Plain msgpack, without any canonical check: for hand-made hostile inputs."""
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


def flip(data: bytes, bit: int) -> bytes:
    """``data`` with bit ``bit`` (0 = least significant bit of the first byte) inverted."""
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def typed(value: Any) -> Any:
    """``value`` with every node tagged by its type, tuples as lists.

    Plain ``==`` would let ``True == 1`` and ``(1,) != [1]`` hide or invent differences.
    """
    if value is None or isinstance(value, bool | int | str | bytes):
        return (type(value).__name__, value)
    if isinstance(value, list | tuple):
        return ("list", [typed(v) for v in value])
    assert isinstance(value, dict), type(value)
    return ("dict", sorted((k, typed(v)) for k, v in value.items()))


# ---------------------------------------------------------------- strategies

KEYS = st.text(max_size=8)  # Hypothesis text has no lone surrogates: every key is valid UTF-8
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(MIN_INT, MAX_INT)
    | st.sampled_from([MIN_INT, -(2**31) - 1, -33, -32, 127, 128, 2**32, MAX_INT])
    | st.text(max_size=40)
    | st.binary(max_size=40)
)


def _profile_values(max_depth: int, max_size: int) -> st.SearchStrategy[Any]:
    """Values of the profile's types nested at most ``max_depth`` levels (a scalar is 1)."""
    level: st.SearchStrategy[Any] = SCALARS
    for _ in range(max_depth - 1):
        inner = level
        level = (
            SCALARS
            | st.lists(inner, max_size=max_size)
            | st.lists(inner, max_size=max_size).map(tuple)
            | st.dictionaries(KEYS, inner, max_size=max_size)
        )
    return level


VALUES = _profile_values(8, 4)
# Wider containers and strings, so that the 16-bit headers (str8/16, bin16, array16, map16)
# appear among the inputs that get mutated.
WIDE = (
    st.lists(SCALARS, min_size=14, max_size=20)
    | st.dictionaries(KEYS, SCALARS, min_size=14, max_size=20)
    | st.text(min_size=30, max_size=300)
    | st.binary(min_size=250, max_size=300)
)
BODIES = st.dictionaries(KEYS, _profile_values(4, 3), max_size=6)


def normalised(value: Any) -> Any:
    """What decoding gives back for ``value``: tuples become lists (SPEC.md §3.1)."""
    if isinstance(value, list | tuple):
        return [normalised(v) for v in value]
    if isinstance(value, dict):
        return {k: normalised(v) for k, v in value.items()}
    return value


def reordered(value: Any) -> Any:
    """The same value with every map built in reverse insertion order."""
    if isinstance(value, list | tuple):
        return [reordered(v) for v in value]
    if isinstance(value, dict):
        return {k: reordered(value[k]) for k in reversed(list(value))}
    return value


# ---------------------------------------------------------------- canonical encoding (§3)


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_round_trip(value: Any) -> None:
    wire = encode(value)
    back = decode(wire)
    assert typed(back) == typed(normalised(value))
    assert encode(back) == wire


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(KEYS, VALUES, min_size=2, max_size=10), st.data())
def test_map_encoding_ignores_insertion_order(value: dict[str, Any], data: st.DataObject) -> None:
    shuffled_keys = data.draw(st.permutations(list(value)))
    shuffled = {k: value[k] for k in shuffled_keys}
    assert list(shuffled) == shuffled_keys
    assert encode(shuffled) == encode(value)
    assert encode(reordered(value)) == encode(value)  # nested maps too


OUT_OF_RANGE = st.integers(min_value=MAX_INT + 1) | st.integers(max_value=MIN_INT - 1)
# The part of it plain msgpack can still pack (int64 and uint64).
PACKABLE_OUT_OF_RANGE = st.integers(MAX_INT + 1, 2**64 - 1) | st.integers(-(2**63), MIN_INT - 1)


@settings(max_examples=100, deadline=None)
@given(OUT_OF_RANGE)
def test_encode_refuses_integers_out_of_range(n: int) -> None:
    for value in (n, [n], {"n": n}, {"a": [0, {"b": n}]}):
        with pytest.raises(ValidationError) as caught:
            encode(value)
        assert caught.value.code == ErrorCode.INVALID_FIELD


@settings(max_examples=100, deadline=None)
@given(PACKABLE_OUT_OF_RANGE)
def test_decode_refuses_integers_out_of_range(n: int) -> None:
    for value in (n, [n], {"n": n}, {"a": [0, {"b": n}]}):
        with pytest.raises(DecodeError) as caught:
            decode(raw(value))
        assert caught.value.code == ErrorCode.INT_OUT_OF_RANGE


@pytest.mark.parametrize(
    "value", ["\ud800", ["ok", "a\udfff"], {"\udc80": 1}], ids=["str", "in an array", "map key"]
)
def test_encode_refuses_lone_surrogates_with_validation_error(value: Any) -> None:
    # A str with a lone surrogate has no UTF-8 form, so the profile cannot hold it (§3.3);
    # such strings reach the node from JSON ("\ud800" is valid JSON).
    with pytest.raises(ValidationError):
        encode(value)


# ---------------------------------------------------------------- a total decoder


def check_decoder(data: bytes) -> None:
    """``decode`` returns a value that re-encodes to ``data``, or raises DecodeError.

    Any other exception escapes and fails the test.
    """
    try:
        value = decode(data)
    except DecodeError:
        return
    assert encode(value) == data


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=4096))
def test_decoder_on_random_bytes(data: bytes) -> None:
    check_decoder(data)


def mutate(wire: bytes, data: st.DataObject) -> bytes:
    """One random mutation of ``wire``: flip a bit, delete, insert, truncate or duplicate."""
    kind = data.draw(st.sampled_from(["flip", "delete", "insert", "truncate", "duplicate"]))
    size = len(wire)
    if kind == "flip":
        return flip(wire, data.draw(st.integers(0, size * 8 - 1)))
    if kind == "delete":
        at = data.draw(st.integers(0, size - 1))
        return wire[:at] + wire[at + 1 :]
    if kind == "insert":
        at = data.draw(st.integers(0, size))
        return wire[:at] + bytes([data.draw(st.integers(0, 255))]) + wire[at:]
    if kind == "truncate":
        return wire[: data.draw(st.integers(0, size - 1))]
    start = data.draw(st.integers(0, size - 1))
    end = data.draw(st.integers(start + 1, size))
    at = data.draw(st.integers(0, size))
    return wire[:at] + wire[start:end] + wire[at:]


@settings(max_examples=600, deadline=None)
@given(VALUES | WIDE, st.data())
def test_decoder_on_mutated_canonical_bytes(value: Any, data: st.DataObject) -> None:
    wire = encode(value)
    mutated = mutate(wire, data)
    for _ in range(data.draw(st.integers(0, 2))):  # sometimes a few mutations on top
        if mutated:
            mutated = mutate(mutated, data)
    check_decoder(mutated)


TEN_MB = 10 * 1024 * 1024
MEMORY_BOUND = 1_000_000  # peaks measured with tracemalloc are below 70 KB (SPEC.md §3.5)
# A str or bin header claiming more bytes than are present is refused as truncated before its
# length is compared with the limit; either code is a refusal before any allocation.
LONG_OR_SHORT = frozenset({ErrorCode.TOO_LONG, ErrorCode.TRUNCATED})
HOSTILE = [
    ("array32 claiming 2^32-1 items", bytes.fromhex("ddffffffff"), {ErrorCode.TOO_LONG}),
    ("map32 claiming 2^32-1 entries", bytes.fromhex("dfffffffff"), {ErrorCode.TOO_LONG}),
    ("str32 claiming 2^32-1 bytes", bytes.fromhex("dbffffffff"), LONG_OR_SHORT),
    ("bin32 claiming 2^32-1 bytes", bytes.fromhex("c6ffffffff"), LONG_OR_SHORT),
    (
        "str32 of 2^32-1 bytes, 60 KB present",
        b"\xdb\xff\xff\xff\xff" + bytes(60_000),
        LONG_OR_SHORT,
    ),
    (
        "array of 1024 array32 headers",
        b"\xdc\x04\x00" + b"\xdd\xff\xff\xff\xff" * 1024,
        {ErrorCode.TOO_LONG},
    ),
    ("100k nested arrays", b"\x91" * 100_000 + b"\xc0", {ErrorCode.TOO_LARGE}),
    (
        "10 MB bin32 blob",
        b"\xc6" + TEN_MB.to_bytes(4, "big") + bytes(TEN_MB),
        {ErrorCode.TOO_LARGE},
    ),
]


def peak_while_decoding(data: bytes, limits: Limits = DEFAULT_LIMITS) -> tuple[int, DecodeError]:
    """Bytes allocated at the peak of a failing ``decode(data)``, and the error it raised."""
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError) as caught:
            decode(data, limits)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, caught.value


@pytest.mark.parametrize(
    ("data", "codes"), [(d, c) for _, d, c in HOSTILE], ids=[n for n, *_ in HOSTILE]
)
def test_hostile_input_fails_in_bounded_memory(data: bytes, codes: set[ErrorCode]) -> None:
    peak, error = peak_while_decoding(data)
    assert peak < MEMORY_BOUND, f"{peak} bytes allocated"
    assert error.code in codes


def test_deep_nesting_within_the_size_limit_fails_in_bounded_memory() -> None:
    # With the size limit raised, 100k nested arrays reach the parser: its fixed stack refuses
    # them before the value is built (canonical.py's header).
    peak, error = peak_while_decoding(b"\x91" * 100_000 + b"\xc0", Limits(max_size=2**20))
    assert peak < MEMORY_BOUND, f"{peak} bytes allocated"
    assert error.code == ErrorCode.TOO_DEEP


# ---------------------------------------------------------------- key log and envelopes

OFFICERS = [key(f"officer-{i}") for i in range(3)]
NEXT_OFFICERS = [key(f"next-officer-{i}") for i in range(3)]
THIRD_COMMITMENTS = tuple(commitment(key(f"third-officer-{i}").public) for i in range(3))
OP = key("operational-0")
OP_1 = key("operational-1")


def build_log() -> list[SignedKeyEvent]:
    """Inception (2 of 3), a delegation to a new operational key, a rotation of the officers."""
    inception = KeyEvent.inception(
        officers=[k.public for k in OFFICERS],
        threshold=2,
        next_officers=[k.public for k in NEXT_OFFICERS],
        op=OP.public,
        created=T0 - 86_400,
    )
    log = [sign_key_event(inception, OFFICERS[:2])]
    state = KeyState.from_log(log)
    delegation = KeyEvent(
        type=DELEGATION,
        pos=1,
        created=T0 - 3_600,
        op=OP_1.public,
        node=state.node_id,
        prev=state.head,
        seal=2,
    )
    log.append(sign_key_event(delegation, OFFICERS[1:], state))
    state = KeyState.from_log(log)
    rotation = KeyEvent(
        type=ROTATION,
        pos=2,
        created=T0 - 1_800,
        op=OP_1.public,
        node=state.node_id,
        prev=state.head,
        seal=3,
        officers=tuple(k.public for k in NEXT_OFFICERS),
        threshold=2,
        next=THIRD_COMMITMENTS,
    )
    log.append(sign_key_event(rotation, NEXT_OFFICERS, state))  # 3 signatures, 2 needed
    return log


LOG = build_log()
LOG_WIRES = [e.to_bytes() for e in LOG]
STATE = KeyState.from_log(LOG)


def load_state(wires: list[bytes]) -> KeyState:
    return KeyState.from_log([SignedKeyEvent.from_bytes(w) for w in wires])


def test_the_key_log_fixture_is_valid() -> None:
    assert load_state(LOG_WIRES) == STATE
    assert STATE.position == 2
    assert STATE.op == OP_1.public


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_any_bit_flip_in_a_signed_key_event_breaks_the_log(data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(LOG_WIRES) - 1))
    bit = data.draw(st.integers(0, len(LOG_WIRES[index]) * 8 - 1))
    wires = list(LOG_WIRES)
    wires[index] = flip(wires[index], bit)
    # Every byte of a signed key event is either framing that the strict decoder or the exact
    # field sets check, part of the event that its signatures cover (via its digest), a
    # signer index, or a signature; changing any of them leaves some check unsatisfied.
    with pytest.raises((KeyLogError, DecodeError)):
        load_state(wires)


@pytest.mark.parametrize(
    "index", range(len(LOG_WIRES)), ids=["inception", "delegation", "rotation"]
)
def test_a_bit_flip_in_every_byte_of_a_signed_key_event_breaks_the_log(index: int) -> None:
    # Deterministic companion of the property above: every byte of every event, with the
    # flipped bit turning with the offset. (All 11k single-bit flips take seconds.)
    for offset in range(len(LOG_WIRES[index])):
        wires = list(LOG_WIRES)
        wires[index] = flip(wires[index], offset * 8 + offset % 8)
        with pytest.raises((KeyLogError, DecodeError)):
            load_state(wires)


@pytest.mark.parametrize("kind", [[], {}, [INCEPTION]], ids=["array", "map", "array of str"])
def test_key_event_with_a_non_string_type_is_refused(kind: Any) -> None:
    # Canonical bytes a peer can send; the event type is looked up in a dict, so an
    # unhashable type must be refused as a bad event, not crash the lookup.
    fields = decode(LOG[0].event.canonical) | {"type": kind}
    wire = encode({"event": fields, "sigs": [[0, bytes(64)]]})
    with pytest.raises(KeyLogError) as caught:
        SignedKeyEvent.from_bytes(wire)
    assert caught.value.code == ErrorCode.KEYLOG_BAD_EVENT


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_key_events_with_any_field_replaced_fail_only_with_protocol_errors(
    data: st.DataObject,
) -> None:
    # Canonical bytes a peer could send: a valid signed event with one field's value replaced.
    # Parsing refuses them with a protocol error, or the changed event fails its signatures.
    index = data.draw(st.integers(0, len(LOG) - 1))
    signed = LOG[index]
    fields = decode(signed.event.canonical)
    name = data.draw(st.sampled_from(sorted(fields)))
    fields[name] = data.draw(_profile_values(3, 3))
    wire = encode({"event": fields, "sigs": [[i, s] for i, s in signed.sigs]})
    try:
        parsed = SignedKeyEvent.from_bytes(wire)
    except ProtocolError:
        return
    wires = [*LOG_WIRES[:index], wire, *LOG_WIRES[index + 1 :]]
    if parsed.event.digest == signed.event.digest:  # the same value drawn again
        assert load_state(wires) == STATE
    else:
        with pytest.raises(KeyLogError):
            load_state(wires)


CALL_ID = seed("call")
NOW = T0


def signed_envelope(seq: int, relays: int, **extra: Any) -> SignedEnvelope:
    """A ``call.update`` envelope signed with the current operational key."""
    envelope = build_envelope(
        type="call.update",
        origin=STATE.node_id,
        kpos=STATE.position,
        seq=seq,
        prev=None if seq == 1 else seed(f"prev-{seq}"),
        created=T0 - 60,
        body={"call": CALL_ID, "text": {"en": "hold the line", "ar": "اصمدوا"}},
        audience="allies",
        **extra,
    )
    signed = sign(envelope, OP_1)
    for hop in range(relays):
        signed = signed.relayed_by(seed(f"relay-{hop}"))
    return signed


ENVELOPES = [
    signed_envelope(1, 0),
    signed_envelope(2, 2, expires=T0 + 3_600, crit=("body.text", "expires")),
]


def relay_id_offsets(signed: SignedEnvelope) -> set[int]:
    """Byte offsets, in ``signed.to_bytes()``, of the 32-byte node ids of the relay path."""
    wire = signed.to_bytes()
    if not signed.path:
        return set()
    relay = encode({"path": list(signed.path)})
    start = len(wire) - len(relay) - len(b"\xa3sig\xc4\x40") - 64
    assert wire[start - 6 : start] == b"\xa5relay"
    position = start + len(b"\x81\xa4path") + 1  # relay map, its one key, the array header
    offsets: set[int] = set()
    for node_id in signed.path:
        assert wire[position : position + 2 + 32] == b"\xc4\x20" + node_id
        offsets.update(range(position + 2, position + 2 + 32))
        position += 2 + 32
    assert position == start + len(relay)
    return offsets


RELAY_OFFSETS = [relay_id_offsets(s) for s in ENVELOPES]


def check_flip(which: int, bit: int) -> None:
    """Flip one bit of a valid signed envelope's wire bytes; see the test below for why."""
    signed = ENVELOPES[which]
    tampered = flip(signed.to_bytes(), bit)
    if bit // 8 in RELAY_OFFSETS[which]:
        got = SignedEnvelope.from_bytes(tampered)
        verify(got, STATE, now=NOW)
        assert (got.id, got.sig, got.envelope.canonical) == (
            signed.id,
            signed.sig,
            signed.envelope.canonical,
        )
        assert got.path != signed.path
        assert got.to_bytes() == tampered
        return
    with pytest.raises(ProtocolError):
        verify(SignedEnvelope.from_bytes(tampered), STATE, now=NOW)


def test_the_envelope_fixtures_verify() -> None:
    for signed in ENVELOPES:
        got = SignedEnvelope.from_bytes(signed.to_bytes())
        verify(got, STATE, now=NOW)
        assert got.to_bytes() == signed.to_bytes()
    assert len(RELAY_OFFSETS[1]) == 64  # two relay hops, 32 bytes each


# Why only a flip inside a relayed node id can pass. The wire is (SPEC.md §5.1)
#   fixmap header, "env", <env bytes>, ["relay", {"path": [bin 32, ...]}], "sig", bin 64.
# * A flip in <env bytes> changes the id, SHA-256 of exactly those bytes, and the signature
#   is over the id: it no longer verifies (or the strict decoder or §5.2 refuses the env).
# * A flip in the signature (R || S): verification needs S < L and [S]B = R + [H(R||A||M)]A.
#   For a given R exactly one S < L satisfies it, so a changed S fails; a changed R changes
#   the hash and would need a new S, i.e. a forgery.
# * A flip in framing (map/array/bin headers, the key names env, relay, path, sig) breaks
#   the canonical form (truncated, trailing, non-shortest, unsorted) or the exact key sets
#   of the outer map and of relay, which from_bytes checks.
# * The relay path is outside the signature by design (SPEC.md §5.4): a flip in a node id
#   there gives another well-formed path and must leave the id and signature valid.
@settings(max_examples=400, deadline=None)
@given(st.data())
def test_any_bit_flip_of_a_signed_envelope_is_detected(data: st.DataObject) -> None:
    which = data.draw(st.sampled_from(range(len(ENVELOPES))))
    bit = data.draw(st.integers(0, len(ENVELOPES[which].to_bytes()) * 8 - 1))
    check_flip(which, bit)


@pytest.mark.parametrize("which", range(len(ENVELOPES)), ids=["direct", "relayed"])
def test_every_bit_flip_of_a_signed_envelope_is_detected(which: int) -> None:
    # The exhaustive version of the property above: every bit of the wire, once.
    for bit in range(len(ENVELOPES[which].to_bytes()) * 8):
        check_flip(which, bit)


# ---------------------------------------------------------------- signing leaves input alone


def scramble(value: Any) -> None:
    """Empty every list and map inside ``value``, in place."""
    if isinstance(value, list):
        for item in value:
            scramble(item)
        value.clear()
    elif isinstance(value, dict):
        for item in value.values():
            scramble(item)
        value.clear()


def snapshot(envelope: Envelope) -> tuple[Any, bytes, bytes]:
    return typed(dict(envelope.fields)), envelope.canonical, envelope.id


@settings(max_examples=150, deadline=None)
@given(BODIES)
def test_signing_never_mutates_its_input(body: dict[str, Any]) -> None:
    before = copy.deepcopy(body)
    envelope = build_envelope(
        type="org.example.note",
        origin=STATE.node_id,
        kpos=STATE.position,
        seq=1,
        prev=None,
        created=T0,
        body=body,
        audience="public",
    )
    assert typed(body) == typed(before)  # build_envelope left the body dict alone
    taken = snapshot(envelope)
    signed = sign(envelope, OP_1)
    assert snapshot(envelope) == taken
    assert signed.envelope is envelope
    assert sign(envelope, OP_1).sig == signed.sig  # and signing is deterministic
    scramble(body)  # the envelope shares nothing with the caller's body
    assert snapshot(envelope) == taken
    assert typed(normalised(before)) == typed(dict(envelope.body))
    verify(SignedEnvelope.from_bytes(signed.to_bytes()), STATE, now=T0)
