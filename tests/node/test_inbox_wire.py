"""The inbox and log bodies (node.federation.wire), both ways: round trips, the canonical
answer, and every way a body can be the wrong shape. Pure: no database."""

from __future__ import annotations

from typing import Any

import pytest

from node.federation.wire import (
    MAX_ITEMS,
    BatchResult,
    InboxRequest,
    LogEntry,
    LogPage,
    decode_batch_result,
    decode_inbox_request,
    decode_log_page,
    encode_batch_result,
    encode_inbox_request,
    encode_log_page,
)
from protocol import Limits, ProtocolError, ValidationError, encode

BIG = Limits(max_size=1 << 22, max_bin=1 << 16, max_array=1 << 12, max_str=1 << 10)


def raw(value: Any) -> bytes:
    return encode(value, BIG)


def test_round_trips() -> None:
    request = InboxRequest((b"a" * 70, b"b"), (b"k",))
    assert decode_inbox_request(encode_inbox_request(request.items, request.keys), 1 << 20) == (
        request
    )
    assert decode_inbox_request(encode_inbox_request([b"x"]), 100) == InboxRequest((b"x",))
    result = BatchResult(("ok", "duplicate", "held", "bad_signature"), ("ok",))
    assert decode_batch_result(encode_batch_result(result), 1 << 20) == result
    page = LogPage((LogEntry(1, b"\x01" * 32, b"env"), LogEntry(2, b"\x02" * 32, None)),
                   (b"key",), more=True)  # fmt: skip
    assert decode_log_page(encode_log_page(page), 1 << 20) == page


@pytest.mark.parametrize(
    "result",
    [
        BatchResult(("ok",) * MAX_ITEMS, ("duplicate",) * 64),
        BatchResult(("x" * 31, "y" * 32, "z" * 64), ()),
        BatchResult((), ()),
    ],
)
def test_the_answer_is_canonical(result: BatchResult) -> None:
    expected = encode({"keys": list(result.keys), "results": [{"s": s} for s in result.results]})
    assert encode_batch_result(result) == expected


def test_an_answer_with_a_bad_status_is_not_encoded() -> None:
    with pytest.raises(ValidationError):
        encode_batch_result(BatchResult(("x" * 65,)))


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (raw({"items": [b"x"] * (MAX_ITEMS + 1)}), "too_long"),
        (raw({"items": [b"x"], "keys": [b"k"] * 65}), "too_long"),
        (raw({"items": []}), "invalid_field"),
        (raw({"items": ["text"]}), "invalid_field"),
        (raw({"items": b"x"}), "invalid_field"),
        (raw({"items": [b"x"], "extra": 1}), "malformed"),
        (raw({"keys": []}), "malformed"),
        (raw([b"x"]), "malformed"),
        (b"\x81\xa5items\x91\xc4\x01x\x00", "trailing_bytes"),
        (b"\xde\x00\x01\xa5items\x91\xc4\x01x", "noncanonical"),
        (raw({"items": [b"x" * 70_000]}), "too_long"),
    ],
)
def test_bad_inbox_requests(body: bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as refused:
        decode_inbox_request(body, 1 << 20)
    assert refused.value.code == code


def test_an_inbox_request_over_the_size_limit() -> None:
    with pytest.raises(ProtocolError) as refused:
        decode_inbox_request(encode_inbox_request([b"x" * 200]), 100)
    assert refused.value.code == "too_large"


ID = b"\x01" * 32


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ({"entries": [], "keys": [], "more": 1}, "invalid_field"),
        ({"entries": [{"id": ID, "seq": 0}], "keys": [], "more": False}, "invalid_field"),
        ({"entries": [{"id": b"short", "seq": 1}], "keys": [], "more": False}, "invalid_field"),
        ({"entries": [{"env": "s", "id": ID, "seq": 1}], "keys": [], "more": False},
         "invalid_field"),
        ({"entries": [{"id": ID, "seq": 1, "x": 1}], "keys": [], "more": False}, "malformed"),
        ({"entries": [{"id": ID}], "keys": [], "more": False}, "malformed"),
        ({"entries": [], "keys": []}, "malformed"),
        ({"entries": [{"id": ID, "seq": 1}] * 257, "keys": [], "more": False}, "too_long"),
    ],
)  # fmt: skip
def test_bad_log_pages(value: dict[str, Any], code: str) -> None:
    with pytest.raises(ProtocolError) as refused:
        decode_log_page(raw(value), 1 << 22)
    assert refused.value.code == code


@pytest.mark.parametrize(
    "value",
    [
        {"keys": [], "results": [{"s": 1}]},
        {"keys": [], "results": [{"t": "ok"}]},
        {"keys": [1], "results": []},
        {"keys": [], "results": "ok"},
    ],
)
def test_bad_answers(value: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        decode_batch_result(raw(value), 1 << 20)
