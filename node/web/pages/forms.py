"""Reading and checking HTML forms, and keeping what was typed when one is refused.

A form body is ``application/x-www-form-urlencoded``, at most :data:`MAX_FORM` bytes
(:data:`LARGE_FORM` for forms with long texts; 413 before it is parsed), UTF-8, with only
the fields the page's form has, each at most once (400 ``invalid_form`` otherwise: our
pages never send anything else). Its CSRF token is
checked before anything else is looked at.

Field values are checked against the same :mod:`node.web.schema` fields as the JSON API's,
so the two cannot disagree; a value that breaks a rule gives a message that says what is
expected, shown next to the field, and the page is rendered again with the input kept
(never a password).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl

from aiohttp import web

from node.errors import NodeError
from node.web.pages.i18n import N_
from node.web.pages.messages import Msg, field_of, message_for
from node.web.pages.security import CSRF_FIELD
from node.web.schema import CONTROL, MULTILINE_CONTROL, Field, validate_value

__all__ = ["LARGE_FORM", "MAX_FORM", "Form", "FormError", "read_form"]

MAX_FORM: Final = 64 * 1024
# Forms with long texts in several languages (calls, news, proposals, coalitions): a text
# may be 16 KiB of UTF-8, and urlencoding triples each byte of Arabic or Sorani.
LARGE_FORM: Final = 320 * 1024
MAX_FIELDS: Final = 64
INTEGER: Final = re.compile(r"-?[0-9]{1,12}")
FORM_TYPE: Final = "application/x-www-form-urlencoded"
FIELD_HINTS: Final[Mapping[str, str]] = {
    "pseudonym": N_(
        "3 to 64 letters or digits in any script, with single spaces, dots, hyphens or "
        "underscores between them."
    ),
    "contact.phone": N_("A phone number: digits, spaces, brackets, hyphens and a leading +."),
    "contact.email": N_("An e-mail address, like name@example.org."),
    "phone": N_("A phone number: digits, spaces, brackets, hyphens and a leading +."),
    "email": N_("An e-mail address, like name@example.org."),
    "vote.fraction": N_("A supermajority needs a share above one half; other methods take none."),
    "vote.quorum": N_("The quorum cannot be more than the whole electorate."),
}


class FormError(Exception):
    """A form our pages would never send (unknown or repeated fields, not UTF-8)."""


async def read_form(
    request: web.Request, allowed: Collection[str], *, limit: int = MAX_FORM
) -> dict[str, str]:
    """The submitted fields (CSRF field included), each at most once, all in ``allowed``;
    a body over ``limit`` bytes is refused before it is parsed."""
    if request.content_type != FORM_TYPE:
        raise NodeError(415, "unsupported_media_type", "send the form as urlencoded")
    if request.content_length is not None and request.content_length > limit:
        raise NodeError(413, "body_too_large", f"a form is at most {limit} bytes")
    raw = bytearray()
    async for chunk in request.content.iter_chunked(16 * 1024):
        raw += chunk
        if len(raw) > limit:
            raise NodeError(413, "body_too_large", f"a form is at most {limit} bytes")
    try:
        pairs = parse_qsl(
            bytes(raw).decode("utf-8"), keep_blank_values=True, strict_parsing=bool(raw),
            errors="strict", max_num_fields=MAX_FIELDS,
        )  # fmt: skip
    except (UnicodeDecodeError, ValueError):
        raise NodeError(400, "invalid_form", "the form is not valid urlencoded UTF-8") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields or (name != CSRF_FIELD and name not in allowed):
            raise NodeError(400, "invalid_form", f"unexpected or repeated field {name!r}")
        fields[name] = value
    return fields


@dataclass
class Form:
    """A form's state on the page: what was typed, and what is wrong with it."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, Msg] = field(default_factory=dict)
    alert: Msg | None = None
    secret: frozenset[str] = frozenset({"password", "current_password", "password_again"})

    @classmethod
    def of(cls, raw: Mapping[str, str]) -> Form:
        """Keeps what was typed, except passwords and the CSRF token."""
        form = cls()
        form.values = {
            name: value
            for name, value in raw.items()
            if name not in form.secret and name != CSRF_FIELD
        }
        return form

    def value(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)

    @property
    def ok(self) -> bool:
        return not self.errors and self.alert is None

    def fail(self, name: str, message: Msg) -> None:
        self.errors.setdefault(name, message)
        if self.alert is None:
            self.alert = Msg(N_("Please correct the marked fields."))

    def refuse(self, exc: NodeError, fields: Mapping[str, str] | None = None) -> None:
        """Show a service's refusal: next to its field if it names one of ours (``fields``
        maps the service's name of a field to the form's)."""
        message = message_for(exc)
        name = field_of(exc)
        if exc.code == "invalid_field" and name is not None and name in FIELD_HINTS:
            message = Msg(FIELD_HINTS[name])
        name = (fields or {}).get(name or "", name)
        if name is not None:
            self.errors.setdefault(name, message)
        self.alert = message

    # --- checking values -------------------------------------------------------------------

    def text(self, raw: Mapping[str, str], name: str, spec: Field, *, key: str = "") -> Any:
        """The value of a text field checked against ``spec``; None if it is empty and may be
        (a failure is recorded and None returned)."""
        value = raw.get(name, "")
        if spec.kind != "string" or name not in self.secret:
            value = value.strip()
        if value == "":
            if spec.required and not spec.nullable:
                self.fail(name, Msg(N_("This field is required.")))
            return None
        converted: object = value
        if spec.kind == "integer":
            if not INTEGER.fullmatch(value):
                self.fail(name, _expected(spec, key or name))
                return None
            converted = int(value)
        try:
            return validate_value(spec, converted, key or name)
        except NodeError:
            self.fail(name, _problem(spec, value, key or name))
            return None

    def choice(self, raw: Mapping[str, str], name: str, choices: Collection[str]) -> str | None:
        value = raw.get(name, "")
        if value not in choices:
            self.fail(name, Msg(N_("Choose one of the options.")))
            return None
        return value


def _problem(spec: Field, value: str, path: str) -> Msg:
    control = MULTILINE_CONTROL if spec.multiline else CONTROL
    if spec.kind == "string" and control.search(value):
        return Msg(N_("Use ordinary text, without control characters."))
    return _expected(spec, path)


def _expected(spec: Field, path: str) -> Msg:
    """What a field expects, from its rules."""
    if spec.choices:
        return Msg(N_("Choose one of the options."))
    if path in FIELD_HINTS:
        return Msg(FIELD_HINTS[path])
    if spec.kind == "integer":
        return Msg(
            N_("Enter a whole number from %(min)s to %(max)s."),
            {"min": spec.minimum, "max": spec.maximum},
        )
    if spec.pattern:
        return Msg(N_("This is not in the expected format."))
    if spec.min_length and spec.max_length:
        return Msg(
            N_("Enter %(min)s to %(max)s characters."),
            {"min": spec.min_length, "max": spec.max_length},
        )
    return Msg(N_("Enter at most %(max)s characters."), {"max": spec.max_length})
