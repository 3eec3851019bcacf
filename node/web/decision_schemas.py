"""Request and response schemas of the decision endpoints (node.web.schema).

Text limits here are in characters; the decisions service also checks UTF-8 bytes (a title
or an option at most 512, a body at most 16,384) and answers ``invalid_title``,
``invalid_options`` or ``invalid_body`` when Arabic or Kurdish text is within the one and
not the other.
"""

from __future__ import annotations

from typing import Final

from node.services.counting import METHODS
from node.services.decisions import MAX_BODY as MAX_TEXT
from node.services.decisions import MAX_LABEL, MAX_OPTIONS, MAX_TITLE, MIN_OPTIONS
from node.storage.decisions import STATES
from node.web.schema import Schema, array, boolean, integer, obj, string

__all__ = [
    "BALLOT_CHOICE",
    "DRAFT",
    "MY_VOTE",
    "PROPOSAL",
    "PROPOSAL_FILTER",
    "RESULT_CHECK",
    "SIGNED_RESULT",
    "VOTE",
    "VOTER",
]

TIME = "unix time, seconds"
MAX_TIME: Final = 2**53 - 1
HEX_ID: Final = r"[0-9a-f]{32}"
BALLOTS: Final = ("open", "secret")
CHOICES: Final = ("option", "abstain", "block")

RATIO: Final = Schema(
    "Ratio",
    {"num": integer(minimum=0, maximum=1_000_000), "den": integer(minimum=1, maximum=1_000_000)},
    "A fraction num/den with num <= den.",
)
DECISION_RULE: Final = Schema(
    "DecisionRule",
    {
        "method": string(choices=tuple(sorted(METHODS))),
        "quorum": obj(RATIO, "share of the electorate whose ballots are needed"),
        "fraction": obj(RATIO, "a supermajority's share (above 1/2); null otherwise",
                        nullable=True),
    },
    "How a proposal is decided (the counting rules are in SPEC §8.4).",
)  # fmt: skip

DRAFT: Final = Schema(
    "ProposalDraft",
    {
        "title": string(min_length=1, max_length=MAX_TITLE),
        "body": string("the text put to the members (default empty)", required=False,
                       max_length=MAX_TEXT, multiline=True),
        "options": array(string(min_length=1, max_length=MAX_LABEL), "distinct labels",
                         min_length=MIN_OPTIONS, max_length=MAX_OPTIONS),
        "method": string(choices=tuple(sorted(METHODS))),
        "fraction": obj(RATIO, "for a supermajority only (above 1/2)", required=False,
                        nullable=True),
        "quorum": obj(RATIO, "share of the electorate whose ballots are needed"),
        "ballot": string("secret: after close nothing joins a voter to a choice",
                         choices=BALLOTS),
        "opens_at": integer(f"{TIME}; now or within a year (default now)", required=False,
                            minimum=0, maximum=MAX_TIME),
        "closes_at": integer(f"{TIME}; one minute to 90 days after opening", minimum=0,
                             maximum=MAX_TIME),
    },
    "A question put to the members.",
)  # fmt: skip

OUTCOME: Final = Schema(
    "Outcome",
    {
        "proposal": string("public id, hex", pattern=HEX_ID),
        "method": string(choices=tuple(sorted(METHODS))),
        "quorum": obj(RATIO),
        "fraction": obj(RATIO, nullable=True),
        "ballot": string(choices=BALLOTS),
        "options": array(string()),
        "electorate": integer("members active at close, and voters who no longer are",
                              minimum=0),
        "turnout": integer("ballots cast, abstentions and blocks included", minimum=0),
        "counts": array(integer(minimum=0), "ballots for each option, in option order"),
        "abstain": integer(minimum=0),
        "blocks": integer(minimum=0),
        "outcome": string(choices=("adopted", "rejected", "no_quorum")),
        "winner": integer("index of the adopted option", nullable=True, minimum=0),
        "opened": integer(TIME),
        "closed": integer(TIME),
    },
    "A decoded decision.outcome: the counts and what they decided.",
)  # fmt: skip

PROPOSAL: Final = Schema(
    "Proposal",
    {
        "id": string("public id, hex", pattern=HEX_ID),
        "title": string(),
        "body": string(multiline=True),
        "options": array(string()),
        "rule": obj(DECISION_RULE),
        "ballot": string(choices=BALLOTS),
        "opens_at": integer(TIME),
        "closes_at": integer(TIME),
        "state": string("by the clock; closed once voting has ended", choices=STATES),
        "created_by": integer("member id", nullable=True),
        "created_at": integer(TIME),
        "closed_at": integer("when it was counted or cancelled", nullable=True),
        "result": obj(OUTCOME, "null until the closed proposal is counted", nullable=True),
    },
)  # fmt: skip
PROPOSAL_FILTER: Final = Schema("ProposalFilter", {"state": string(required=False, choices=STATES)})

VOTE: Final = Schema(
    "Vote",
    {
        "choice": string("block under consent only", choices=CHOICES),
        "option": integer("the option's index, with choice 'option' only", required=False,
                          nullable=True, minimum=0, maximum=MAX_OPTIONS - 1),
    },
    "A ballot. Voting again replaces it.",
)  # fmt: skip
MY_VOTE: Final = Schema(
    "MyVote",
    {
        "voted": boolean(),
        "choice": string("null if you have not voted, and for a secret ballot after close",
                         nullable=True, choices=CHOICES),
        "option": integer(nullable=True, minimum=0),
    },
)  # fmt: skip
VOTER: Final = Schema("Voter", {"member_id": integer(minimum=1), "pseudonym": string()})
BALLOT_CHOICE: Final = Schema(
    "BallotChoice",
    {
        "member_id": integer(minimum=1),
        "pseudonym": string(),
        "choice": string(choices=CHOICES),
        "option": integer(nullable=True, minimum=0),
    },
    "Who chose what, on an open ballot.",
)

SIGNED_RESULT: Final = Schema(
    "SignedResult",
    {
        "proposal": string("public id, hex", pattern=HEX_ID),
        "envelope_id": string("SHA-256 of the envelope, hex"),
        "origin": string("this node's id, hex"),
        "seq": integer(minimum=1),
        "created": integer(TIME),
        "envelope": string("the signed envelope's wire bytes (SPEC §5.1), base64"),
        "summary": obj(OUTCOME),
    },
    "The signed decision.outcome, as any node can verify it.",
)  # fmt: skip
RESULT_CHECK: Final = Schema(
    "ResultCheck",
    {
        "signed": obj(OUTCOME),
        "recomputed": obj(OUTCOME, "counted again from the stored ballots"),
        "matches": boolean(),
        "signature_valid": boolean("verified against this node's key log"),
    },
)
