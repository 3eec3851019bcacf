"""The strict subset of RFC 8941 Structured Field Values that transport signatures read
(SPEC.md §10.3), and the signature parameters of RFC 9421 §2.3 (SPEC.md §10.4).

Stricter than RFC 8941 where SPEC.md §10.3 says so: duplicate keys and parameters, members
without values, unknown signature parameters and non-canonical base64 are all refused.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from .errors import ErrorCode, HttpSignatureError

__all__ = [
    "DERIVED_COMPONENTS",
    "SignatureParams",
    "malformed",
    "parse_byte_sequences",
    "parse_signature",
    "parse_signature_input",
    "sf_string",
]

_T = TypeVar("_T")

_KEY = re.compile(r"[a-z*][a-z0-9_.*-]*")
_INTEGER = re.compile(r"-?[0-9]{1,15}")
_STRING = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')
_BYTES = re.compile(r":([A-Za-z0-9+/=]*):")
_FIELD_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")

DERIVED_COMPONENTS = frozenset(
    {"@method", "@target-uri", "@authority", "@scheme", "@request-target", "@path", "@query"}
)
_PARAM_TYPES: Mapping[str, type[int] | type[str]] = {
    "created": int, "expires": int, "nonce": str, "keyid": str, "alg": str, "tag": str,
}  # fmt: skip
_MAX_SF_INTEGER = 999_999_999_999_999


def malformed(detail: str) -> HttpSignatureError:
    return HttpSignatureError(ErrorCode.HTTPSIG_MALFORMED, detail)


def sf_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check_param(name: str, value: int | str) -> None:
    # SPEC.md §10.3: only the six known parameters, integers in [0, 10^15), printable strings.
    expected = _PARAM_TYPES.get(name)
    if expected is None:
        raise malformed(f"unsupported signature parameter {name!r}")
    if type(value) is not expected:
        raise malformed(f"signature parameter {name!r} has the wrong type")
    if isinstance(value, int) and not 0 <= value <= _MAX_SF_INTEGER:
        raise malformed(f"signature parameter {name!r} is out of range")
    if isinstance(value, str) and not _PRINTABLE.fullmatch(value):
        raise malformed(f"signature parameter {name!r} is not printable ASCII")


@dataclass(frozen=True, slots=True)
class SignatureParams:
    """One signature's covered components and parameters, both in order (RFC 9421 §2.3)."""

    components: tuple[str, ...]
    params: tuple[tuple[str, int | str], ...] = ()

    def __post_init__(self) -> None:
        for name in self.components:  # SPEC.md §10.4: lower-case fields or known derived names
            if name not in DERIVED_COMPONENTS and not _FIELD_NAME.fullmatch(name):
                raise malformed(f"unsupported covered component {name!r}")
        if len(set(self.components)) != len(self.components):
            raise malformed("duplicate covered component")
        names = [name for name, _ in self.params]
        if len(set(names)) != len(names):
            raise malformed("duplicate signature parameter")
        for name, value in self.params:
            _check_param(name, value)

    def value(self, name: str) -> int | str | None:
        """The value of parameter ``name``, or ``None`` when absent."""
        return next((value for key, value in self.params if key == name), None)

    def integer(self, name: str) -> int:
        """Integer parameter ``name``; ``httpsig_malformed`` when absent."""
        value = self.value(name)
        if not isinstance(value, int):
            raise malformed(f"missing signature parameter {name!r}")
        return value

    def string(self, name: str) -> str:
        """String parameter ``name``; ``httpsig_malformed`` when absent."""
        value = self.value(name)
        if not isinstance(value, str):
            raise malformed(f"missing signature parameter {name!r}")
        return value

    def serialize(self) -> str:
        """The ``@signature-params`` value and Signature-Input member (SPEC.md §10.4)."""
        inner = " ".join(sf_string(name) for name in self.components)
        params = "".join(
            f";{name}={value if isinstance(value, int) else sf_string(value)}"
            for name, value in self.params
        )
        return f"({inner}){params}"


class _SfError(ValueError):
    """Text outside the RFC 8941 subset read here (SPEC.md §10.3); callers pick the code."""


class _Reader:
    """A cursor over one field value, reading the strict RFC 8941 subset of SPEC.md §10.3."""

    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text.strip(" ")
        self.pos = 0

    def done(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise _SfError(f"expected {char!r} at offset {self.pos}")
        self.pos += 1

    def skip(self, chars: str) -> None:
        while not self.done() and self.text[self.pos] in chars:
            self.pos += 1

    def match(self, pattern: re.Pattern[str], what: str) -> re.Match[str]:
        found = pattern.match(self.text, self.pos)
        if found is None:
            raise _SfError(f"expected {what} at offset {self.pos}")
        self.pos = found.end()
        return found

    def string(self) -> str:
        return re.sub(r'\\(["\\])', r"\1", self.match(_STRING, "a string").group(1))

    def integer(self) -> int:
        value = int(self.match(_INTEGER, "an integer").group())
        if self.peek() and self.peek() in ".0123456789":
            raise _SfError("decimals and integers over 15 digits are not accepted")
        return value

    def byte_sequence(self) -> bytes:
        text = self.match(_BYTES, "a byte sequence").group(1)
        try:
            value = base64.b64decode(text, validate=True)
        except ValueError as exc:
            raise _SfError("invalid base64") from exc
        if base64.b64encode(value).decode("ascii") != text:
            raise _SfError("base64 must be canonical: padded, with zero pad bits")
        return value

    def parameters(self) -> tuple[tuple[str, int | str], ...]:
        params: list[tuple[str, int | str]] = []
        while self.peek() == ";":
            self.pos += 1
            self.skip(" ")
            name = self.match(_KEY, "a parameter name").group()
            self.expect("=")  # no boolean parameters in this profile
            params.append((name, self.string() if self.peek() == '"' else self.integer()))
        return tuple(params)

    def inner_list(self) -> SignatureParams:
        self.expect("(")
        items: list[str] = []
        while True:
            self.skip(" ")
            if self.peek() == ")":
                self.pos += 1
                return SignatureParams(tuple(items), self.parameters())
            items.append(self.string())
            if self.peek() == ";":  # SPEC.md §10.4: ;sf ;key ;bs ;req ;name are not supported
                raise _SfError("component parameters are not supported")
            if self.peek() not in (" ", ")"):
                raise _SfError(f"expected ' ' or ')' at offset {self.pos}")


def _dictionary(text: str, member: Callable[[_Reader], _T]) -> dict[str, _T]:
    """An RFC 8941 §4.2.2 dictionary in which every member has a value; no duplicate keys."""
    reader = _Reader(text)
    members: dict[str, _T] = {}
    while True:
        key = reader.match(_KEY, "a member key").group()
        if key in members:  # SPEC.md §10.3: stricter than RFC 8941, which keeps the last one
            raise _SfError(f"duplicate member {key!r}")
        reader.expect("=")
        members[key] = member(reader)
        reader.skip(" \t")
        if reader.done():
            return members
        reader.expect(",")
        reader.skip(" \t")


def _parse(text: str, member: Callable[[_Reader], _T], code: ErrorCode, what: str) -> dict[str, _T]:
    try:
        return _dictionary(text, member)
    except _SfError as exc:
        raise HttpSignatureError(code, f"{what}: {exc}") from exc


def parse_signature_input(text: str) -> dict[str, SignatureParams]:
    """Parse a Signature-Input field value into label -> parameters (SPEC.md §10.3)."""
    return _parse(text, _Reader.inner_list, ErrorCode.HTTPSIG_MALFORMED, "Signature-Input")


def parse_signature(text: str) -> dict[str, bytes]:
    """Parse a Signature field value into label -> signature bytes (SPEC.md §10.3)."""
    return _parse(text, _Reader.byte_sequence, ErrorCode.HTTPSIG_MALFORMED, "Signature")


def parse_byte_sequences(text: str, code: ErrorCode, what: str) -> dict[str, bytes]:
    """Parse a dictionary of byte sequences (Content-Digest), failing with ``code``."""
    return _parse(text, _Reader.byte_sequence, code, what)
