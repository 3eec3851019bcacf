"""Reading the coordinators' call forms (node.web.pages.coordinate): titles and texts in
Arabic, Sorani and English fields (``title_ar``, ``title_ckb``, ``title_en``, ...), times
typed in ``datetime-local`` fields and read as UTC (the footer says so), the coarse public
location, sectors and the threshold; a new call's draft, and what an amendment changes.

Each reader checks its fields against the protocol's limits (a title is 512 bytes of UTF-8,
so 256 Arabic letters) and notes what is wrong in the form, next to the field, so that the
page can be shown again with everything typed kept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from node.services.calls import MAX_MEETING_POINT, CallDraft
from node.web.pages.calls import WORDS
from node.web.pages.forms import Form
from node.web.pages.i18n import N_
from node.web.pages.labels import LABELS
from node.web.pages.messages import Msg
from node.web.schema import integer, string
from protocol.fields import MAX_TAGS, MAX_TEXT, MAX_TITLE, TAG_RE

__all__ = [
    "CHANGEABLE", "HINTS", "KINDS", "LANGS", "NEW_FIELDS", "OUTCOMES", "changes",
    "current_values", "draft", "names", "optional_texts", "texts",
]  # fmt: skip

LANGS: Final = ("ar", "ckb", "en")
KINDS: Final = tuple(LABELS["call_kind"])
OUTCOMES: Final = tuple(WORDS["conclusion"])
LOCAL_TIME: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?")
SEPARATORS: Final = re.compile(r"[\s,،]+")  # commas (Arabic ones too) or spaces


def names(prefix: str) -> tuple[str, ...]:
    return tuple(f"{prefix}_{code}" for code in LANGS)


CHANGEABLE: Final = (
    *names("title"), *names("text"), "starts", "ends", "region", "place", "sectors",
    "meeting_point",
)  # fmt: skip
NEW_FIELDS: Final = (*CHANGEABLE, "kind", "audience", "pledges", "orgs", "deadline")
TITLE: Final = string(required=False, max_length=MAX_TITLE)  # bytes checked too
TEXT: Final = string(required=False, max_length=MAX_TEXT, multiline=True)
REGION: Final = string(required=False, max_length=64, pattern=TAG_RE.pattern)
PLACE: Final = string(required=False, max_length=200)
MEETING: Final = string(required=False, max_length=MAX_MEETING_POINT, multiline=True)
SECTORS: Final = string(required=False, max_length=MAX_TAGS * 66)
PLEDGES: Final = integer(required=False, minimum=1, maximum=10**9)
ORGS: Final = integer(required=False, minimum=1, maximum=256)
HINTS: Final = {
    "sectors": N_(
        "Up to 32 short words in Latin letters, such as oil or education, separated by commas."
    ),
    "region": N_(
        "A short code in Latin letters, such as IQ-BA: letters, digits, dots and hyphens."
    ),
}
NEEDS_ONE: Final = N_("Write it in at least one language.")


def texts(raw: Mapping[str, str], form: Form, prefix: str, *, required: bool) -> dict[str, str]:
    """The ``prefix_<lang>`` fields that are filled in, by language."""
    spec, limit = (TITLE, MAX_TITLE) if prefix == "title" else (TEXT, MAX_TEXT)
    found = {}
    for code, name in zip(LANGS, names(prefix), strict=True):
        value = form.text(raw, name, spec)
        if value is None:
            continue
        value = value.replace("\r\n", "\n")
        if len(value.encode()) > limit:
            form.fail(name, Msg(
                N_("This is too long: at most %(max)s bytes (a letter of Arabic script takes "
                   "two)."), {"max": limit}))  # fmt: skip
            continue
        found[code] = value
    if required and not found and not any(name in form.errors for name in names(prefix)):
        form.fail(prefix, Msg(NEEDS_ONE))
    return found


def _moment(raw: Mapping[str, str], form: Form, name: str) -> int | None:
    """A ``datetime-local`` value as unix time (UTC); None if empty or wrong (noted)."""
    value = raw.get(name, "").strip()
    if not value:
        return None
    if LOCAL_TIME.fullmatch(value):
        try:
            moment = datetime.fromisoformat(value).replace(tzinfo=UTC)
        except ValueError:
            moment = None
        if moment is not None and moment.year >= 1970:
            return int(moment.timestamp())
    form.fail(name, Msg(N_("Enter a date and time.")))
    return None


def _times(raw: Mapping[str, str], form: Form, starts_before: int | None = None) -> tuple[
    int | None, int | None
]:  # fmt: skip
    starts, ends = _moment(raw, form, "starts"), _moment(raw, form, "ends")
    start = starts if starts is not None else starts_before
    if start is not None and ends is not None and ends < start:
        form.fail("ends", Msg(N_("The end must not be before the start.")))
    return starts, ends


def _where(raw: Mapping[str, str], form: Form) -> tuple[str | None, str | None]:
    region, place = form.text(raw, "region", REGION), form.text(raw, "place", PLACE)
    if region is None and place is not None and "region" not in form.errors:
        form.fail("region", Msg(N_("A place needs its region.")))
    return region, place


def _sectors(raw: Mapping[str, str], form: Form) -> tuple[str, ...]:
    text = form.text(raw, "sectors", SECTORS) or ""
    found = tuple(dict.fromkeys(part for part in SEPARATORS.split(text) if part))
    if len(found) > MAX_TAGS or not all(TAG_RE.fullmatch(tag) for tag in found):
        form.fail("sectors", Msg(HINTS["sectors"]))
        return ()
    return found


def _threshold(raw: Mapping[str, str], form: Form, now: int) -> tuple[int, int, int] | None:
    pledges, orgs = form.text(raw, "pledges", PLEDGES), form.text(raw, "orgs", ORGS)
    deadline = _moment(raw, form, "deadline")
    typed = [raw.get(name, "").strip() for name in ("pledges", "orgs", "deadline")]
    if not any(typed):
        return None
    if not all(typed):
        form.fail("threshold", Msg(N_("Fill in all three parts of the threshold, or none.")))
        return None
    if deadline is not None and deadline <= now:
        form.fail("deadline", Msg(N_("The deadline must be in the future.")))
    if pledges is None or orgs is None or deadline is None:
        return None
    return pledges, orgs, deadline


def optional_texts(raw: Mapping[str, str], form: Form, prefix: str) -> dict[str, str] | None:
    return texts(raw, form, prefix, required=False) or None


def draft(raw: Mapping[str, str], form: Form, audiences: list[str], now: int) -> CallDraft | None:
    kind = form.choice(raw, "kind", KINDS)
    title = texts(raw, form, "title", required=True)
    text = texts(raw, form, "text", required=True)
    starts, ends = _times(raw, form)
    region, place = _where(raw, form)
    sectors = _sectors(raw, form)
    meeting_point = form.text(raw, "meeting_point", MEETING)
    audience = form.choice(raw, "audience", audiences)
    threshold = _threshold(raw, form, now)
    if not form.ok or kind is None or audience is None:
        return None
    return CallDraft(
        kind=kind, title=title, text=text, audience=audience, starts=starts, ends=ends,
        region=region, place=place, sectors=sectors, threshold=threshold,
        meeting_point=None if meeting_point is None else meeting_point.replace("\r\n", "\n"),
    )  # fmt: skip


def _local(moment: int | None) -> str:
    if moment is None:
        return ""
    try:
        return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M")
    except (OverflowError, ValueError, OSError):  # beyond the calendar: the field starts empty
        return ""


def current_values(detail: Mapping[str, Any]) -> dict[str, str]:
    """The amend form's starting values: the call as it is."""
    where = detail["location"] or {}
    values = {
        "starts": _local(detail["starts"]), "ends": _local(detail["ends"]),
        "region": where.get("region") or "", "place": where.get("place") or "",
        "sectors": ", ".join(detail["sectors"]), "meeting_point": detail["meeting_point"] or "",
    }  # fmt: skip
    for prefix in ("title", "text"):
        for code in LANGS:
            values[f"{prefix}_{code}"] = detail[prefix].get(code, "")
    return values


def _merged(current: Mapping[str, str], typed: Mapping[str, str]) -> dict[str, str]:
    """A call's texts with the form's languages replaced (and emptied ones removed)."""
    kept = {code: text for code, text in current.items() if code not in LANGS}
    return kept | dict(typed)


def changes(raw: Mapping[str, str], form: Form, detail: Mapping[str, Any]) -> dict[str, Any]:
    """What the amend form changes in the call (``detail``), as the calls service takes it;
    a time or a location cannot be removed (the protocol amends, it does not erase)."""
    found: dict[str, Any] = {}
    for prefix in ("title", "text"):
        typed = texts(raw, form, prefix, required=False)
        merged = _merged(detail[prefix], typed)
        if not merged and not any(name in form.errors for name in names(prefix)):
            form.fail(prefix, Msg(NEEDS_ONE))
        if merged != detail[prefix]:
            found[prefix] = merged
    starts, ends = _times(raw, form, detail["starts"])
    for name, value in (("starts", starts), ("ends", ends)):
        if value != detail[name] and name not in form.errors:
            if value is None:
                form.fail(name, Msg(N_("A time cannot be removed once set, only changed.")))
            found[name] = value
    region, place = _where(raw, form)
    where = None if region is None else {"region": region, "place": place}
    if where != detail["location"] and "region" not in form.errors:
        if where is None:
            form.fail("region", Msg(N_("A place cannot be removed once set, only changed.")))
        found["location"] = where
    sectors = _sectors(raw, form)
    if list(sectors) != detail["sectors"]:
        found["sectors"] = list(sectors)
    meeting = form.text(raw, "meeting_point", MEETING)
    meeting = None if meeting is None else meeting.replace("\r\n", "\n")
    if meeting != detail["meeting_point"]:
        found["meeting_point"] = meeting
    return found
