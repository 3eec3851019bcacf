"""Calls to action and strike coordination (SPEC.md §8.5, §9).

Every ``call.*`` message but ``call.issue`` names the call by ``call``: the id of the
``call.issue`` envelope. Tallies carry aggregate counts only, never a member identifier.
:func:`check_activation` is the check every node runs on a ``call.activate`` proof.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final

from .errors import ErrorCode, ValidationError
from .fields import (
    MAX_TEXT,
    MAX_TITLE,
    TAG_RE,
    check_bytes,
    check_choice,
    check_int,
    check_lang_text,
    check_list,
    check_str,
    check_tags,
    invalid,
)
from .keys import DIGEST_SIZE
from .message import Message, Part
from .messages import DecisionSummary

__all__ = [
    "KINDS",
    "CallActivate",
    "CallAmend",
    "CallCancel",
    "CallConclude",
    "CallDecline",
    "CallEndorse",
    "CallIssue",
    "CallTally",
    "CallUpdate",
    "Location",
    "TallyRecord",
    "Threshold",
    "check_activation",
]

KINDS: Final = frozenset(
    {"strike", "demonstration", "boycott", "petition", "solidarity", "meeting"}
)
MAX_PROOF: Final = 256


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


def _call_id(value: object) -> bytes:
    return check_bytes("call", value, DIGEST_SIZE)


@dataclass(frozen=True, slots=True)
class Location(Part):
    """A coarse public location: a region code and an optional public place name."""

    region: str
    place: str | None = None

    def __post_init__(self) -> None:
        check_str("region", self.region, 64, TAG_RE)
        if self.place is not None:
            check_str("place", self.place, 200)


@dataclass(frozen=True, slots=True)
class Threshold(Part):
    """At least ``pledges`` pledges across at least ``orgs`` organisations by ``deadline``."""

    pledges: int
    orgs: int
    deadline: int

    def __post_init__(self) -> None:
        check_int("pledges", self.pledges, 1)
        check_int("orgs", self.orgs, 1, MAX_PROOF)
        check_int("deadline", self.deadline)


def _check_times(starts: int | None, ends: int | None) -> None:
    if starts is not None:
        check_int("starts", starts)
    if ends is not None:
        check_int("ends", ends, 0 if starts is None else starts)


@dataclass(frozen=True, slots=True)
class CallIssue(Message):
    """``call.issue``: a call to action (§8.5)."""

    TYPE: ClassVar[str] = "call.issue"
    PARTS: ClassVar[Mapping[str, type[Part]]] = {"location": Location, "threshold": Threshold}
    kind: str
    title: Mapping[str, str]
    text: Mapping[str, str]
    starts: int | None = None
    ends: int | None = None
    location: Location | None = None
    sectors: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    threshold: Threshold | None = None

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, KINDS)
        _set(self, "title", check_lang_text("title", self.title, MAX_TITLE))
        _set(self, "text", check_lang_text("text", self.text, MAX_TEXT))
        _check_times(self.starts, self.ends)
        if self.location is not None and not isinstance(self.location, Location):
            raise invalid("location", "must be a location")
        check_tags("sectors", self.sectors)
        check_tags("regions", self.regions)
        if self.threshold is not None and not isinstance(self.threshold, Threshold):
            raise invalid("threshold", "must be a threshold")


@dataclass(frozen=True, slots=True)
class CallAmend(Message):
    """``call.amend``: new values for some fields of the call; the threshold and kind stay."""

    TYPE: ClassVar[str] = "call.amend"
    PARTS: ClassVar[Mapping[str, type[Part]]] = {"location": Location}
    call: bytes
    title: Mapping[str, str] | None = None
    text: Mapping[str, str] | None = None
    starts: int | None = None
    ends: int | None = None
    location: Location | None = None
    sectors: tuple[str, ...] | None = None
    regions: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _call_id(self.call)
        changes = (
            self.title,
            self.text,
            self.starts,
            self.ends,
            self.location,
            self.sectors,
            self.regions,
        )
        if all(c is None for c in changes):
            raise invalid("call.amend", "changes nothing")
        if self.title is not None:
            _set(self, "title", check_lang_text("title", self.title, MAX_TITLE))
        if self.text is not None:
            _set(self, "text", check_lang_text("text", self.text, MAX_TEXT))
        _check_times(self.starts, self.ends)
        if self.location is not None and not isinstance(self.location, Location):
            raise invalid("location", "must be a location")
        for name in ("sectors", "regions"):
            if getattr(self, name) is not None:
                check_tags(name, getattr(self, name))


@dataclass(frozen=True, slots=True)
class CallCancel(Message):
    """``call.cancel``: the issuer calls it off. Wins even if it arrives before the call."""

    TYPE: ClassVar[str] = "call.cancel"
    call: bytes
    reason: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        _call_id(self.call)
        if self.reason is not None:
            _set(self, "reason", check_lang_text("reason", self.reason, MAX_TEXT))


@dataclass(frozen=True, slots=True)
class CallUpdate(Message):
    """``call.update``: a news post from the issuer about its call."""

    TYPE: ClassVar[str] = "call.update"
    call: bytes
    text: Mapping[str, str]

    def __post_init__(self) -> None:
        _call_id(self.call)
        _set(self, "text", check_lang_text("text", self.text, MAX_TEXT))


@dataclass(frozen=True, slots=True)
class CallConclude(Message):
    """``call.conclude``: the issuer closes the call after the action."""

    TYPE: ClassVar[str] = "call.conclude"
    call: bytes
    outcome: str
    text: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        _call_id(self.call)
        check_choice("outcome", self.outcome, frozenset({"held", "partial", "called_off"}))
        if self.text is not None:
            _set(self, "text", check_lang_text("text", self.text, MAX_TEXT))


@dataclass(frozen=True, slots=True)
class _Verdict(Message):
    """The shape shared by ``call.endorse`` and ``call.decline``."""

    PARTS: ClassVar[Mapping[str, type[Part]]] = {"decision": DecisionSummary}
    call: bytes
    decision: DecisionSummary
    note: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        _call_id(self.call)
        if not isinstance(self.decision, DecisionSummary):
            raise invalid("decision", "must be a decision summary")
        if self.note is not None:
            _set(self, "note", check_lang_text("note", self.note, MAX_TEXT))


@dataclass(frozen=True, slots=True)
class CallEndorse(_Verdict):
    """``call.endorse``: the origin organisation joins the call, and how it decided."""

    TYPE: ClassVar[str] = "call.endorse"


@dataclass(frozen=True, slots=True)
class CallDecline(_Verdict):
    """``call.decline``: the origin organisation does not join, and how it decided."""

    TYPE: ClassVar[str] = "call.decline"


@dataclass(frozen=True, slots=True)
class CallTally(Message):
    """``call.tally``: the origin's pledge counts, bucketed, zero below ``k`` (§9.2).

    ``seq`` grows per (origin, call); the highest wins. Two different tallies with one
    ``seq`` are equivocation.
    """

    TYPE: ClassVar[str] = "call.tally"
    call: bytes
    seq: int
    firm: int
    conditional: int
    bucket: int
    k: int

    def __post_init__(self) -> None:
        _call_id(self.call)
        check_int("seq", self.seq, 1)
        bucket = check_int("bucket", self.bucket, 1, 1000)
        k = check_int("k", self.k, 1, 1000)
        for name in ("firm", "conditional"):
            count = check_int(name, getattr(self, name))
            if count % bucket:
                raise invalid(name, f"must be a multiple of the bucket {bucket}")
            if 0 < count < k:
                raise invalid(name, f"counts below k={k} are reported as 0")

    @property
    def total(self) -> int:
        return self.firm + self.conditional


@dataclass(frozen=True, slots=True)
class CallActivate(Message):
    """``call.activate``: the ids of tallies proving the call's threshold is met (§9.3)."""

    TYPE: ClassVar[str] = "call.activate"
    call: bytes
    tallies: tuple[bytes, ...]
    pledges: int
    orgs: int

    def __post_init__(self) -> None:
        _call_id(self.call)
        proof = check_list(
            "tallies", self.tallies, lambda n, v: check_bytes(n, v, DIGEST_SIZE), MAX_PROOF, 1
        )
        if list(proof) != sorted(proof):
            raise invalid("tallies", "ids must be sorted")
        check_int("pledges", self.pledges, 1)
        check_int("orgs", self.orgs, 1, len(proof))


@dataclass(frozen=True, slots=True)
class TallyRecord:
    """A verified ``call.tally`` as the checker needs it: envelope id, origin, creation time."""

    id: bytes
    origin: bytes
    created: int
    tally: CallTally


def check_activation(
    call_id: bytes, threshold: Threshold, activate: CallActivate, tallies: Sequence[TallyRecord]
) -> None:
    """Raise ``ValidationError(activation_unproven)`` unless the proof adds up (§9.3).

    ``tallies`` are the verified tallies the activation names (the caller fetches missing
    ones). Each must be for this call, created by the deadline, from a distinct organisation;
    their totals must meet the threshold and equal the activation's claimed figures.
    """
    by_id = {t.id: t for t in tallies}
    if activate.call != call_id or set(activate.tallies) != set(by_id):
        raise _unproven("the proof does not name exactly the tallies given for this call")
    origins = {t.origin for t in tallies}
    if len(origins) != len(tallies):
        raise _unproven("two tallies from one organisation")
    if any(t.tally.call != call_id or t.created > threshold.deadline for t in tallies):
        raise _unproven("a tally is for another call or after the deadline")
    pledges = sum(t.tally.total for t in tallies)
    orgs = sum(1 for t in tallies if t.tally.total > 0)
    if (pledges, orgs) != (activate.pledges, activate.orgs):
        raise _unproven(f"tallies add up to {pledges} pledges in {orgs} organisations")
    if pledges < threshold.pledges or orgs < threshold.orgs:
        raise _unproven("the threshold is not met")


def _unproven(detail: str) -> ValidationError:
    return ValidationError(ErrorCode.ACTIVATION_UNPROVEN, detail)
