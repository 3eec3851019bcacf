"""The bodies of ``POST /federation/v1/inbox`` and ``GET /federation/v1/log`` (SPEC §14.2,
§14.3), both ways: the receiver decodes requests and encodes answers, delivery and catch-up
encode requests and decode answers, with the same rules.

Every body is one canonical msgpack value (SPEC §3) read with limits fitted to it, so a
hostile body is refused by size and shape before anything is allocated for it. The maps are
strict: a missing or unknown key is ``malformed``, a value of the wrong type or size
``invalid_field``, too many items ``too_long`` (the codes of SPEC §5.1 and §12).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgpack

from protocol import DecodeError, ErrorCode, Limits, ValidationError, decode, encode
from protocol.keys import DIGEST_SIZE

__all__ = [
    "MAX_ITEMS",
    "MAX_ITEM_BYTES",
    "MAX_KEYS",
    "MAX_LOG_LIMIT",
    "BatchResult",
    "InboxRequest",
    "LogEntry",
    "LogPage",
    "decode_batch_result",
    "decode_inbox_request",
    "decode_log_page",
    "encode_batch_result",
    "encode_inbox_request",
    "encode_log_page",
]

MAX_ITEMS: Final = 256  # envelopes per inbox request
MAX_KEYS: Final = 64  # key events per inbox request or log page
MAX_LOG_LIMIT: Final = 256  # entries per log page
MAX_ITEM_BYTES: Final = 65_536  # one envelope or key event: the canonical size limit (§3.5)
MAX_STATUS: Final = 64  # bytes of one status string


@dataclass(frozen=True, slots=True)
class InboxRequest:
    items: tuple[bytes, ...]
    keys: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One status per item and per key event, in the order they came: ``ok``, ``duplicate``,
    ``held`` or an error code (SPEC §12)."""

    results: tuple[str, ...]
    keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One entry of a log page: ``env`` None means withheld (its id keeps the chain linked)."""

    seq: int
    id: bytes
    env: bytes | None


@dataclass(frozen=True, slots=True)
class LogPage:
    entries: tuple[LogEntry, ...]
    keys: tuple[bytes, ...]
    more: bool


def _limits(max_size: int, max_map: int) -> Limits:
    return Limits(
        max_size=max_size, max_depth=4, max_str=MAX_STATUS, max_bin=MAX_ITEM_BYTES,
        max_array=max(MAX_ITEMS, MAX_LOG_LIMIT), max_map=max_map,
    )  # fmt: skip


def _malformed(detail: str) -> DecodeError:
    return DecodeError(ErrorCode.MALFORMED, detail)


def _invalid(detail: str) -> ValidationError:
    return ValidationError(ErrorCode.INVALID_FIELD, detail)


def _map(data: bytes, limits: Limits, required: set[str], optional: set[str]) -> dict[str, Any]:
    value = decode(data, limits)
    if type(value) is not dict or not required <= value.keys() <= required | optional:
        keys = sorted(value) if type(value) is dict else type(value).__name__
        raise _malformed(f"expected keys {sorted(required)} (+ {sorted(optional)}), got {keys}")
    return value


def _bins(name: str, value: object, low: int, high: int) -> tuple[bytes, ...]:
    if type(value) is not list:
        raise _invalid(f"{name} must be an array")
    if len(value) > high:
        raise ValidationError(ErrorCode.TOO_LONG, f"{name}: {len(value)} > {high}")
    if len(value) < low or any(type(v) is not bytes for v in value):
        raise _invalid(f"{name} must be {low} to {high} bins")
    return tuple(value)


def _strings(name: str, value: object) -> tuple[str, ...]:
    if type(value) is not list or any(type(v) is not str for v in value):
        raise _invalid(f"{name} must be an array of str")
    return tuple(value)


# --- POST /federation/v1/inbox ---------------------------------------------------------------


def encode_inbox_request(items: Sequence[bytes], keys: Sequence[bytes] = ()) -> bytes:
    """The request body; keys are left out when there are none."""
    body: dict[str, Any] = {"items": list(items)}
    if keys:
        body["keys"] = list(keys)
    return encode(body, _limits(1 << 30, 2))


def decode_inbox_request(data: bytes, max_size: int) -> InboxRequest:
    """Raises :class:`~protocol.ProtocolError` with the code to answer (HTTP 400)."""
    value = _map(data, _limits(max_size, 2), {"items"}, {"keys"})
    items = _bins("items", value["items"], 1, MAX_ITEMS)
    keys = _bins("keys", value.get("keys", []), 0, MAX_KEYS)
    return InboxRequest(items, keys)


def encode_batch_result(result: BatchResult) -> bytes:
    """The answer, canonical (§3): its maps are built with their keys in order, and msgpack
    writes every header in its shortest form, so it is packed directly, without the general
    encoder's checks of each value (it is on the path of every batch)."""
    statuses = (*result.keys, *result.results)
    if any(type(s) is not str or len(s.encode()) > MAX_STATUS for s in statuses):
        raise _invalid(f"statuses are str of at most {MAX_STATUS} bytes")
    body = {"keys": list(result.keys), "results": [{"s": s} for s in result.results]}
    return bytes(msgpack.packb(body, use_bin_type=True))


def decode_batch_result(data: bytes, max_size: int) -> BatchResult:
    value = _map(data, _limits(max_size, 2), {"keys", "results"}, set())
    results = value["results"]
    if type(results) is not list or len(results) > MAX_ITEMS:
        raise _invalid(f"results must be an array of at most {MAX_ITEMS}")
    if any(type(r) is not dict or r.keys() != {"s"} or type(r["s"]) is not str for r in results):
        raise _invalid('each result must be {"s": str}')
    return BatchResult(tuple(r["s"] for r in results), _strings("keys", value["keys"]))


# --- GET /federation/v1/log --------------------------------------------------------------------


def encode_log_page(page: LogPage) -> bytes:
    entries = []
    for entry in page.entries:
        item: dict[str, Any] = {"id": entry.id, "seq": entry.seq}
        if entry.env is not None:
            item["env"] = entry.env
        entries.append(item)
    body = {"entries": entries, "keys": list(page.keys), "more": page.more}
    return encode(body, _limits(1 << 30, 3))


def decode_log_page(data: bytes, max_size: int) -> LogPage:
    """Raises :class:`~protocol.ProtocolError` if the page breaks its shape."""
    value = _map(data, _limits(max_size, 3), {"entries", "keys", "more"}, set())
    raw = value["entries"]
    if type(raw) is not list or len(raw) > MAX_LOG_LIMIT:
        raise _invalid(f"entries must be an array of at most {MAX_LOG_LIMIT}")
    if type(value["more"]) is not bool:
        raise _invalid("more must be a bool")
    entries = tuple(_log_entry(item) for item in raw)
    return LogPage(entries, _bins("keys", value["keys"], 0, MAX_KEYS), value["more"])


def _log_entry(item: object) -> LogEntry:
    if type(item) is not dict or not {"id", "seq"} <= item.keys() <= {"env", "id", "seq"}:
        raise _malformed("a log entry is {env?, id, seq}")
    seq, id_, env = item["seq"], item["id"], item.get("env")
    if type(seq) is not int or seq < 1:
        raise _invalid("seq must be an int >= 1")
    if type(id_) is not bytes or len(id_) != DIGEST_SIZE:
        raise _invalid(f"id must be bin {DIGEST_SIZE}")
    if env is not None and type(env) is not bytes:
        raise _invalid("env must be bin")
    return LogEntry(seq, id_, env)
