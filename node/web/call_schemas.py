"""Request and response schemas of the call, pledge and notification endpoints
(node.web.schema).

Titles and texts are maps from language to text. Requests take the languages below; the
protocol's byte limits (a title 512 bytes of UTF-8, a text 16,384) are checked by the
service, which answers ``invalid_field`` when Arabic or Kurdish text fits the character
limit here and not the byte limit. Responses show whatever languages a call carries.
Ids: ``id``/``call_id`` are this node's numbers for a call; ``call`` is its protocol id (the
``call.issue`` envelope's, hex), the same on every node.
"""

from __future__ import annotations

from typing import Final

from node.services.calls import MAX_MEETING_POINT
from node.services.pledges import KINDS as PLEDGE_KINDS
from node.storage.calls import STATES
from node.web.schema import Schema, array, boolean, extend, integer, obj, string
from protocol.calls import KINDS

__all__ = [
    "CALL",
    "CALL_CHANGES",
    "CALL_DRAFT",
    "CALL_FILTER",
    "CALL_SUMMARY",
    "CANCELLATION",
    "CONCLUSION",
    "DECISION",
    "MY_PLEDGE",
    "NEWS",
    "NOTIFICATION",
    "PLEDGE",
]

TIME = "unix time, seconds"
MAX_TIME: Final = 2**53 - 1
LANGS: Final = ("ar", "ckb", "en", "kmr", "fa", "tr")
HEX_ID: Final = r"[0-9a-f]{64}"
TAG: Final = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}"
STANCES: Final = ("own", "undecided", "voting", "endorsed", "declined")
NOTICES: Final = ("activated", "cancelled", "amended", "void")


def _texts(name: str, max_length: int, doc: str, *, multiline: bool = False) -> Schema:
    return Schema(
        name,
        {
            lang: string(required=False, min_length=1, max_length=max_length,
                         multiline=multiline)
            for lang in LANGS
        },
        doc,
    )  # fmt: skip


TITLE: Final = _texts("CallTitle", 512, "A title per language: at least one.")
TEXT: Final = _texts("CallText", 16_384, "A text per language: at least one.", multiline=True)


LOCATION: Final = Schema(
    "CallLocation",
    {
        "region": string("a coarse public region, e.g. IQ-BA", max_length=64, pattern=TAG),
        "place": string("a public place name", required=False, min_length=1, max_length=200),
    },
    "A coarse public location; the exact meeting point goes in meeting_point.",
)
THRESHOLD: Final = Schema(
    "CallThreshold",
    {
        "pledges": integer("pledges needed", minimum=1, maximum=MAX_TIME),
        "orgs": integer("organisations needed", minimum=1, maximum=256),
        "deadline": integer("by when; " + TIME, minimum=0, maximum=MAX_TIME),
    },
    "The call goes ahead when at least `pledges` pledges across at least `orgs` "
    "organisations are counted by `deadline`.",
)
TAGS: Final = array(string(max_length=64, pattern=TAG), max_length=32)
MEETING_POINT: Final = string(
    "the exact meeting point: kept on this node, never sent to others", required=False,
    nullable=True, min_length=1, max_length=MAX_MEETING_POINT, multiline=True,
)  # fmt: skip

CALL_DRAFT: Final = Schema(
    "CallDraft",
    {
        "kind": string(choices=tuple(sorted(KINDS))),
        "title": obj(TITLE),
        "text": obj(TEXT),
        "audience": string("allies (default), public, or coalition:<id> of a coalition "
                           "this node is a member of",
                           required=False, max_length=80,
                           pattern=r"allies|public|coalition:[0-9a-f]{64}"),
        "starts": integer(TIME, required=False, nullable=True, minimum=0, maximum=MAX_TIME),
        "ends": integer(TIME, required=False, nullable=True, minimum=0, maximum=MAX_TIME),
        "location": obj(LOCATION, required=False, nullable=True),
        "meeting_point": MEETING_POINT,
        "sectors": array(string(max_length=64, pattern=TAG), "e.g. oil, education",
                         required=False, max_length=32),
        "regions": array(string(max_length=64, pattern=TAG), "e.g. IQ-BA", required=False,
                         max_length=32),
        "threshold": obj(THRESHOLD, "none: the call needs no activation", required=False,
                         nullable=True),
    },
    "A call to action to sign and send to the audience.",
)  # fmt: skip
CALL_CHANGES: Final = Schema(
    "CallChanges",
    {
        "title": obj(TITLE, required=False),
        "text": obj(TEXT, required=False),
        "starts": integer(TIME, required=False, minimum=0, maximum=MAX_TIME),
        "ends": integer(TIME, required=False, minimum=0, maximum=MAX_TIME),
        "location": obj(LOCATION, required=False),
        "sectors": array(string(max_length=64, pattern=TAG), required=False, max_length=32),
        "regions": array(string(max_length=64, pattern=TAG), required=False, max_length=32),
        "meeting_point": MEETING_POINT,
    },
    "Only the fields sent change; kind and threshold cannot (pledges were made to them).",
)  # fmt: skip
CANCELLATION: Final = Schema(
    "CallCancellation", {"reason": obj(TEXT, "why, per language", required=False, nullable=True)}
)
NEWS: Final = Schema("CallNews", {"text": obj(TEXT, "the news, per language")})
CONCLUSION: Final = Schema(
    "CallConclusion",
    {
        "outcome": string(choices=("held", "partial", "called_off")),
        "text": obj(TEXT, "a closing word, per language", required=False, nullable=True),
    },
)
DECISION: Final = Schema(
    "CallDecision",
    {
        "join": boolean("true: the organisation endorses the call; false: it declines"),
        "note": obj(TEXT, "sent with the verdict, per language", required=False,
                    nullable=True),
    },
    "An admin's or organiser's decision for the organisation, where the policy says so.",
)  # fmt: skip
PLEDGE: Final = Schema(
    "Pledge",
    {"kind": string("firm, or conditional on the threshold", choices=PLEDGE_KINDS)},
)
MY_PLEDGE: Final = Schema(
    "MyPledge",
    {
        "kind": string("null: no pledge", nullable=True, choices=PLEDGE_KINDS),
        "updated_at": integer(TIME, nullable=True),
    },
    "Your own pledge; it never leaves this node, only bucketed counts do.",
)
CALL_FILTER: Final = Schema(
    "CallFilter",
    {
        "state": string(required=False, choices=STATES),
        "call": string("a call's protocol id", required=False, pattern=HEX_ID),
        "own": boolean("true: calls this node issued; false: others'", required=False),
    },
)

# Responses

_TEXTS: Final = obj(None, "per language: language tag -> text")
_HEX: Final = string("hex", pattern=HEX_ID)
CALL_SUMMARY: Final = Schema(
    "CallSummary",
    {
        "id": integer("this node's number for the call", minimum=1),
        "call": string("the call's protocol id, the same on every node", pattern=HEX_ID),
        "origin": string("the issuing node's id", pattern=HEX_ID),
        "own": boolean("this node issued it"),
        "kind": string(choices=tuple(sorted(KINDS))),
        "title": _TEXTS, "text": _TEXTS,
        "audience": string(),
        "starts": integer(TIME, nullable=True), "ends": integer(TIME, nullable=True),
        "location": obj(LOCATION, nullable=True),
        "sectors": array(string()), "regions": array(string()),
        "threshold": obj(THRESHOLD, nullable=True),
        "state": string(choices=STATES),
        "stance": string("this organisation's position: own (it issued the call), undecided, "
                         "voting, endorsed, declined", choices=STANCES),
        "outcome": string("how the issuer concluded it", nullable=True),
        "note": obj(None, "the cancel reason or closing word, per language", nullable=True),
        "created_at": integer(TIME),
    },
)  # fmt: skip
PROGRESS: Final = Schema(
    "CallProgress",
    {"pledges": integer(minimum=0), "orgs": integer(minimum=0), "met": boolean()},
    "Pledges and organisations counted by the latest tallies held (by the deadline).",
)
VERDICT: Final = Schema(
    "CallVerdict",
    {
        "origin": _HEX, "name": string("the organisation, if known", nullable=True),
        "verdict": string(choices=("endorse", "decline")),
        "by": string(choices=("admins", "organisers", "vote")),
        "method": string("for a vote", nullable=True),
        "electorate": integer(minimum=0), "turnout": integer(minimum=0),
        "yes": integer(minimum=0), "no": integer(minimum=0), "abstain": integer(minimum=0),
        "blocks": integer(minimum=0),
        "decision": string("id of its decision.outcome", nullable=True, pattern=HEX_ID),
        "note": obj(None, nullable=True), "created_at": integer(TIME),
    },
    "One organisation's decision on the call, and how it decided.",
)  # fmt: skip
TALLY: Final = Schema(
    "CallTally",
    {
        "id": _HEX, "origin": _HEX, "name": string(nullable=True), "seq": integer(minimum=1),
        "firm": integer(minimum=0), "conditional": integer(minimum=0),
        "bucket": integer(minimum=1), "k": integer(minimum=1), "created_at": integer(TIME),
        "equivocation": boolean("another tally with this seq exists: evidence"),
    },
    "An organisation's aggregate pledges: rounded down to the bucket, 0 below k.",
)  # fmt: skip
ACTIVATION: Final = Schema(
    "CallActivation",
    {
        "id": _HEX,
        "origin": _HEX,
        "pledges": integer(minimum=1),
        "orgs": integer(minimum=1),
        "created_at": integer(TIME),
    },
)
UPDATE: Final = Schema("CallUpdate", {"text": _TEXTS, "created_at": integer(TIME)})
PENDING: Final = Schema(
    "PendingActivation",
    {"id": _HEX, "origin": _HEX, "missing": array(_HEX, "tallies not held yet")},
)
EVIDENCE: Final = Schema(
    "CallEvidence",
    {"equivocations": array(obj(TALLY)), "pending_activations": array(obj(PENDING))},
    "For admins: equivocating tallies, and activations waiting for tallies.",
)
CALL: Final = extend(
    CALL_SUMMARY, "Call", "A call with what every organisation did about it.",
    origin_name=string("the issuing organisation, if known", nullable=True),
    meeting_point=string("this node's own calls only", nullable=True),
    progress=obj(PROGRESS, "null without a threshold", nullable=True),
    endorsements=array(obj(VERDICT)),
    tallies=array(obj(TALLY), doc="each organisation's latest"),
    activation=obj(ACTIVATION, nullable=True),
    updates=array(obj(UPDATE), doc="the issuer's news, oldest first"),
    proposal=string("the \"do we join?\" proposal's public id", nullable=True),
    my_pledge=string(nullable=True, choices=PLEDGE_KINDS),
    evidence=obj(EVIDENCE, "admins only; null for others", nullable=True),
)  # fmt: skip
NOTIFICATION: Final = Schema(
    "Notification",
    {
        "id": integer(minimum=1), "kind": string(choices=NOTICES),
        "call_id": integer(minimum=1), "call": _HEX, "title": _TEXTS,
        "created_at": integer(TIME), "read": boolean(),
    },
    "A call you may care about was activated, cancelled, amended or voided.",
)  # fmt: skip
