"""Field checks shared by key events, envelopes and message bodies (SPEC.md §7.1).

Each helper takes the field's wire name (for the error detail) and the value, and returns the
value in its Python form or raises :class:`ValidationError`. Messages call them from
``__post_init__``, so an invalid message cannot be constructed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final, TypeVar

from .canonical import MAX_INT
from .errors import ErrorCode, ValidationError

__all__ = [
    "LANG_RE",
    "MAX_LANGS",
    "MAX_TAGS",
    "MAX_TEXT",
    "MAX_TITLE",
    "TAG_RE",
    "check_bytes",
    "check_choice",
    "check_int",
    "check_lang_text",
    "check_list",
    "check_str",
    "check_tags",
    "invalid",
    "require",
]

T = TypeVar("T")

LANG_RE: Final = re.compile(r"[a-z]{2,3}(-[a-z0-9]{2,8})*")  # lower-case BCP 47 subset (§7.1)
TAG_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")  # sectors, regions, capabilities
MAX_LANGS: Final = 16
MAX_TAGS: Final = 32
MAX_TITLE: Final = 512  # bytes of UTF-8
MAX_TEXT: Final = 16_384  # bytes of UTF-8


def invalid(name: str, why: str) -> ValidationError:
    return ValidationError(ErrorCode.INVALID_FIELD, f"{name}: {why}")


def require(body: Mapping[str, Any], name: str) -> Any:
    """The value of a required field, or MISSING_FIELD."""
    try:
        return body[name]
    except KeyError:
        raise ValidationError(ErrorCode.MISSING_FIELD, name) from None


def check_bytes(name: str, value: object, size: int) -> bytes:
    if type(value) is not bytes or len(value) != size:
        raise invalid(name, f"must be bin of {size} bytes")
    return value


def check_int(name: str, value: object, low: int = 0, high: int = MAX_INT) -> int:
    if type(value) is not int or not low <= value <= high:
        raise invalid(name, f"must be an integer in [{low}, {high}]")
    return value


def check_str(
    name: str, value: object, max_bytes: int, pattern: re.Pattern[str] | None = None
) -> str:
    if type(value) is not str or not value:
        raise invalid(name, "must be a non-empty string")
    try:
        size = len(value.encode())
    except UnicodeEncodeError:  # a lone surrogate, e.g. from JSON "\ud800" (SPEC.md §3.3)
        raise invalid(name, "must be valid Unicode") from None
    if size > max_bytes:
        raise ValidationError(ErrorCode.TOO_LONG, f"{name}: more than {max_bytes} bytes")
    if pattern is not None and not pattern.fullmatch(value):
        raise invalid(name, f"must match {pattern.pattern}")
    return value


def check_choice(name: str, value: object, choices: frozenset[str]) -> str:
    if type(value) is not str or value not in choices:
        raise invalid(name, f"must be one of {sorted(choices)}")
    return value


def check_list(
    name: str, value: object, item: Callable[[str, object], T], max_items: int, min_items: int = 0
) -> tuple[T, ...]:
    """A list (or tuple) of distinct items, each checked by ``item``."""
    if not isinstance(value, list | tuple) or not min_items <= len(value) <= max_items:
        raise invalid(name, f"must be a list of {min_items} to {max_items} items")
    items = tuple(item(f"{name}[{i}]", v) for i, v in enumerate(value))
    if len(set(items)) != len(items):
        raise invalid(name, "items must be distinct")
    return items


def check_tags(name: str, value: object) -> tuple[str, ...]:
    return check_list(name, value, lambda n, v: check_str(n, v, 64, TAG_RE), MAX_TAGS)


def check_lang_text(name: str, value: object, max_bytes: int) -> Mapping[str, str]:
    """A map from language tag to non-empty text: the multilingual strings of §7.1."""
    if not isinstance(value, Mapping) or not 1 <= len(value) <= MAX_LANGS:
        raise invalid(name, f"must map 1 to {MAX_LANGS} language tags to text")
    for lang, text in value.items():
        if type(lang) is not str or not LANG_RE.fullmatch(lang):
            raise invalid(name, f"{lang!r} is not a lower-case language tag")
        check_str(f"{name}.{lang}", text, max_bytes)
    return MappingProxyType(dict(value))
