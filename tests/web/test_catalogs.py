"""The translation catalogs: every message the interface can show (extracted from the
templates and the Python code with Babel, as ``pybabel extract -F node/web/babel.cfg`` does)
is translated, not empty and not fuzzy, in Arabic and Sorani, with the same placeholders;
Sorani is written with its own letters and digits."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po
from messages_support import extracted, fragments

from node.web.pages.i18n import LOCALE_DIR, Lang, load_catalogs

PLACEHOLDER = re.compile(r"%\((\w+)\)s")
TRANSLATED = ("ar", "ckb")
ARABIC_ONLY = set("يكةى")  # Sorani writes ی ک ە instead
KURDISH_ONLY = set("ێۆڕڵەڤ")


def catalog(language: str) -> Catalog:
    path = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as source:
        return read_po(source, locale=language)


def strings(value: object) -> tuple[str, ...]:
    """A catalog entry's id or string as a tuple of its forms (one unless it has plurals)."""
    forms = value if isinstance(value, tuple | list) else (value,)
    return tuple(str(form or "") for form in forms)


def translations(language: str) -> Iterator[tuple[str, str]]:
    for message in catalog(language):
        if message.id:
            for form in strings(message.string):
                yield strings(message.id)[0], form


def test_extraction_finds_the_interface() -> None:
    messages = extracted()
    assert len(messages) > 250
    for known in ("Log in", "Skip to the main content", "Wrong pseudonym or password.",
                  "governance policy changed", "Home"):  # fmt: skip
        assert known in messages
    assert messages["%(num)s day"] == ("%(num)s day", "%(num)s days")
    assert "Log in" in fragments("ar")
    assert "Voting opens in" in fragments("ckb")


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_is_translated(language: str) -> None:
    entries = {strings(m.id)[0]: m for m in catalog(language) if m.id}
    missing = sorted(set(extracted()) - set(entries))
    assert not missing, f"{language}: not in the catalog: {missing}"
    nplurals = catalog(language).num_plurals
    for msgid in extracted():
        entry = entries[msgid]
        assert not entry.fuzzy, (language, msgid)
        forms = strings(entry.string)
        assert all(form.strip() for form in forms), f"{language}: empty: {msgid!r}"
        if isinstance(entry.id, tuple):
            assert len(forms) == nplurals, (language, msgid)
        wanted = set(PLACEHOLDER.findall(msgid)) - {"num"}
        for form in forms:
            assert set(PLACEHOLDER.findall(form)) - {"num"} == wanted, (language, msgid, form)
            assert "%" not in PLACEHOLDER.sub("", form), (language, msgid, form)  # no stray %


def test_scripts_and_plural_rules() -> None:
    for _, text in translations("ckb"):
        assert not ARABIC_ONLY & set(text), text
        assert not re.search(r"[0-9]", text.replace("name@example.org", "")), text
    for _, text in translations("ar"):
        assert not KURDISH_ONLY & set(text), text
    catalogs = load_catalogs()
    arabic, sorani = Lang.of("ar", catalogs["ar"]), Lang.of("ckb", catalogs["ckb"])
    assert [arabic.duration(n * 86_400) for n in (1, 2, 3, 11, 100)] == [
        "يوم واحد", "يومان", "3 أيام", "11 يومًا", "100 يوم",
    ]  # fmt: skip
    assert sorani.duration(2 * 86_400 + 3 * 3_600) == "٢ ڕۆژ و ٣ کاتژمێر"
    assert sorani.number(12_345) == "١٢٬٣٤٥"
    assert sorani.percent(1, 4) == "٢٥٪"
    assert arabic.date(1_800_000_000) == "15 يناير 2027 08:00"
    assert sorani.date(1_800_000_000) == "١٥ی کانوونی دووەمی ٢٠٢٧ ٠٨:٠٠"
