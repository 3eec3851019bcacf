"""The canonical msgpack profile (SPEC.md §3): one value, one byte string.

Rules, each enforced where the comment names its SPEC.md section:

* Types: nil, bool, integer, str, bin, array, map. No float, no ext (§3.1).
* Integers lie within ±(2^53 − 1) and use the shortest form: non-negative values use
  positive fixint / uint8 / uint16 / uint32 / uint64, negative values use negative fixint /
  int8 / int16 / int32 / int64 (§3.2).
* Strings are valid UTF-8 and use the shortest header (fixstr, str8, str16, str32) (§3.3).
* Map keys are strings, sorted by their UTF-8 bytes, without duplicates (§3.4).
* Total size, depth, string, bin, array and map lengths are bounded (§3.5).
* A decoder accepts bytes only if re-encoding the decoded value gives the same bytes (§3.6).

Decoding runs in three steps. The total size is checked first. msgpack's C unpacker then
checks every string, bin, array and map length against the limits *before* it allocates, and
refuses ext types; its parse stack is a fixed array, so nesting costs no allocation. Then one
walk checks depth, value types, integer ranges and key order, and the value is re-encoded and
compared with the input, which rejects every non-shortest form and duplicate key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgpack

from .errors import DecodeError, ErrorCode, ValidationError

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_INT",
    "MIN_INT",
    "Limits",
    "Value",
    "decode",
    "encode",
]

MAX_INT: Final = 2**53 - 1
MIN_INT: Final = -(2**53 - 1)
# One packer for every encode: msgpack packs holding the GIL and resets its buffer after each
# value, and building a packer per call costs a third of packing 1 KiB.
_PACKER: Final = msgpack.Packer(use_bin_type=True)

# The values the profile can carry (§3.1); `dict` keys are always `str`.
Value = None | bool | int | str | bytes | list[Any] | dict[str, Any]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds checked while decoding (§3.5). Lengths count bytes (str, bin) or items."""

    max_size: int = 65_536
    max_depth: int = 16
    max_str: int = 32_768
    max_bin: int = 4_096
    max_array: int = 1_024
    max_map: int = 256
    # msgpack's options, built once; a plain dict because ** over a mapping proxy is slow.
    _unpack_options: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # msgpack checks every length against these before it allocates (§3.5).
        options = {
            "raw": False,
            "strict_map_key": True,
            "use_list": True,
            "max_str_len": self.max_str,
            "max_bin_len": self.max_bin,
            "max_array_len": self.max_array,
            "max_map_len": self.max_map,
            "max_ext_len": 0,  # §3.1: any ext type fails its length check at once
        }
        object.__setattr__(self, "_unpack_options", options)


DEFAULT_LIMITS: Final = Limits()


def encode(value: object, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Encode ``value`` canonically; :class:`ValidationError` if the profile cannot hold it."""
    data: bytes = _PACKER.pack(_normalise(value, 1, limits))
    if len(data) > limits.max_size:
        raise ValidationError(ErrorCode.TOO_LONG, f"{len(data)} bytes > {limits.max_size}")
    return data


def _normalise(value: object, depth: int, limits: Limits) -> Value:
    """Copy ``value`` into plain profile types with sorted maps, checking every rule."""
    if depth > limits.max_depth:
        raise ValidationError(ErrorCode.INVALID_FIELD, "nesting deeper than the depth limit")
    if isinstance(value, str):
        _utf8(value)
        return value
    if value is None or isinstance(value, bool | bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, int):
        if not MIN_INT <= value <= MAX_INT:
            raise ValidationError(ErrorCode.INVALID_FIELD, f"integer {value} out of range")
        return int(value)
    if isinstance(value, Mapping):
        items = sorted(value.items(), key=_key_bytes)
        return {k: _normalise(v, depth + 1, limits) for k, v in items}
    if isinstance(value, Sequence):
        return [_normalise(v, depth + 1, limits) for v in value]
    raise ValidationError(ErrorCode.INVALID_FIELD, f"{type(value).__name__} is not encodable")


def _key_bytes(item: tuple[object, object]) -> bytes:
    key = item[0]
    if not isinstance(key, str):
        raise ValidationError(ErrorCode.INVALID_FIELD, "map keys must be strings")
    return _utf8(key)


def _utf8(text: str) -> bytes:
    """UTF-8 bytes of ``text``; a lone surrogate has none (§3.3)."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        raise ValidationError(ErrorCode.INVALID_FIELD, "string is not valid Unicode") from None


def decode(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Decode canonical bytes into a value, or raise :class:`DecodeError` with a precise code."""
    if len(data) > limits.max_size:  # §3.5: before anything else is read
        raise DecodeError(ErrorCode.TOO_LARGE, f"{len(data)} bytes > {limits.max_size}")
    value = _unpack(data, limits)
    _check(value, 1, limits.max_depth)
    if _PACKER.pack(value) != data:  # §3.6
        raise DecodeError(_diagnose(data, limits), "re-encoding differs from the input")
    return value


def _unpack(data: bytes, limits: Limits, **extra: Any) -> Any:
    try:
        options = limits._unpack_options
        return msgpack.unpackb(data, **({**options, **extra} if extra else options))
    except UnicodeDecodeError as exc:  # §3.3
        raise DecodeError(ErrorCode.INVALID_UTF8, str(exc)) from None
    except msgpack.ExtraData:
        raise DecodeError(ErrorCode.TRAILING_BYTES, "bytes after the value") from None
    except msgpack.StackError:
        raise DecodeError(ErrorCode.TOO_DEEP, "nesting exceeds the parser stack") from None
    except DecodeError:
        raise
    except ValueError as exc:  # msgpack reports the rest as ValueError; sort them by cause
        raise DecodeError(_classify(str(exc)), str(exc)) from None


def _classify(message: str) -> ErrorCode:
    if "max_ext_len" in message:
        return ErrorCode.EXT_NOT_ALLOWED
    if "exceeds max_" in message:
        return ErrorCode.TOO_LONG
    if "incomplete input" in message:
        return ErrorCode.TRUNCATED
    if "map key" in message:
        return ErrorCode.NON_STRING_KEY
    return ErrorCode.MALFORMED


# Key tuples already found in canonical order. Envelopes repeat a few key sets (envelope,
# body, language maps), so ingest sorts each set once. A pure memo, bounded: once full,
# nothing more is added and keys are sorted as usual, so a hostile peer can make decoding
# no slower than it would be without it.
_SORTED_KEYS: set[tuple[str, ...]] = set()
_SORTED_KEYS_MAX: Final = 4_096


def _check(value: Any, depth: int, max_depth: int) -> None:  # noqa: PLR0912 - inline on purpose
    """Depth, types, integer range and key order (§3.1, §3.2, §3.4, §3.5).

    This walk is on the ingest path, so leaves are checked inline rather than by a call each.
    """
    if depth > max_depth:
        raise DecodeError(ErrorCode.TOO_DEEP, f"depth > {max_depth}")
    items: Iterable[Any]
    if type(value) is dict:
        keys = tuple(value)
        if keys not in _SORTED_KEYS:
            _check_keys(list(keys))
            if len(_SORTED_KEYS) < _SORTED_KEYS_MAX:
                _SORTED_KEYS.add(keys)
        items = value.values()
    elif type(value) is list:
        items = value
    else:
        items = (value,)
    for item in items:
        kind = type(item)
        if kind is str or kind is bytes or kind is bool or item is None:
            continue
        if kind is int:
            if not MIN_INT <= item <= MAX_INT:
                raise DecodeError(ErrorCode.INT_OUT_OF_RANGE, str(item))
        elif kind is dict or kind is list:
            _check(item, depth + 1, max_depth)
        elif kind is float:
            raise DecodeError(ErrorCode.FLOAT_NOT_ALLOWED, "float")
        else:
            raise DecodeError(ErrorCode.EXT_NOT_ALLOWED, kind.__name__)


def _check_keys(keys: list[Any]) -> None:
    """String keys in UTF-8 byte order, which is code-point order (§3.4).

    The unpacker admits only str and bin keys; sorting a mix of both raises TypeError.
    """
    try:
        ordered = keys == sorted(keys)
    except TypeError:
        raise DecodeError(ErrorCode.NON_STRING_KEY, "map keys must be strings") from None
    if keys and type(keys[0]) is not str:
        raise DecodeError(ErrorCode.NON_STRING_KEY, "map keys must be strings")
    if not ordered:  # a dict holds no duplicates; re-encoding catches those (§3.6)
        raise DecodeError(ErrorCode.UNSORTED_KEYS, "map keys are not in byte order")


def _diagnose(data: bytes, limits: Limits) -> ErrorCode:
    """On the slow path only: tell a duplicate key apart from any other non-shortest form."""
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in items]
        if len(set(keys)) != len(keys):
            duplicates.append("dup")
        return dict(items)

    _unpack(data, limits, object_pairs_hook=pairs)
    return ErrorCode.DUPLICATE_KEY if duplicates else ErrorCode.NONCANONICAL
