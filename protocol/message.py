"""The base of message types and their nested parts (SPEC.md §7).

A message is a frozen, slotted dataclass whose fields are its body's fields, under the same
names. Subclasses validate in ``__post_init__``, so an invalid message cannot exist.
``to_body`` drops ``None`` (absent optional fields), turns tuples into arrays and parts (also
inside arrays) into maps; ``from_body`` does the reverse (a part inside an array is parsed by
its message) and ignores unknown non-critical fields, which stay in the envelope's raw body
(§5.3).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, fields
from typing import Any, ClassVar, Self

from .errors import ErrorCode, ValidationError
from .fields import invalid

__all__ = ["Message", "Part"]


class Part:
    """A nested map inside a message body. Subclasses are frozen dataclasses."""

    __slots__ = ()
    PARTS: ClassVar[Mapping[str, type[Part]]] = {}

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, Part):
                value = value.to_body()
            elif isinstance(value, tuple):
                value = [v.to_body() if isinstance(v, Part) else v for v in value]
            elif isinstance(value, Mapping):
                value = dict(value)
            body[f.name] = value
        return body

    @classmethod
    def field_names(cls) -> frozenset[str]:
        return frozenset(f.name for f in fields(cls))  # type: ignore[arg-type]

    @classmethod
    def from_body(cls, body: object) -> Self:
        if not isinstance(body, Mapping):
            raise invalid(cls.__name__, "must be a map")
        kwargs: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name not in body:
                if f.default is MISSING and f.default_factory is MISSING:
                    raise ValidationError(ErrorCode.MISSING_FIELD, f.name)
                continue
            value = body[f.name]
            if value is None:  # absent means absent: nil is no field's value (§7.2)
                raise invalid(f.name, "nil is not a value; leave the field out")
            if f.name in cls.PARTS:
                value = cls.PARTS[f.name].from_body(value)
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[f.name] = value
        return cls(**kwargs)


class Message(Part):
    """A message body with its type tag (§7, §8)."""

    __slots__ = ()
    TYPE: ClassVar[str]
