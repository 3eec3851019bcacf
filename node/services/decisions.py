"""Internal decisions (DESIGN §3, SPEC §8.4): proposals, votes, closing, the signed result.

Rules this module enforces (the counting rules are in :mod:`node.services.counting`):

- **Who proposes**: active organisers and admins. A proposal lands on every member's ballot,
  so putting a question to the membership is an organising act: members bring theirs through
  an organiser, and an infiltrated member account cannot flood the membership with questions.
- **Who votes**: a member who is active when the vote is cast. One ballot per member per
  proposal: voting again replaces the ballot, until voting closes at ``closes_at``.
- **Electorate**: the members active when the proposal closes, plus any member who voted on it
  and is no longer active (their ballot was valid when cast, and turnout never exceeds the
  electorate). It is a snapshot: it is signed into the result, and recomputing a result
  (:mod:`node.services.closing`) takes it from there, recounting the rest from the ballots.
- **Window**: voting is on from ``opens_at`` (inclusive) to ``closes_at`` (exclusive), by the
  clock, whether or not the scheduler has run: a proposal past ``closes_at`` takes no vote.
- **Cancelling**: by its creator or an admin, before ``closes_at``. The ballots and the voter
  roll of a cancelled proposal are deleted: no result will ever be counted from them.
- **Secret ballots**: a ballot row names no member and holds no time. Its ``voter_key`` is
  HMAC-SHA256(HKDF(local secret, info "tadamun ballot"), public id || member id as 8 bytes
  big-endian), so a voter's own ballot can be found and changed until close. Closing erases
  every voter key and rewrites the ballots in a random order in the transaction that counts
  them, so afterwards not even the node can join voter and choice; a member can then see that
  they voted (the voter roll, which has no time) but not what they chose.
- **Open ballots**: the ballot names its member; who chose what can be listed at any time.
- **Closing** (:mod:`node.services.closing`) counts the ballots and signs a
  ``decision.outcome`` envelope with the node's operational key; it is stored in
  ``proposals.result`` and in the own-envelope log. Publishing it is a separate step.

Every function opens its own transaction; bad input raises :class:`DecisionError` with a
stable code and changes nothing.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from hashlib import sha256
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.errors import NodeError
from node.identity import KEYS_DIR, LOCAL_SECRET, read_key_file
from node.services import counting
from node.services.counting import ABSTAIN, BLOCK, Choice, Rule
from node.storage import decisions as store
from node.storage import wakeups
from node.storage.errors import NotFound
from node.storage.members import get_member
from node.storage.models import Member, Proposal
from protocol import Ratio

__all__ = [
    "BallotKeys",
    "Code",
    "DecisionError",
    "Draft",
    "MyVote",
    "ProposalView",
    "cancel_proposal",
    "cast_vote",
    "create_proposal",
    "get_proposal",
    "list_open_votes",
    "list_proposals",
    "list_voters",
    "my_vote",
    "put_call_proposal",
]

log = logging.getLogger(__name__)

PROPOSER_ROLES: Final = frozenset({"organiser", "admin"})
MAX_TITLE: Final = 512  # bytes of UTF-8, as a title in SPEC §7.1
MAX_BODY: Final = 16_384  # bytes of UTF-8, as a long text in SPEC §7.1
MAX_LABEL: Final = 512  # bytes of UTF-8 (SPEC §8.4)
MIN_OPTIONS, MAX_OPTIONS = 2, 64
MIN_WINDOW: Final = 60  # seconds between opening and closing, at least
MAX_WINDOW: Final = 90 * 86_400
MAX_LEAD: Final = 365 * 86_400  # how far ahead voting may be scheduled to open
MAX_DEN: Final = 1_000_000  # a ratio's largest denominator (SPEC §7.1)
BALLOT_INFO: Final = b"tadamun ballot"
_CONTROL: Final = frozenset(chr(c) for c in (*range(32), 127))
_BODY_CONTROL: Final = _CONTROL - {"\n", "\t"}


class Code(StrEnum):
    PROPOSAL_NOT_FOUND = "proposal_not_found"
    INVALID_TITLE = "invalid_title"
    INVALID_BODY = "invalid_body"
    INVALID_OPTIONS = "invalid_options"
    INVALID_METHOD = "invalid_method"
    INVALID_FRACTION = "invalid_fraction"
    INVALID_QUORUM = "invalid_quorum"
    INVALID_BALLOT = "invalid_ballot"
    INVALID_WINDOW = "invalid_window"
    INVALID_CHOICE = "invalid_choice"
    NOT_ACTIVE_MEMBER = "not_an_active_member"
    NOT_ALLOWED = "not_allowed"
    VOTING_NOT_OPEN = "voting_not_open"
    VOTING_CLOSED = "voting_closed"
    CANCELLED = "proposal_cancelled"
    BALLOT_SECRET = "ballot_secret"  # noqa: S105 - an error code, not a password
    NOT_CLOSED = "not_closed"


_STATUS: Final = {
    Code.PROPOSAL_NOT_FOUND: 404, Code.NOT_ACTIVE_MEMBER: 403, Code.NOT_ALLOWED: 403,
    Code.BALLOT_SECRET: 403, Code.VOTING_NOT_OPEN: 409, Code.VOTING_CLOSED: 409,
    Code.CANCELLED: 409, Code.NOT_CLOSED: 409,
}  # fmt: skip


class DecisionError(NodeError):
    """A refused decision request: a stable code, a message safe to show, an HTTP status."""

    def __init__(self, code: Code, message: str, internal: str = "") -> None:
        super().__init__(_STATUS.get(code, 400), code.value, message, internal)


@dataclass(frozen=True, slots=True)
class Draft:
    """A proposal as asked for; ratios are ``(num, den)`` pairs of integers."""

    title: str
    body: str
    options: Sequence[str]
    method: str
    quorum: tuple[int, int]
    ballot: str
    opens_at: int
    closes_at: int
    fraction: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class ProposalView:
    public_id: bytes
    title: str
    body: str
    options: tuple[str, ...]
    rule: Rule
    ballot: str
    opens_at: int
    closes_at: int
    status: str  # scheduled | open | closed | cancelled
    created_by: int | None
    created_at: int
    closed_at: int | None
    result: bytes | None  # the signed decision.outcome, once closed


@dataclass(frozen=True, slots=True)
class MyVote:
    """A member's own ballot: ``choice`` is None when they have not voted, and for a secret
    ballot after close (the link was erased: ``voted`` still says whether they did)."""

    voted: bool
    choice: Choice | None


class BallotKeys:
    """Keyed hashes that let a voter find their own secret ballot until close."""

    __slots__ = ("_key",)

    def __init__(self, secret: bytes) -> None:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=BALLOT_INFO)
        self._key = hkdf.derive(secret)

    @classmethod
    def load(cls, data_dir: Path) -> BallotKeys:
        """From the node's local secret, ``keys/secret.key``."""
        return cls(read_key_file(data_dir / KEYS_DIR / LOCAL_SECRET).seed)

    def voter_key(self, public_id: bytes, member_id: int) -> bytes:
        message = public_id + member_id.to_bytes(8, "big")
        return hmac.new(self._key, message, sha256).digest()


# Checking a draft


def _text(code: Code, value: object, max_bytes: int, control: frozenset[str]) -> str:
    if type(value) is not str:
        raise DecisionError(code, "must be text")
    text = value.strip()
    try:
        size = len(text.encode())
    except UnicodeEncodeError:
        raise DecisionError(code, "must be valid Unicode") from None
    if size > max_bytes or not control.isdisjoint(text):
        raise DecisionError(code, f"at most {max_bytes} bytes, without control characters")
    return text


def _line(code: Code, value: object, max_bytes: int) -> str:
    text = _text(code, value, max_bytes, _CONTROL)
    if not text:
        raise DecisionError(code, "must not be empty")
    return text


def _options(options: object) -> tuple[str, ...]:
    if not isinstance(options, Sequence) or isinstance(options, str | bytes):
        raise DecisionError(Code.INVALID_OPTIONS, "must be a list of labels")
    if not MIN_OPTIONS <= len(options) <= MAX_OPTIONS:
        raise DecisionError(Code.INVALID_OPTIONS, f"{MIN_OPTIONS} to {MAX_OPTIONS} options")
    labels = tuple(_line(Code.INVALID_OPTIONS, o, MAX_LABEL) for o in options)
    if len(set(labels)) != len(labels):
        raise DecisionError(Code.INVALID_OPTIONS, "options must be distinct")
    return labels


def _ratio(code: Code, value: object) -> Ratio:
    if not (isinstance(value, tuple | list) and len(value) == 2):
        raise DecisionError(code, "must be a pair (num, den)")
    num, den = value
    if type(num) is not int or type(den) is not int or not 0 <= num <= den <= MAX_DEN or den < 1:
        raise DecisionError(code, f"needs integers 0 <= num <= den, 1 <= den <= {MAX_DEN}")
    return Ratio(num, den)


def _rule(method: object, fraction: object, quorum: object) -> Rule:
    if method not in counting.METHODS:
        raise DecisionError(Code.INVALID_METHOD, f"one of {sorted(counting.METHODS)}")
    if (method == "supermajority") != (fraction is not None):
        raise DecisionError(Code.INVALID_FRACTION, "a fraction is given for a supermajority only")
    share = None if fraction is None else _ratio(Code.INVALID_FRACTION, fraction)
    if share is not None and 2 * share.num <= share.den:
        raise DecisionError(Code.INVALID_FRACTION, "a supermajority is more than one half")
    return Rule(str(method), _ratio(Code.INVALID_QUORUM, quorum), share)


def _window(opens_at: object, closes_at: object, now: int) -> tuple[int, int]:
    if type(opens_at) is not int or type(closes_at) is not int:
        raise DecisionError(Code.INVALID_WINDOW, "opening and closing are unix seconds")
    if not now <= opens_at <= now + MAX_LEAD:
        raise DecisionError(Code.INVALID_WINDOW, "voting opens now or within a year")
    if not MIN_WINDOW <= closes_at - opens_at <= MAX_WINDOW:
        raise DecisionError(Code.INVALID_WINDOW, "voting lasts one minute to 90 days")
    return opens_at, closes_at


def _new_proposal(draft: Draft, by: int | None, now: int) -> tuple[Proposal, tuple[str, ...]]:
    """The row for a valid draft, and its option labels; DecisionError if it is not valid."""
    title = _line(Code.INVALID_TITLE, draft.title, MAX_TITLE)
    body = _text(Code.INVALID_BODY, draft.body, MAX_BODY, _BODY_CONTROL)
    labels = _options(draft.options)
    rule = _rule(draft.method, draft.fraction, draft.quorum)
    if draft.ballot not in ("open", "secret"):
        raise DecisionError(Code.INVALID_BALLOT, "open or secret")
    opens_at, closes_at = _window(draft.opens_at, draft.closes_at, now)
    fraction = rule.fraction or Ratio(0, 1)
    proposal = Proposal(
        public_id=secrets.token_bytes(16), title=title, body=body, method=rule.method,
        fraction_num=fraction.num if rule.fraction else None,
        fraction_den=fraction.den if rule.fraction else None,
        quorum_num=rule.quorum.num, quorum_den=rule.quorum.den, ballot=draft.ballot,
        opens_at=opens_at, closes_at=closes_at,
        status="open" if opens_at <= now else "scheduled", created_by=by, created_at=now,
    )  # fmt: skip
    return proposal, labels


# Reading


def rule_of(proposal: Proposal) -> Rule:
    fraction = None
    if proposal.fraction_num is not None and proposal.fraction_den is not None:
        fraction = Ratio(proposal.fraction_num, proposal.fraction_den)
    return Rule(proposal.method, Ratio(proposal.quorum_num, proposal.quorum_den), fraction)


def _view(proposal: Proposal, labels: Sequence[str]) -> ProposalView:
    return ProposalView(
        public_id=proposal.public_id, title=proposal.title, body=proposal.body,
        options=tuple(labels), rule=rule_of(proposal), ballot=proposal.ballot,
        opens_at=proposal.opens_at, closes_at=proposal.closes_at, status=proposal.status,
        created_by=proposal.created_by, created_at=proposal.created_at,
        closed_at=proposal.closed_at, result=proposal.result,
    )  # fmt: skip


async def proposal_row(session: AsyncSession, public_id: bytes) -> Proposal:
    try:
        return await store.get_proposal(session, public_id)
    except NotFound:
        raise DecisionError(Code.PROPOSAL_NOT_FOUND, "no such proposal") from None


async def _active_member(
    session: AsyncSession, member_id: int, roles: frozenset[str] | None = None
) -> Member:
    try:
        member = await get_member(session, member_id)
    except NotFound:
        member = None
    if member is None or member.status != "active":
        raise DecisionError(Code.NOT_ACTIVE_MEMBER, "only active members may do this")
    if roles is not None and member.role not in roles:
        raise DecisionError(Code.NOT_ALLOWED, f"only {' and '.join(sorted(roles))} may do this")
    return member


async def get_proposal(sessions: async_sessionmaker[Any], public_id: bytes) -> ProposalView:
    async with sessions() as session:
        proposal = await proposal_row(session, public_id)
        return _view(proposal, await store.list_options(session, proposal.id))


async def list_proposals(
    sessions: async_sessionmaker[Any], statuses: Sequence[str] = (), limit: int = 100
) -> list[ProposalView]:
    """Proposals, newest first (at most ``limit``, capped at 500)."""
    async with sessions() as session:
        proposals = await store.list_proposals(session, statuses, max(1, min(limit, 500)))
        labels = await store.list_options_of(session, [p.id for p in proposals])  # one query
        return [_view(p, labels[p.id]) for p in proposals]


async def list_voters(sessions: async_sessionmaker[Any], public_id: bytes) -> list[int]:
    """Who voted, by member id: never how, never when."""
    async with sessions() as session:
        return await store.list_voters(session, (await proposal_row(session, public_id)).id)


async def list_open_votes(
    sessions: async_sessionmaker[Any], public_id: bytes
) -> list[tuple[int, Choice]]:
    """Who chose what, by member id, for an open ballot; refused for a secret one."""
    async with sessions() as session:
        proposal = await proposal_row(session, public_id)
        if proposal.ballot != "open":
            raise DecisionError(Code.BALLOT_SECRET, "the ballot is secret")
        rows = await store.list_open_ballots(session, proposal.id)
        return [(member, _choice(stored)) for member, stored in rows]


async def my_vote(
    sessions: async_sessionmaker[Any], keys: BallotKeys, public_id: bytes, member_id: int
) -> MyVote:
    """The member's own ballot; for a secret ballot, its choice only until close."""
    async with sessions() as session:
        proposal = await proposal_row(session, public_id)
        if proposal.ballot == "open":
            stored = await store.get_open_ballot(session, proposal.id, member_id)
        else:  # after close the voter key is erased: nothing matches
            key = keys.voter_key(public_id, member_id)
            stored = await store.get_ballot(session, proposal.id, key)
        voted = await store.has_voted(session, proposal.id, member_id)
    return MyVote(voted, None if stored is None else _choice(stored))


# Voting and cancelling


def _stored(choice: object, options: int, method: str) -> store.StoredChoice:
    if choice == ABSTAIN:
        return store.StoredChoice("abstain")
    if choice == BLOCK and method == "consent":
        return store.StoredChoice("block")
    if type(choice) is int and 0 <= choice < options:
        return store.StoredChoice("option", choice)
    allowed = "an option's index, or abstain" + (", or block" if method == "consent" else "")
    raise DecisionError(Code.INVALID_CHOICE, f"the choice is {allowed}")


def _choice(stored: store.StoredChoice) -> Choice:
    if stored.kind == "option" and stored.position is not None:
        return stored.position
    return BLOCK if stored.kind == BLOCK else ABSTAIN


def _not_live(proposal: Proposal, now: int) -> DecisionError:
    """Why a proposal takes no vote (or cancellation) at ``now``."""
    if proposal.status == "cancelled":
        return DecisionError(Code.CANCELLED, "the proposal was cancelled")
    if proposal.status == "closed" or now >= proposal.closes_at:
        return DecisionError(Code.VOTING_CLOSED, "voting has closed")
    return DecisionError(Code.VOTING_NOT_OPEN, "voting has not opened yet")


async def cast_vote(
    sessions: async_sessionmaker[Any],
    keys: BallotKeys,
    public_id: bytes,
    member_id: int,
    choice: Choice,
    *,
    now: int,
) -> None:
    """Cast the member's ballot, or replace it: one ballot per member, until close."""
    async with sessions.begin() as session:
        proposal = await proposal_row(session, public_id)
        stored = _stored(
            choice, len(await store.list_options(session, proposal.id)), proposal.method
        )
        if not await store.claim_for_voting(session, proposal.id, now):
            raise _not_live(await store.get_proposal_by_id(session, proposal.id), now)
        await _active_member(session, member_id)
        member = member_id if proposal.ballot == "open" else None
        key = keys.voter_key(public_id, member_id)
        await store.put_ballot(session, proposal.id, key, member, stored)
        await store.put_voter(session, proposal.id, member_id)


async def create_proposal(
    sessions: async_sessionmaker[Any], draft: Draft, *, by: int, now: int
) -> ProposalView:
    """Put a question to the members; ``by`` is an active organiser or admin."""
    proposal, labels = _new_proposal(draft, by, now)
    async with sessions.begin() as session:
        await _active_member(session, by, PROPOSER_ROLES)
        await store.put_proposal(session, proposal, list(labels))
        wakeups.note(session, wakeups.DECISIONS)
    return _view(proposal, labels)


async def put_call_proposal(
    session: AsyncSession, draft: Draft, call_id: bytes, *, now: int
) -> Proposal:
    """Open a "do we join?" proposal on a call that arrived (node.services.call_votes), in the
    caller's transaction: the node itself puts it to the members (``created_by`` None) under
    the governance policy's rule; closing it publishes the call's endorsement or decline."""
    proposal, labels = _new_proposal(draft, None, now)
    proposal.call_id = call_id
    wakeups.note(session, wakeups.DECISIONS)
    return await store.put_proposal(session, proposal, list(labels))


async def cancel_proposal(
    sessions: async_sessionmaker[Any], public_id: bytes, *, by: int, now: int
) -> None:
    """Cancel before voting ends (its creator or an admin); its ballots are deleted."""
    async with sessions.begin() as session:
        proposal = await proposal_row(session, public_id)
        member = await _active_member(session, by)
        if member.id != proposal.created_by and member.role != "admin":
            raise DecisionError(Code.NOT_ALLOWED, "only its creator or an admin may cancel it")
        if not await store.claim_for_cancel(session, proposal.id, now):
            raise _not_live(await store.get_proposal_by_id(session, proposal.id), now)
        await store.delete_ballots(session, proposal.id)
        await store.delete_voters(session, proposal.id)


# Closing and the result
