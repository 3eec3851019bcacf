"""The interface's languages: gettext catalogs compiled in memory at start-up, and dates,
numbers and durations formatted per locale with Babel.

Catalogs are ``node/web/locale/<lang>/LC_MESSAGES/messages.po``; English is the source
language and needs none. Strings in Python are marked with :func:`N_` (Babel extracts it)
and translated when a page is rendered; templates use ``_()`` and ``{% trans %}``.
``node/web/babel.cfg`` is the extraction mapping (``pybabel extract -F node/web/babel.cfg``).

Sorani (``ckb``) writes numbers with Arabic-Indic digits (its CLDR default numbering system;
Arabic's is Latin digits); Babel formats with Latin digits whatever the locale, so numbers
and dates are converted to the locale's own digits here.
Times are shown in UTC, and the page footer says so.
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from babel import Locale
from babel.dates import format_skeleton
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent
from babel.support import Translations

from node.services.members import LANGUAGES

__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGE_NAMES",
    "LOCALE_DIR",
    "N_",
    "RTL",
    "Lang",
    "load_catalogs",
    "negotiate",
]

LOCALE_DIR: Final = Path(__file__).resolve().parent.parent / "locale"
DOMAIN: Final = "messages"
SOURCE_LANGUAGE: Final = "en"
DEFAULT_LANGUAGE: Final = "ar"  # the default of a member's ``language`` too
RTL: Final = frozenset({"ar", "ckb"})
# Each language named in itself: the switcher shows these, never translated.
LANGUAGE_NAMES: Final = {"en": "English", "ar": "العربية", "ckb": "کوردی"}
MINUTE, HOUR, DAY = 60, 3600, 86_400
NATIVE_DIGITS: Final = {"arab": "٠١٢٣٤٥٦٧٨٩", "arabext": "۰۱۲۳۴۵۶۷۸۹"}


def N_(message: str) -> str:
    """Marks ``message`` for extraction; it is translated where it is shown."""
    return message


def load_catalogs(directory: Path = LOCALE_DIR) -> dict[str, gettext.NullTranslations]:
    """Every language's translations, compiled from its .po file in memory."""
    catalogs: dict[str, gettext.NullTranslations] = {SOURCE_LANGUAGE: gettext.NullTranslations()}
    for code in LANGUAGES:
        if code == SOURCE_LANGUAGE:
            continue
        path = directory / code / "LC_MESSAGES" / f"{DOMAIN}.po"
        with path.open("rb") as source:
            catalog = read_po(source, locale=code, domain=DOMAIN)
        compiled = io.BytesIO()
        write_mo(compiled, catalog)
        compiled.seek(0)
        catalogs[code] = Translations(compiled, domain=DOMAIN)
    return catalogs


def negotiate(header: str) -> str | None:
    """The first of our languages that an Accept-Language header asks for, or None."""
    wanted = []
    for part in header.split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        wanted.append((quality, tag.strip().lower()))
    for quality, tag in sorted(wanted, key=lambda pair: -pair[0]):
        primary = tag.split("-")[0]
        if quality > 0 and primary in LANGUAGES:
            return primary
    return None


def _digits(locale: Locale) -> Mapping[int, int | str]:
    """A table that turns ASCII digits (and the percent sign) into the locale's own, if they
    are not Latin: Babel gives a locale's own separators but always Latin digits."""
    native = NATIVE_DIGITS.get(locale.default_numbering_system)
    if native is None:
        return {}
    return str.maketrans("0123456789%", native + "٪")


@dataclass(frozen=True, slots=True)
class Lang:
    """One language of the interface: its translations and its formats."""

    code: str
    translations: gettext.NullTranslations
    locale: Locale
    digits: Mapping[int, int | str]  # a str.translate table

    @classmethod
    def of(cls, code: str, translations: gettext.NullTranslations) -> Lang:
        locale = Locale.parse(code)
        return cls(code, translations, locale, _digits(locale))

    @property
    def dir(self) -> str:
        return "rtl" if self.code in RTL else "ltr"

    def gettext(self, message: str, **params: object) -> str:
        text = self.translations.gettext(message)
        return text % params if params else text

    def ngettext(self, singular: str, plural: str, num: int, **params: object) -> str:
        text = self.translations.ngettext(singular, plural, num)
        return text % ({"num": self.number(num)} | params)

    # --- formats ---------------------------------------------------------------------------

    def number(self, value: int) -> str:
        text = format_decimal(value, locale=self.locale, numbering_system="default")
        return text.translate(self.digits)

    def percent(self, num: int, den: int) -> str:
        """``num/den`` as a whole percentage (0 when ``den`` is 0)."""
        share = num / den if den else 0
        text = format_percent(share, locale=self.locale, numbering_system="default")
        return text.translate(self.digits)

    def date(self, timestamp: int) -> str:
        """Day and time in UTC, e.g. "Jan 15, 2027 08:00"; a time no calendar can show (a
        peer may send any up to 2^53 - 1) as its unix seconds."""
        try:
            moment = datetime.fromtimestamp(timestamp, UTC)
        except (OverflowError, ValueError, OSError):
            return str(timestamp).translate(self.digits)
        day = format_skeleton("yMMMd", moment, tzinfo=UTC, locale=self.locale)
        time = format_skeleton("Hm", moment, tzinfo=UTC, locale=self.locale)
        return f"{day} {time}".translate(self.digits)

    def duration(self, seconds: int) -> str:
        """A span of time in its two largest units: "2 days 3 hours", "5 minutes"."""
        seconds = max(seconds, 0)
        days, rest = divmod(seconds, DAY)
        hours, rest = divmod(rest, HOUR)
        minutes = rest // MINUTE
        if days:
            parts = [self._days(days)] + ([self._hours(hours)] if hours else [])
        elif hours:
            parts = [self._hours(hours)] + ([self._minutes(minutes)] if minutes else [])
        elif minutes:
            parts = [self._minutes(minutes)]
        else:
            return self.gettext("less than a minute")
        if len(parts) == 1:
            return parts[0]
        return self.gettext("%(first)s %(second)s", first=parts[0], second=parts[1])

    def _days(self, n: int) -> str:
        return self.ngettext("%(num)s day", "%(num)s days", n)

    def _hours(self, n: int) -> str:
        return self.ngettext("%(num)s hour", "%(num)s hours", n)

    def _minutes(self, n: int) -> str:
        return self.ngettext("%(num)s minute", "%(num)s minutes", n)
