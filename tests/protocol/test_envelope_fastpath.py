"""The envelope's fast validity check agrees with the precise one on every input (SPEC §5.2)."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from protocol import ProtocolError
from protocol.envelope import _looks_valid, _validate_precisely

VALID: dict[str, Any] = {
    "v": 1, "type": "call.update", "origin": b"\x01" * 32, "kpos": 0, "seq": 2,
    "prev": b"\x02" * 32, "created": 1_800_000_000, "expires": 1_800_003_600,
    "aud": "allies", "body": {"call": b"\x03" * 32, "text": {"en": "x"}},
}  # fmt: skip

# Values near every boundary the rules draw, of every wire type.
SAMPLES = st.one_of(
    st.sampled_from([None, True, False, 0, 1, 2, -1, 2**53 - 1, 2**53, "", "allies", "public",
                     "node:" + "a" * 64, "coalition:" + "F" * 64, "call.issue", "poll.open",
                     "org.example.poll", "Call.issue", "x" * 129, b"", b"\x00" * 31,
                     b"\x00" * 32, b"\x00" * 33, [], {}, [1], {"a": 1}]),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.binary(max_size=40),
    st.text(max_size=12),
)  # fmt: skip


def precise_ok(fields: dict[str, Any]) -> bool:
    try:
        _validate_precisely(fields)
    except ProtocolError:
        return False
    return True


def test_the_valid_fields_pass_both() -> None:
    assert _looks_valid(VALID)
    assert precise_ok(VALID)


@settings(max_examples=3_000, deadline=None)
@example(changes={"created": 2**53}, removed={"expires"})
@example(changes={"kpos": 2**53}, removed=set())
@example(changes={"seq": 1}, removed={"prev"})
@example(changes={"seq": 1}, removed=set())
@given(
    changes=st.dictionaries(st.sampled_from(sorted(VALID)), SAMPLES, max_size=4),
    removed=st.sets(st.sampled_from(sorted(VALID)), max_size=2),
)
def test_fast_and_precise_checks_agree(changes: dict[str, Any], removed: set[str]) -> None:
    fields = {k: v for k, v in (VALID | changes).items() if k not in removed}
    assert _looks_valid(fields) == precise_ok(fields)
