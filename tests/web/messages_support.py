"""The English messages of the interface, as Babel extracts them from the templates and the
Python code (``node/web/babel.cfg``), and a check that a page in another language shows none
of them (no tests here)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg

from node.web.pages.i18n import LOCALE_DIR, load_catalogs

NODE = LOCALE_DIR.parent.parent
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
PLACEHOLDER = re.compile(r"%\(\w+\)s")


@cache
def extracted() -> dict[str, tuple[str, ...]]:
    """Every msgid in the code and templates: singular -> (singular[, plural])."""
    with (NODE / "web" / "babel.cfg").open() as mapping:
        method_map, options_map = parse_mapping_cfg(mapping)  # type: ignore[no-untyped-call]
    found: dict[str, tuple[str, ...]] = {}
    for _, _, message, _, _ in extract_from_dir(NODE, method_map, options_map, KEYWORDS):
        forms = message if isinstance(message, tuple) else (message,)
        found[forms[0]] = tuple(forms)
    return found


@cache
def fragments(language: str) -> tuple[str, ...]:
    """The English text of every message that ``language`` translates differently, cut at
    its placeholders: what must not appear on a page in that language."""
    translations = load_catalogs()[language]
    out = set()
    for forms in extracted().values():
        if translations.gettext(forms[0]) == forms[0]:
            continue
        for form in forms:
            out |= {part.strip() for part in PLACEHOLDER.split(form)}
    return tuple(sorted(p for p in out if re.search(r"[A-Za-z]{2}", p)))


def leftovers(texts: Iterable[str], language: str) -> list[str]:
    """English messages among a page's texts (its text nodes and accessible names): a text
    that is one of them, or that contains one of twelve characters or more."""
    found = []
    for raw in texts:
        text = " ".join(raw.split())
        for part in fragments(language):
            if text == part or (len(part) >= 12 and part in text):
                found.append(f"{part!r} in {text!r}")
    return found
