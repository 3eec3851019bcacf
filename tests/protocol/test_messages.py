"""Every message type of ``protocol.registry.MESSAGE_TYPES``, table-driven (SPEC.md §7-§9).

Valid instances round-trip through their body and the canonical encoding; invalid
constructions raise :class:`ValidationError` with the expected code; ``call.tally`` and the
decision messages keep their arithmetic; :func:`check_activation` refuses every proof that
does not add up.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    CallActivate,
    CallAmend,
    CallCancel,
    CallConclude,
    CallDecline,
    CallEndorse,
    CallIssue,
    CallTally,
    CallUpdate,
    CoalitionFound,
    CoalitionInvite,
    CoalitionJoin,
    CoalitionLeave,
    DecisionOutcome,
    DecisionSummary,
    ErrorCode,
    Location,
    Message,
    NodeDescriptor,
    PeerAlliance,
    PeerIntroduce,
    Ratio,
    TallyRecord,
    Threshold,
    ValidationError,
    check_activation,
    coalition_id,
    decode,
    encode,
    parse_body,
)
from protocol.canonical import MAX_INT
from protocol.coalitions import Member, OpenInvite
from protocol.message import Part
from protocol.registry import MESSAGE_TYPES

T0 = 1_800_000_000
INVALID = ErrorCode.INVALID_FIELD
MISSING = ErrorCode.MISSING_FIELD
TOO_LONG = ErrorCode.TOO_LONG


def seed(label: str) -> bytes:
    return hashlib.sha256(b"tadamun-messages:" + label.encode()).digest()


CALL = seed("call")
ID31 = seed("short")[:31]
ID33 = seed("long") + b"\x00"
TALLY_IDS = tuple(sorted(seed(f"tally-{i}") for i in range(3)))
SUMMARY = DecisionSummary(
    by="vote", method="majority", electorate=120, turnout=87, yes=61, no=20, abstain=6
)
TITLE = {"ar": "إضراب عام في الموانئ", "ckb": "مانگرتنی گشتی", "en": "General strike"}
FOUNDER, SALT = seed("founder"), seed("salt")
COALITION = coalition_id(FOUNDER, SALT)
MEMBERS = (Member(FOUNDER, 3), Member(seed("member"), 7))
OPEN = (OpenInvite(seed("open-invite"), seed("invitee-2"), T0),)

# One full and, where fields are optional, one minimal instance of every type.
VALID: list[tuple[str, Message]] = [
    (
        "node.descriptor full",
        NodeDescriptor(
            name={"ar": "نقابة عمال النفط", "en": "Oil Workers' Union"},
            endpoints=("https://oil.example.org", "http://10.0.0.1:8080/fed"),
            langs=("ar", "ckb", "en"),
            caps=("tadamun.v1", "calls"),
            about={"en": "Founded 1948.", "ckb-arab": "دامەزراوە ١٩٤٨"},
            region="IQ-BA",
        ),
    ),
    ("node.descriptor minimal", NodeDescriptor(name={"en": "U"}, endpoints=("https://u.example",))),
    (
        "peer.introduce",
        PeerIntroduce(
            inviter=seed("inviter"),
            invite=seed("invite")[:16],
            proof=seed("proof"),
            endpoint="https://teachers.example/",
        ),
    ),
    ("peer.alliance", PeerAlliance(peer=seed("peer"), state="ended")),
    (
        "decision.outcome supermajority",
        DecisionOutcome(
            proposal=seed("proposal")[:16],
            title={"en": "Do we join the port strike?"},
            method="supermajority",
            fraction=Ratio(2, 3),
            quorum=Ratio(1, 2),
            ballot="secret",
            electorate=120,
            turnout=87,
            options=("yes", "no"),
            counts=(61, 18),
            abstain=6,
            blocks=2,
            outcome="adopted",
            winner=0,
            opened=T0 - 7 * 86_400,
            closed=T0 - 86_400,
        ),
    ),
    (
        "decision.outcome minimal",
        DecisionOutcome(
            proposal=seed("proposal-2")[:16],
            title={"en": "Lunch?"},
            method="consent",
            quorum=Ratio(0, 1),
            ballot="open",
            electorate=0,
            turnout=0,
            options=("soup",),
            counts=(0,),
            outcome="no_quorum",
            opened=T0,
            closed=T0,
        ),
    ),
    (
        "call.issue full",
        CallIssue(
            kind="strike",
            title=TITLE,
            text={"ar": "ندعو جميع العمال إلى الإضراب.", "en": "We call every worker out."},
            starts=T0 + 14 * 86_400,
            ends=T0 + 15 * 86_400,
            location=Location("IQ-BA", "Umm Qasr"),
            sectors=("oil", "ports"),
            regions=("IQ-BA",),
            threshold=Threshold(pledges=5_000, orgs=3, deadline=T0 + 10 * 86_400),
        ),
    ),
    ("call.issue minimal", CallIssue(kind="petition", title={"en": "t"}, text={"en": "x"})),
    (
        "call.amend",
        CallAmend(call=CALL, starts=T0, ends=T0 + 1, location=Location("IQ-SU"), sectors=()),
    ),
    ("call.amend title only", CallAmend(call=CALL, title={"en": "New title"})),
    ("call.cancel", CallCancel(call=CALL, reason={"en": "Demands met."})),
    ("call.cancel minimal", CallCancel(call=CALL)),
    ("call.update", CallUpdate(call=CALL, text={"en": "Assembly points published."})),
    ("call.conclude", CallConclude(call=CALL, outcome="partial", text={"en": "Thank you."})),
    ("call.conclude minimal", CallConclude(call=CALL, outcome="called_off")),
    ("call.endorse", CallEndorse(call=CALL, decision=SUMMARY, note={"en": "With you."})),
    (
        "call.decline",
        CallDecline(
            call=CALL,
            decision=DecisionSummary(
                by="admins", electorate=3, turnout=3, yes=1, no=2, decision=seed("d")
            ),
        ),
    ),
    ("call.tally", CallTally(call=CALL, seq=4, firm=1_200, conditional=300, bucket=50, k=10)),
    ("call.tally zero", CallTally(call=CALL, seq=1, firm=0, conditional=0, bucket=1, k=1)),
    ("call.activate", CallActivate(call=CALL, tallies=TALLY_IDS, pledges=5_150, orgs=3)),
    (
        "coalition.found",
        CoalitionFound(COALITION, SALT, {"en": "Southern unions"}, {"en": "Strikes together."}),
    ),
    ("coalition.found minimal", CoalitionFound(COALITION, SALT, {"ar": "نقابات الجنوب"})),
    (
        "coalition.invite",
        CoalitionInvite(
            COALITION, seed("invitee"), FOUNDER, SALT, {"en": "South"}, MEMBERS, OPEN, {"en": "Why"}
        ),
    ),
    (
        "coalition.invite minimal",
        CoalitionInvite(COALITION, seed("invitee"), FOUNDER, SALT, {"en": "S"}, MEMBERS[:1]),
    ),
    ("coalition.join", CoalitionJoin(COALITION, seed("the invite"))),
    ("coalition.leave", CoalitionLeave(COALITION)),
]
VALID_IDS = [name for name, _ in VALID]
VALID_MESSAGES = [message for _, message in VALID]


def test_every_registered_type_has_valid_instances() -> None:
    assert {type(m) for m in VALID_MESSAGES} == set(MESSAGE_TYPES.values())
    for type_, cls in MESSAGE_TYPES.items():
        assert type_ == cls.TYPE


@pytest.mark.parametrize("message", VALID_MESSAGES, ids=VALID_IDS)
def test_body_round_trip(message: Message) -> None:
    body = message.to_body()
    assert type(message).from_body(body) == message
    assert parse_body(message.TYPE, body) == message
    assert None not in body.values()  # absent optional fields are left out (§7)


@pytest.mark.parametrize("message", VALID_MESSAGES, ids=VALID_IDS)
def test_encoding_round_trip(message: Message) -> None:
    wire = encode(message.to_body())
    back = parse_body(message.TYPE, decode(wire))
    assert back == message
    assert encode(back.to_body()) == wire


def with_unknown_fields(body: dict[str, Any], cls: type[Part]) -> dict[str, Any]:
    """``body`` with unknown fields added, in nested parts as well."""
    out = dict(body)
    for name, part in cls.PARTS.items():
        if name in out:
            out[name] = with_unknown_fields(out[name], part)
    return out | {"x-future": [1, {"a": b"\x00"}], "zz": 0, "aaa": True}


@pytest.mark.parametrize("message", VALID_MESSAGES, ids=VALID_IDS)
def test_unknown_body_fields_are_ignored(message: Message) -> None:
    body = with_unknown_fields(message.to_body(), type(message))
    assert type(message).from_body(body) == message
    assert parse_body(message.TYPE, decode(encode(body))) == message


def required_fields(cls: type[Part]) -> list[str]:
    return [
        f.name
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]


MISSING_CASES = [
    pytest.param(message, name, id=f"{label} without {name}")
    for label, message in VALID
    for name in required_fields(type(message))
]
NESTED_MISSING_CASES = [
    pytest.param(message, part, name, id=f"{label}: {part} without {name}")
    for label, message in VALID
    for part, part_cls in type(message).PARTS.items()
    if getattr(message, part) is not None
    for name in required_fields(part_cls)
]


@pytest.mark.parametrize(("message", "name"), MISSING_CASES)
def test_missing_required_field(message: Message, name: str) -> None:
    body = message.to_body()
    del body[name]
    with pytest.raises(ValidationError) as caught:
        parse_body(message.TYPE, body)
    assert caught.value.code == MISSING
    assert caught.value.detail == name


OPTIONAL_CASES = [
    pytest.param(message, name, id=f"{label} with {name} nil")
    for label, message in VALID
    for name in sorted(type(message).field_names() - set(required_fields(type(message))))
]


@pytest.mark.parametrize(("message", "name"), OPTIONAL_CASES)
def test_optional_field_sent_as_nil(message: Message, name: str) -> None:
    # An optional field is absent or holds a value; nil is no field's value (§7.2).
    body = message.to_body() | {name: None}
    with pytest.raises(ValidationError) as caught:
        parse_body(message.TYPE, decode(encode(body)))
    assert caught.value.code == INVALID


@pytest.mark.parametrize(("message", "part", "name"), NESTED_MISSING_CASES)
def test_missing_required_field_of_a_part(message: Message, part: str, name: str) -> None:
    body = message.to_body()
    del body[part][name]
    with pytest.raises(ValidationError) as caught:
        parse_body(message.TYPE, body)
    assert caught.value.code == MISSING


def test_messages_are_frozen() -> None:
    message = NodeDescriptor(name={"en": "U"}, endpoints=("https://u.example",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.region = "IQ-NI"  # type: ignore[misc]


# ---------------------------------------------------------------- invalid constructions

# Keyword arguments of a valid instance of each class, to which each case applies changes.
BASE: dict[type, dict[str, Any]] = {
    NodeDescriptor: {
        "name": {"en": "Union"},
        "endpoints": ("https://u.example",),
        "langs": ("en",),
        "caps": ("calls",),
        "about": {"en": "About"},
        "region": "IQ-BA",
    },
    PeerIntroduce: {
        "inviter": seed("inviter"),
        "invite": bytes(16),
        "proof": bytes(32),
        "endpoint": "https://teachers.example",
    },
    PeerAlliance: {"peer": seed("peer"), "state": "allied"},
    DecisionOutcome: {
        "proposal": bytes(16),
        "title": {"en": "Strike?"},
        "method": "majority",
        "quorum": Ratio(1, 2),
        "ballot": "open",
        "electorate": 10,
        "turnout": 9,
        "options": ("yes", "no"),
        "counts": (5, 3),
        "abstain": 1,
        "outcome": "adopted",
        "opened": T0,
        "closed": T0 + 1,
        "winner": 0,
    },
    CallIssue: {
        "kind": "strike",
        "title": {"en": "Strike"},
        "text": {"en": "Out"},
        "starts": T0,
        "ends": T0 + 1,
        "sectors": ("ports",),
        "regions": ("IQ-BA",),
    },
    CallAmend: {"call": CALL, "text": {"en": "Changed"}},
    CallCancel: {"call": CALL, "reason": {"en": "Won"}},
    CallUpdate: {"call": CALL, "text": {"en": "News"}},
    CallConclude: {"call": CALL, "outcome": "held"},
    CallEndorse: {"call": CALL, "decision": SUMMARY, "note": {"en": "Yes"}},
    CallDecline: {"call": CALL, "decision": SUMMARY},
    CallTally: {"call": CALL, "seq": 1, "firm": 100, "conditional": 50, "bucket": 50, "k": 10},
    CallActivate: {"call": CALL, "tallies": TALLY_IDS, "pledges": 10, "orgs": 2},
    DecisionSummary: {
        "by": "vote",
        "method": "consent",
        "electorate": 10,
        "turnout": 10,
        "yes": 7,
        "no": 1,
        "abstain": 1,
        "blocks": 1,
    },
    CoalitionFound: {"coalition": COALITION, "salt": SALT, "name": {"en": "South"}},
    CoalitionInvite: {
        "coalition": COALITION,
        "invitee": seed("invitee"),
        "founder": FOUNDER,
        "salt": SALT,
        "name": {"en": "South"},
        "members": MEMBERS,
        "invites": OPEN,
        "purpose": {"en": "Why"},
    },
    CoalitionJoin: {"coalition": COALITION, "invite": seed("the invite")},
    CoalitionLeave: {"coalition": COALITION},
    Member: {"node": FOUNDER, "since": 1},
    OpenInvite: {"invite": seed("open-invite"), "invitee": seed("invitee-2"), "created": T0},
    Ratio: {"num": 1, "den": 2},
    Location: {"region": "IQ-BA", "place": "Umm Qasr"},
    Threshold: {"pledges": 100, "orgs": 2, "deadline": T0},
}
SEVENTEEN_LANGS = {f"l{chr(97 + i)}": "x" for i in range(17)}
TEXT_FIELD_CASES: list[tuple[str, Any, ErrorCode]] = [
    ("empty language map", {}, INVALID),
    ("17 languages", SEVENTEEN_LANGS, INVALID),
    ("upper-case tag", {"EN": "x"}, INVALID),
    ("one-letter tag", {"e": "x"}, INVALID),
    ("tag with underscore", {"en_GB": "x"}, INVALID),
    ("trailing hyphen", {"en-": "x"}, INVALID),
    ("empty text", {"en": ""}, INVALID),
    ("text not a string", {"en": 1}, INVALID),
    ("a string, not a map", "Strike", INVALID),
    ("a list of pairs", [["en", "x"]], INVALID),
]


Case = tuple[type, str, ErrorCode, dict[str, Any], bool]


def bad(cls: type, what: str, code: ErrorCode, *, on_wire: bool = True, **changes: Any) -> Case:
    """An invalid construction. ``on_wire=False``: the same change is valid (or cannot be
    encoded) in a body, e.g. a map where the constructor wants a part."""
    return (cls, what, code, changes, on_wire)


def cases_for_text(cls: type, name: str, max_bytes: int) -> list[Case]:
    """The shared language-map cases for one multilingual field, plus its byte limit."""
    over = "ب" * (max_bytes // 2 + 1)  # 2 bytes each: within the limit in characters
    return [
        *((cls, what, code, {name: value}, True) for what, value, code in TEXT_FIELD_CASES),
        (cls, f"{max_bytes + 2} bytes of text", TOO_LONG, {name: {"en": over}}, True),
    ]


TAGS_33 = tuple(f"t{i}" for i in range(33))
INVALID_CASES: list[Case] = [
    # node.descriptor
    *cases_for_text(NodeDescriptor, "name", 512),
    *cases_for_text(NodeDescriptor, "about", 16_384),
    bad(NodeDescriptor, "no endpoint", INVALID, endpoints=()),
    bad(
        NodeDescriptor,
        "9 endpoints",
        INVALID,
        endpoints=tuple(f"https://{i}.ex" for i in "abcdefghi"),
    ),
    bad(NodeDescriptor, "endpoint not http", INVALID, endpoints=("ftp://u.example",)),
    bad(NodeDescriptor, "endpoint with a space", INVALID, endpoints=("https://u .example",)),
    bad(NodeDescriptor, "duplicate endpoint", INVALID, endpoints=("https://a.ex", "https://a.ex")),
    bad(NodeDescriptor, "endpoints a string", INVALID, endpoints="https://u.example"),
    bad(NodeDescriptor, "endpoint too long", TOO_LONG, endpoints=("https://a.ex/" + "p" * 500,)),
    bad(NodeDescriptor, "duplicate language", INVALID, langs=("en", "en")),
    bad(NodeDescriptor, "upper-case language", INVALID, langs=("EN",)),
    bad(NodeDescriptor, "17 languages", INVALID, langs=tuple(SEVENTEEN_LANGS)),
    bad(NodeDescriptor, "capability with a space", INVALID, caps=("two words",)),
    bad(NodeDescriptor, "33 capabilities", INVALID, caps=TAGS_33),
    bad(NodeDescriptor, "capability not a string", INVALID, caps=(1,)),
    bad(NodeDescriptor, "empty region", INVALID, region=""),
    bad(NodeDescriptor, "region of 65 bytes", TOO_LONG, region="R" * 65),
    bad(NodeDescriptor, "region starting with a hyphen", INVALID, region="-IQ"),
    # peer.introduce
    bad(PeerIntroduce, "inviter of 31 bytes", INVALID, inviter=ID31),
    bad(PeerIntroduce, "inviter of 33 bytes", INVALID, inviter=ID33),
    bad(PeerIntroduce, "inviter as hex", INVALID, inviter=seed("inviter").hex()),
    bad(PeerIntroduce, "inviter as bytearray", INVALID, on_wire=False, inviter=bytearray(32)),
    bad(PeerIntroduce, "invite of 15 bytes", INVALID, invite=bytes(15)),
    bad(PeerIntroduce, "proof of 31 bytes", INVALID, proof=ID31),
    bad(PeerIntroduce, "endpoint not a URL", INVALID, endpoint="teachers.example"),
    bad(PeerIntroduce, "empty endpoint", INVALID, endpoint=""),
    # peer.alliance
    bad(PeerAlliance, "peer of 31 bytes", INVALID, peer=ID31),
    bad(PeerAlliance, "unknown state", INVALID, state="enemies"),
    bad(PeerAlliance, "state not a string", INVALID, state=1),
    # decision.outcome
    *cases_for_text(DecisionOutcome, "title", 512),
    bad(DecisionOutcome, "proposal of 15 bytes", INVALID, proposal=bytes(15)),
    bad(DecisionOutcome, "unknown method", INVALID, method="plurality"),
    bad(DecisionOutcome, "supermajority without fraction", INVALID, method="supermajority"),
    bad(DecisionOutcome, "majority with fraction", INVALID, fraction=Ratio(2, 3)),
    bad(DecisionOutcome, "quorum as a map", INVALID, on_wire=False, quorum={"num": 1, "den": 2}),
    bad(DecisionOutcome, "quorum as a number", INVALID, quorum=1),
    bad(DecisionOutcome, "unknown ballot", INVALID, ballot="mixed"),
    bad(DecisionOutcome, "unknown outcome", INVALID, outcome="won"),
    bad(DecisionOutcome, "no options", INVALID, options=(), counts=()),
    bad(DecisionOutcome, "duplicate options", INVALID, options=("yes", "yes")),
    bad(DecisionOutcome, "65 options", INVALID, options=tuple(f"o{i}" for i in range(65))),
    bad(DecisionOutcome, "option too long", TOO_LONG, options=("y" * 513, "no")),
    bad(DecisionOutcome, "fewer counts than options", INVALID, counts=(8,)),
    bad(DecisionOutcome, "counts as a list", INVALID, on_wire=False, counts=[5, 3]),
    bad(DecisionOutcome, "counts as a map", INVALID, counts={"yes": 5, "no": 3}),
    bad(DecisionOutcome, "negative count", INVALID, counts=(9, -1)),
    bad(DecisionOutcome, "count not an integer", INVALID, counts=(5, "3")),
    bad(DecisionOutcome, "count a bool", INVALID, counts=(True, 7), turnout=9),
    bad(DecisionOutcome, "negative abstain", INVALID, abstain=-1, counts=(6, 4)),
    bad(DecisionOutcome, "negative electorate", INVALID, electorate=-1),
    bad(DecisionOutcome, "electorate 2^53", INVALID, on_wire=False, electorate=MAX_INT + 1),
    bad(DecisionOutcome, "closed before opened", INVALID, closed=T0 - 1),
    bad(DecisionOutcome, "negative opened", INVALID, opened=-1, closed=0),
    bad(DecisionOutcome, "winner out of range", INVALID, winner=2),
    bad(DecisionOutcome, "negative winner", INVALID, winner=-1),
    # call.issue
    *cases_for_text(CallIssue, "title", 512),
    *cases_for_text(CallIssue, "text", 16_384),
    bad(CallIssue, "unknown kind", INVALID, kind="riot"),
    bad(CallIssue, "kind in capitals", INVALID, kind="STRIKE"),
    bad(CallIssue, "negative starts", INVALID, starts=-1),
    bad(CallIssue, "ends before starts", INVALID, ends=T0 - 1),
    bad(CallIssue, "starts beyond 2^53-1", INVALID, on_wire=False, starts=MAX_INT + 1, ends=None),
    bad(CallIssue, "starts a string", INVALID, starts="tomorrow"),
    bad(CallIssue, "location as a map", INVALID, on_wire=False, location={"region": "IQ-BA"}),
    bad(CallIssue, "location as a string", INVALID, location="IQ-BA"),
    bad(
        CallIssue,
        "bad location region",
        INVALID,
        location=Location("IQ-BA").to_body() | {"region": "?"},
    ),
    bad(
        CallIssue,
        "threshold as a map",
        INVALID,
        on_wire=False,
        threshold={"pledges": 1, "orgs": 1, "deadline": 0},
    ),
    bad(
        CallIssue,
        "threshold of 0 pledges",
        INVALID,
        threshold={"pledges": 0, "orgs": 1, "deadline": 0},
    ),
    bad(CallIssue, "duplicate sector", INVALID, sectors=("oil", "oil")),
    bad(CallIssue, "33 sectors", INVALID, sectors=TAGS_33),
    bad(CallIssue, "region tag too long", TOO_LONG, regions=("R" * 65,)),
    bad(CallIssue, "region tag with a slash", INVALID, regions=("IQ/BA",)),
    bad(CallIssue, "sectors a string", INVALID, sectors="oil"),
    # call.amend
    bad(CallAmend, "call of 31 bytes", INVALID, call=ID31),
    bad(CallAmend, "changes nothing", INVALID, text=None),
    bad(CallAmend, "empty title map", INVALID, title={}),
    bad(CallAmend, "ends before starts", INVALID, starts=T0, ends=T0 - 1),
    bad(CallAmend, "duplicate region", INVALID, regions=("IQ-BA", "IQ-BA")),
    bad(CallAmend, "location as a map", INVALID, on_wire=False, location={"region": "IQ-BA"}),
    # call.cancel, call.update, call.conclude
    *cases_for_text(CallCancel, "reason", 16_384),
    bad(CallCancel, "call of 31 bytes", INVALID, call=ID31),
    bad(CallCancel, "call as a string", INVALID, call=CALL.hex()),
    *cases_for_text(CallUpdate, "text", 16_384),
    bad(CallUpdate, "call of 33 bytes", INVALID, call=ID33),
    bad(CallConclude, "call of 31 bytes", INVALID, call=ID31),
    bad(CallConclude, "unknown outcome", INVALID, outcome="won"),
    bad(CallConclude, "empty text map", INVALID, text={}),
    # call.endorse, call.decline
    bad(CallEndorse, "call of 31 bytes", INVALID, call=ID31),
    bad(CallEndorse, "decision as a map", INVALID, on_wire=False, decision=SUMMARY.to_body()),
    bad(CallEndorse, "decision a list", INVALID, decision=[1]),
    bad(
        CallEndorse,
        "decision turnout off by one",
        INVALID,
        decision=SUMMARY.to_body() | {"turnout": 88},
    ),
    bad(CallEndorse, "empty note", INVALID, note={}),
    bad(CallEndorse, "note in a bad tag", INVALID, note={"English": "x"}),
    bad(CallDecline, "call of 31 bytes", INVALID, call=ID31),
    bad(CallDecline, "decision as a string", INVALID, decision="vote"),
    # call.tally
    bad(CallTally, "call of 31 bytes", INVALID, call=ID31),
    bad(CallTally, "seq 0", INVALID, seq=0),
    bad(CallTally, "negative firm", INVALID, firm=-50),
    bad(CallTally, "firm a bool", INVALID, firm=True, bucket=1, k=1),
    bad(CallTally, "bucket 0", INVALID, bucket=0),
    bad(CallTally, "bucket 1001", INVALID, bucket=1001, firm=0, conditional=0),
    bad(CallTally, "k 0", INVALID, k=0),
    bad(CallTally, "k 1001", INVALID, k=1001, firm=0, conditional=0),
    bad(CallTally, "firm beyond 2^53-1", INVALID, on_wire=False, firm=MAX_INT + 1, bucket=1),
    # call.activate
    bad(CallActivate, "call of 31 bytes", INVALID, call=ID31),
    bad(CallActivate, "no tallies", INVALID, tallies=()),
    bad(CallActivate, "unsorted tallies", INVALID, tallies=TALLY_IDS[::-1]),
    bad(CallActivate, "duplicate tally", INVALID, tallies=(TALLY_IDS[0], TALLY_IDS[0])),
    bad(CallActivate, "tally id of 31 bytes", INVALID, tallies=(ID31,)),
    bad(
        CallActivate,
        "257 tallies",
        INVALID,
        tallies=tuple(sorted(seed(str(i)) for i in range(257))),
    ),
    bad(CallActivate, "tallies a bin", INVALID, tallies=TALLY_IDS[0]),
    bad(CallActivate, "pledges 0", INVALID, pledges=0),
    bad(CallActivate, "orgs 0", INVALID, orgs=0),
    bad(CallActivate, "more orgs than tallies", INVALID, orgs=4),
    # coalition.*
    *cases_for_text(CoalitionFound, "name", 512),
    bad(CoalitionFound, "coalition of 31 bytes", INVALID, coalition=ID31),
    bad(CoalitionFound, "salt of 33 bytes", INVALID, salt=ID33),
    bad(CoalitionFound, "empty purpose", INVALID, purpose={}),
    *cases_for_text(CoalitionInvite, "purpose", 16_384),
    bad(CoalitionInvite, "coalition not of founder and salt", INVALID, coalition=seed("other")),
    bad(CoalitionInvite, "another founder", INVALID, founder=seed("thief")),
    bad(CoalitionInvite, "invitee of 31 bytes", INVALID, invitee=ID31),
    bad(CoalitionInvite, "no members", INVALID, members=()),
    bad(CoalitionInvite, "members a map", INVALID, members={"node": FOUNDER}),
    bad(CoalitionInvite, "member a list", INVALID, members=[[FOUNDER, 1]]),
    bad(CoalitionInvite, "member since 0", INVALID, members=[{"node": FOUNDER, "since": 0}]),
    bad(CoalitionInvite, "member without since", MISSING, members=[{"node": FOUNDER}]),
    bad(
        CoalitionInvite,
        "a member twice",
        INVALID,
        on_wire=False,
        members=(Member(FOUNDER, 1), Member(FOUNDER, 2)),
    ),
    bad(
        CoalitionInvite,
        "257 members",
        INVALID,
        members=[{"node": seed(f"m{i}"), "since": 1} for i in range(257)],
    ),
    bad(CoalitionInvite, "invitee a member", INVALID, invitee=FOUNDER),
    bad(
        CoalitionInvite,
        "open invite of 31 bytes",
        INVALID,
        invites=[{"invite": ID31, "invitee": FOUNDER, "created": 0}],
    ),
    bad(CoalitionInvite, "an open invite twice", INVALID, on_wire=False, invites=OPEN + OPEN),
    bad(CoalitionJoin, "invite of 31 bytes", INVALID, invite=ID31),
    bad(CoalitionJoin, "coalition a string", INVALID, coalition=COALITION.hex()),
    bad(CoalitionLeave, "coalition of 33 bytes", INVALID, coalition=ID33),
    bad(Member, "node of 31 bytes", INVALID, node=ID31),
    bad(OpenInvite, "negative created", INVALID, created=-1),
    # parts
    bad(DecisionSummary, "unknown decider", INVALID, by="members"),
    bad(DecisionSummary, "vote without method", INVALID, method=None),
    bad(DecisionSummary, "admins with method", INVALID, by="admins"),
    bad(DecisionSummary, "unknown method", INVALID, method="plurality"),
    bad(DecisionSummary, "decision of 31 bytes", INVALID, decision=ID31),
    bad(DecisionSummary, "negative yes", INVALID, yes=-1, no=9),
    bad(Ratio, "den 0", INVALID, den=0, num=0),
    bad(Ratio, "num above den", INVALID, num=3),
    bad(Ratio, "negative num", INVALID, num=-1),
    bad(Ratio, "den above a million", INVALID, den=1_000_001),
    bad(Location, "region with a space", INVALID, region="IQ BA"),
    bad(Location, "empty place", INVALID, place=""),
    bad(Location, "place of 201 bytes", TOO_LONG, place="p" * 201),
    bad(Threshold, "pledges 0", INVALID, pledges=0),
    bad(Threshold, "orgs 0", INVALID, orgs=0),
    bad(Threshold, "orgs 257", INVALID, orgs=257),
    bad(Threshold, "negative deadline", INVALID, deadline=-1),
]


INVALID_PARAMS = [
    pytest.param(cls, changes, code, id=f"{cls.__name__}: {what}")
    for cls, what, code, changes, _ in INVALID_CASES
]
WIRE_PARAMS = [
    pytest.param(cls, changes, code, id=f"{cls.__name__}: {what}")
    for cls, what, code, changes, on_wire in INVALID_CASES
    if on_wire
]


def test_every_class_has_a_base_and_invalid_cases() -> None:
    covered = {case[0] for case in INVALID_CASES}
    assert set(MESSAGE_TYPES.values()) <= covered
    assert covered <= set(BASE)
    for cls, kwargs in BASE.items():
        cls(**kwargs)  # every base is valid, so each case fails for its own change


@pytest.mark.parametrize(("cls", "changes", "code"), INVALID_PARAMS)
def test_invalid_construction(cls: type[Any], changes: dict[str, Any], code: ErrorCode) -> None:
    with pytest.raises(ValidationError) as caught:
        cls(**(BASE[cls] | changes))
    assert caught.value.code == code


@pytest.mark.parametrize(("cls", "changes", "code"), WIRE_PARAMS)
def test_invalid_body(cls: type[Any], changes: dict[str, Any], code: ErrorCode) -> None:
    # The same cases as bodies off the wire: a changed field set to None is left out.
    body = cls(**BASE[cls]).to_body()
    for name, value in changes.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value.to_body() if isinstance(value, Part) else value
    wire = encode(body)
    with pytest.raises(ValidationError) as caught:
        cls.from_body(decode(wire))
    assert caught.value.code == code


@pytest.mark.parametrize("counts", [5, None, True], ids=["int", "nil", "bool"])
def test_decision_outcome_counts_not_an_array(counts: object) -> None:
    # A body off the wire whose counts is not an array must be a ValidationError like any
    # other bad field, not an exception from inside the constructor.
    body = DecisionOutcome(**BASE[DecisionOutcome]).to_body() | {"counts": counts}
    with pytest.raises(ValidationError) as caught:
        parse_body(DecisionOutcome.TYPE, decode(encode(body)))
    assert caught.value.code == INVALID


@pytest.mark.parametrize(
    "changes",
    [{"name": {"en": "\ud800"}}, {"region": "IQ\udfff"}, {"endpoints": ("https://a.ex/\ud800",)}],
    ids=["name", "region", "endpoint"],
)
def test_strings_with_lone_surrogates_are_invalid(changes: dict[str, Any]) -> None:
    # Python strings with lone surrogates have no UTF-8 form; the node gets them from JSON
    # ("\ud800" is valid JSON). The constructor must refuse them with a ValidationError.
    with pytest.raises(ValidationError) as caught:
        NodeDescriptor(**(BASE[NodeDescriptor] | changes))
    assert caught.value.code == INVALID


# ---------------------------------------------------------------- arithmetic


@pytest.mark.parametrize(
    ("firm", "conditional", "bucket", "k"),
    [
        (0, 0, 1, 1),
        (0, 0, 50, 10),
        (10, 0, 10, 10),  # exactly k
        (50, 0, 50, 10),
        (1_200, 300, 50, 10),
        (0, 100, 100, 100),
        (1, 1, 1, 1),
        (1_000_000, 0, 1_000, 1_000),
    ],
)
def test_tally_counts_accepted(firm: int, conditional: int, bucket: int, k: int) -> None:
    tally = CallTally(call=CALL, seq=1, firm=firm, conditional=conditional, bucket=bucket, k=k)
    assert tally.total == firm + conditional


@pytest.mark.parametrize(
    ("firm", "conditional", "bucket", "k"),
    [
        (25, 0, 50, 10),  # not a multiple of the bucket
        (0, 55, 50, 10),
        (51, 0, 50, 1),
        (1, 0, 1, 2),  # between 1 and k-1
        (5, 0, 1, 10),
        (9, 0, 1, 10),
        (0, 9, 3, 10),
        (50, 0, 50, 100),  # a multiple of the bucket but still below k
        (950, 0, 50, 1000),
    ],
)
def test_tally_counts_refused(firm: int, conditional: int, bucket: int, k: int) -> None:
    with pytest.raises(ValidationError) as caught:
        CallTally(call=CALL, seq=1, firm=firm, conditional=conditional, bucket=bucket, k=k)
    assert caught.value.code == INVALID


def outcome(
    electorate: int, turnout: int, counts: tuple[int, ...], abstain: int, blocks: int
) -> DecisionOutcome:
    kwargs = BASE[DecisionOutcome] | {
        "electorate": electorate,
        "turnout": turnout,
        "options": tuple(f"option {i}" for i in range(len(counts))),
        "counts": counts,
        "abstain": abstain,
        "blocks": blocks,
    }
    return DecisionOutcome(**kwargs)


def summary(
    electorate: int, turnout: int, counts: tuple[int, ...], abstain: int, blocks: int
) -> DecisionSummary:
    yes, no = counts
    return DecisionSummary(
        by="organisers",
        electorate=electorate,
        turnout=turnout,
        yes=yes,
        no=no,
        abstain=abstain,
        blocks=blocks,
    )


TURNOUT_OK = [
    (0, 0, (0, 0), 0, 0),
    (10, 10, (4, 3), 2, 1),  # everyone voted
    (10, 7, (4, 3), 0, 0),
    (100, 3, (0, 0), 3, 0),  # only abstentions
    (100, 2, (0, 0), 0, 2),  # only blocks
]
TURNOUT_BAD = [
    (10, 8, (4, 3), 0, 0),  # turnout above the sum
    (10, 6, (4, 3), 0, 0),  # below it
    (10, 9, (4, 3), 1, 0),  # abstentions left out
    (10, 8, (4, 3), 0, 2),  # blocks left out
    (6, 7, (4, 3), 0, 0),  # sum right, turnout above the electorate
    (0, 1, (1, 0), 0, 0),
]


@pytest.mark.parametrize("make", [outcome, summary], ids=["DecisionOutcome", "DecisionSummary"])
@pytest.mark.parametrize(("electorate", "turnout", "counts", "abstain", "blocks"), TURNOUT_OK)
def test_turnout_accepted(
    make: Callable[..., Part],
    electorate: int,
    turnout: int,
    counts: tuple[int, ...],
    abstain: int,
    blocks: int,
) -> None:
    make(electorate, turnout, counts, abstain, blocks)


@pytest.mark.parametrize("make", [outcome, summary], ids=["DecisionOutcome", "DecisionSummary"])
@pytest.mark.parametrize(("electorate", "turnout", "counts", "abstain", "blocks"), TURNOUT_BAD)
def test_turnout_refused(
    make: Callable[..., Part],
    electorate: int,
    turnout: int,
    counts: tuple[int, ...],
    abstain: int,
    blocks: int,
) -> None:
    with pytest.raises(ValidationError) as caught:
        make(electorate, turnout, counts, abstain, blocks)
    assert caught.value.code == INVALID


def test_outcome_turnout_counts_every_option() -> None:
    assert outcome(100, 21, (1, 2, 3, 4, 5), 6, 0).turnout == 21
    with pytest.raises(ValidationError):
        outcome(100, 20, (1, 2, 3, 4, 5), 6, 0)


# ---------------------------------------------------------------- check_activation (§9.3)

THRESHOLD = Threshold(pledges=1_000, orgs=2, deadline=T0)
OTHER_CALL = seed("other call")


def record(
    label: str,
    firm: int,
    conditional: int = 0,
    *,
    call: bytes = CALL,
    created: int = T0 - 10,
    origin: str | None = None,
) -> TallyRecord:
    tally = CallTally(call=call, seq=1, firm=firm, conditional=conditional, bucket=50, k=10)
    return TallyRecord(
        id=seed(f"tally {label}"),
        origin=seed(f"org {origin or label}"),
        created=created,
        tally=tally,
    )


def claim(
    records: list[TallyRecord],
    *,
    pledges: int | None = None,
    orgs: int | None = None,
    call: bytes = CALL,
) -> CallActivate:
    """The activation that truthfully sums ``records``, unless told otherwise."""
    return CallActivate(
        call=call,
        tallies=tuple(sorted(r.id for r in records)),
        pledges=sum(r.tally.total for r in records) if pledges is None else pledges,
        orgs=sum(1 for r in records if r.tally.total) if orgs is None else orgs,
    )


# 1000 pledges in 2 organisations: exactly the threshold; c's zero tally counts for nothing.
GOOD = [record("a", 600, 100), record("b", 300), record("c", 0)]


def test_activation_valid() -> None:
    check_activation(CALL, THRESHOLD, claim(GOOD), GOOD)
    check_activation(CALL, THRESHOLD, claim(GOOD), GOOD[::-1])  # order does not matter
    on_time = [*GOOD[:2], record("c", 0, created=T0)]  # created at the deadline
    check_activation(CALL, THRESHOLD, claim(on_time), on_time)


UNPROVEN = [
    pytest.param(
        CALL,
        THRESHOLD,
        claim(GOOD, call=OTHER_CALL),
        GOOD,
        id="activation for another call",
    ),
    pytest.param(
        CALL,
        THRESHOLD,
        claim([*GOOD[:2], record("c", 50, call=OTHER_CALL)]),
        [*GOOD[:2], record("c", 50, call=OTHER_CALL)],
        id="a tally for another call",
    ),
    pytest.param(
        CALL,
        THRESHOLD,
        claim([*GOOD[:2], record("c", 0, created=T0 + 1)]),
        [*GOOD[:2], record("c", 0, created=T0 + 1)],
        id="a tally created after the deadline",
    ),
    pytest.param(
        CALL,
        THRESHOLD,
        claim([*GOOD, record("a2", 100, origin="a")]),
        [*GOOD, record("a2", 100, origin="a")],
        id="two tallies from one origin",
    ),
    pytest.param(
        CALL, THRESHOLD, claim(GOOD, pledges=1_050), GOOD, id="claimed pledges above the sum"
    ),
    pytest.param(CALL, THRESHOLD, claim(GOOD, pledges=950), GOOD, id="claimed pledges below"),
    pytest.param(CALL, THRESHOLD, claim(GOOD, orgs=3), GOOD, id="claimed orgs above the count"),
    pytest.param(CALL, THRESHOLD, claim(GOOD, orgs=1), GOOD, id="claimed orgs below the count"),
    pytest.param(
        CALL,
        THRESHOLD,
        claim([record("a", 600, 50), record("b", 300)]),
        [record("a", 600, 50), record("b", 300)],
        id="950 pledges, below the threshold of 1000",
    ),
    pytest.param(
        CALL,
        Threshold(pledges=1_000, orgs=3, deadline=T0),
        claim(GOOD),
        GOOD,
        id="too few organisations with non-zero tallies",
    ),
    pytest.param(CALL, THRESHOLD, claim(GOOD), GOOD[:2], id="the proof names a tally not supplied"),
    pytest.param(
        CALL,
        THRESHOLD,
        claim(GOOD[:2]),
        GOOD,
        id="a tally supplied that the proof does not name",
    ),
]


@pytest.mark.parametrize(("call_id", "threshold", "activate", "tallies"), UNPROVEN)
def test_activation_unproven(
    call_id: bytes, threshold: Threshold, activate: CallActivate, tallies: list[TallyRecord]
) -> None:
    with pytest.raises(ValidationError) as caught:
        check_activation(call_id, threshold, activate, tallies)
    assert caught.value.code == ErrorCode.ACTIVATION_UNPROVEN


# ---------------------------------------------------------------- any body off the wire

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-MAX_INT, MAX_INT)
    | st.text(max_size=12)
    | st.binary(min_size=15, max_size=33)  # around the 16- and 32-byte ids
)
PROFILE_VALUES = (
    SCALARS
    | st.lists(SCALARS, max_size=4)
    | st.dictionaries(st.text(max_size=6), SCALARS | st.lists(SCALARS, max_size=3), max_size=4)
)
FIELD_CASES = [
    pytest.param(message, name, id=f"{label}.{name}")
    for label, message in VALID
    for name in sorted(type(message).field_names())
]


@settings(max_examples=15, deadline=None)
@given(value=PROFILE_VALUES)
@pytest.mark.parametrize(("message", "name"), FIELD_CASES)
def test_any_value_in_any_field_is_a_message_or_a_validation_error(
    message: Message, name: str, value: Any
) -> None:
    body = message.to_body() | {name: value}
    try:
        parse_body(message.TYPE, decode(encode(body)))
    except ValidationError:
        return
