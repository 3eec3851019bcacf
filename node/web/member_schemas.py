"""Request and response schemas of the member and admin endpoints (node.web.schema)."""

from __future__ import annotations

from typing import Final

from node.services.invites import MAX_EXPIRY_HOURS, MAX_USES
from node.services.members import LANGUAGES, ROLES, STATUSES
from node.services.policy import DECIDERS, VOTE_METHODS
from node.web.schema import Schema, array, boolean, extend, integer, obj, string

__all__ = [
    "AUDIT_ENTRY",
    "CREATED_INVITE",
    "CREATED_TOKEN",
    "EXPORT",
    "INVITE",
    "INVITE_REQUEST",
    "LOGIN",
    "MEMBER",
    "MEMBER_FILTER",
    "NEW_TOKEN",
    "POLICY",
    "POLICY_CHANGE",
    "PROFILE",
    "PROFILE_CHANGE",
    "REGISTRATION",
    "ROLE_CHANGE",
    "TOKEN",
    "TOKEN_LIST",
]

TIME = "unix time, seconds"
PASSWORD_MIN: Final = 10
PASSWORD_MAX: Final = 1024

CONTACT: Final = Schema(
    "Contact",
    {
        "phone": string("phone number", required=False, nullable=True, max_length=32,
                        pattern=r"\+?[0-9][0-9 ()\-]{2,31}"),
        "email": string("e-mail address", required=False, nullable=True, max_length=254,
                        pattern=r"[^@\s]+@[^@\s]+\.[^@\s]+"),
    },
    "How to reach the member. Stored encrypted; shown to the member alone.",
)  # fmt: skip

REGISTRATION: Final = Schema(
    "Registration",
    {
        "invite": string("the token from the invite link", min_length=1, max_length=128),
        "pseudonym": string("the name others see; letters and digits in any script",
                            min_length=3, max_length=64),
        "password": string(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX, write_only=True),
        "real_name": string("optional", required=False, nullable=True, min_length=1,
                            max_length=200),
        "language": string("interface language (default ar)", required=False,
                           choices=LANGUAGES),
        "contact": obj(CONTACT, required=False, nullable=True),
    },
)  # fmt: skip

LOGIN: Final = Schema(
    "Login",
    {
        "pseudonym": string(min_length=1, max_length=64),
        "password": string(min_length=1, max_length=PASSWORD_MAX, write_only=True),
    },
)

MEMBER: Final = Schema(
    "Member",
    {
        "id": integer(minimum=1),
        "pseudonym": string(),
        "real_name": string(nullable=True),
        "role": string(choices=ROLES),
        "status": string(choices=STATUSES),
        "language": string(choices=LANGUAGES),
        "created_at": integer(TIME),
    },
)

PROFILE: Final = extend(MEMBER, "Profile", "The member's own record.", contact=obj(CONTACT))

PROFILE_CHANGE: Final = Schema(
    "ProfileChange",
    {
        "language": string(required=False, choices=LANGUAGES),
        "real_name": string("null removes it", required=False, nullable=True, min_length=1,
                            max_length=200),
        "contact": obj(CONTACT, "replaces the contact fields; null removes them",
                       required=False, nullable=True),
        "password": string("a new password; needs current_password", required=False,
                           min_length=PASSWORD_MIN, max_length=PASSWORD_MAX, write_only=True),
        "current_password": string(required=False, min_length=1, max_length=PASSWORD_MAX,
                                   write_only=True),
    },
    "Only the fields sent change.",
)  # fmt: skip

TOKEN: Final = Schema(
    "Token",
    {
        "id": integer(minimum=1),
        "name": string(),
        "created_at": integer(TIME),
    },
)
TOKEN_LIST: Final = Schema("TokenList", {"items": array(obj(TOKEN))})
NEW_TOKEN: Final = Schema("NewToken", {"name": string(min_length=1, max_length=64)})
CREATED_TOKEN: Final = extend(
    TOKEN, "CreatedToken", "The token itself is shown in this answer only.", token=string()
)

ROLE_CHANGE: Final = Schema("RoleChange", {"role": string(choices=ROLES)})
MEMBER_FILTER: Final = Schema(
    "MemberFilter",
    {
        "status": string(required=False, choices=STATUSES),
        "role": string(required=False, choices=ROLES),
    },
)

INVITE_REQUEST: Final = Schema(
    "InviteRequest",
    {
        "role": string("role of those who join (default member)", required=False,
                       choices=ROLES),
        "uses": integer("how many may join with it (default 1)", required=False, minimum=1,
                        maximum=MAX_USES),
        "expires_hours": integer("hours until it expires (default 168)", required=False,
                                 minimum=1, maximum=MAX_EXPIRY_HOURS),
    },
)  # fmt: skip
INVITE: Final = Schema(
    "Invite",
    {
        "id": integer(minimum=1),
        "role": string(choices=ROLES),
        "uses_left": integer(minimum=0),
        "expires_at": integer(TIME, nullable=True),
        "created_at": integer(TIME),
        "created_by": integer("member id; null if made at the command line", nullable=True),
        "state": string(choices=("usable", "expired", "used_up")),
    },
)
CREATED_INVITE: Final = extend(
    INVITE, "CreatedInvite", "The token and link are shown in this answer only.",
    token=string(), link=string(),
)  # fmt: skip

AUDIT_ENTRY: Final = Schema(
    "AuditEntry",
    {
        "id": integer(minimum=1),
        "at": integer(TIME),
        "actor": string("member:<id>, or cli for the operator"),
        "action": string(),
        "detail": obj(None, "ids and states; never a password, token or contact field"),
    },
)

FRACTION: Final = Schema(
    "Fraction", {"num": integer(minimum=1, maximum=1000), "den": integer(minimum=1, maximum=1000)}
)
QUORUM: Final = Schema(
    "Quorum", {"num": integer(minimum=0, maximum=1000), "den": integer(minimum=1, maximum=1000)}
)
VOTE_RULE: Final = Schema(
    "VoteRule",
    {
        "method": string(choices=VOTE_METHODS),
        "fraction": obj(FRACTION, "for a supermajority (above 1/2); null otherwise",
                        nullable=True),
        "quorum": obj(QUORUM, "share of the electorate that must take part"),
        "hours": integer("how long a vote stays open", minimum=1, maximum=90 * 24),
    },
    "The rule of a member vote.",
)  # fmt: skip
POLICY_CHANGE: Final = Schema(
    "PolicyChange",
    {
        "approval_required": boolean("new members wait for an admin's approval"),
        "call_issuers": string("who may issue calls to action", choices=DECIDERS),
        "endorsement_by": string("who decides endorsements of others' calls",
                                 choices=DECIDERS),
        "vote": obj(VOTE_RULE),
    },
    "The node's governance policy.",
)  # fmt: skip
POLICY: Final = extend(
    POLICY_CHANGE, "Policy", updated_at=integer("null until first saved", nullable=True)
)

_HISTORY: Final = Schema(
    "HistoryEntry",
    {"at": integer(TIME), "actor": string(), "action": string(), "detail": obj(None)},
)
_SESSION: Final = Schema("SessionInfo", {"created_at": integer(), "expires_at": integer()})
_INVITE_CREATED: Final = Schema(
    "InviteCreated",
    {"id": integer(), "role": string(), "uses_left": integer(), "created_at": integer()},
)
_OPEN_VOTE: Final = Schema(
    "OpenBallotVote",
    {"proposal": string(), "title": string(), "choice": string(), "option": string(nullable=True)},
)
_VOTED_IN: Final = Schema("VotedIn", {"proposal": string(), "title": string(), "ballot": string()})
_PLEDGE: Final = Schema(
    "ExportedPledge", {"call": string(), "kind": string(), "updated_at": integer()}
)
_NOTICE: Final = Schema(
    "ExportedNotification",
    {"call": string(), "kind": string(), "created_at": integer(),
     "read_at": integer(nullable=True)},
)  # fmt: skip
_THROTTLE: Final = Schema("ThrottleState", {"failures": integer(), "locked_until": integer()})
EXPORT: Final = Schema(
    "Export",
    {
        "exported_at": integer(TIME),
        "member": obj(PROFILE),
        "history": array(obj(_HISTORY), doc="role and status changes and your own actions"),
        "tokens": array(obj(TOKEN)),
        "sessions": array(obj(_SESSION)),
        "invites_created": array(obj(_INVITE_CREATED)),
        "open_ballot_votes": array(obj(_OPEN_VOTE)),
        "voted_in": array(obj(_VOTED_IN), doc="proposals you voted in: who voted, never how"),
        "pledges": array(obj(_PLEDGE), doc="your pledges to calls: only counts leave the node"),
        "notifications": array(obj(_NOTICE)),
        "login_throttle": obj(_THROTTLE, nullable=True),
        "excluded": obj(None, "what the node holds but cannot export, and why"),
    },
    "Everything the node holds about the member.",
)
