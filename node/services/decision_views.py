"""Internal decisions as the JSON API shows them: forms in, JSON-ready views out.

The rules are those of :mod:`node.services.decisions` and :mod:`node.services.closing`; this
module adds what a client needs on top of them:

- **State, by the clock**: ``upcoming`` (voting opens later), ``open``, ``closed`` (voting
  has ended; ``result`` stays null for the moment until the scheduler has counted it) and
  ``cancelled``. The stored status lags the clock by up to one scheduler pass; the state
  shown and the list filter (:func:`node.storage.decisions.in_state`) do not.
- **Pages**: proposals newest first; the voter roll and open-ballot choices by member id.
- **Choices** are ``{"choice": "option", "option": i}``, ``{"choice": "abstain"}`` or, under
  consent, ``{"choice": "block"}``: JSON has no "an integer or a word" type to document.
- **The result**: the signed ``decision.outcome`` as its wire bytes (base64) and decoded; the
  check counts the ballots again and verifies the signature against the node's key log.

Proposals are named by their 16-byte public id in hex, as in a member's export.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from node.services import closing, decisions
from node.services.counting import ABSTAIN, BLOCK, Choice
from node.services.decisions import (
    BallotKeys,
    Code,
    DecisionError,
    Draft,
    ProposalView,
    proposal_row,
    rule_of,
)
from node.services.members import Page
from node.storage import decisions as store
from node.storage import envelopes
from node.storage.models import Proposal
from protocol import (
    DecisionOutcome,
    KeyState,
    ProtocolError,
    Ratio,
    SignedEnvelope,
    SignedKeyEvent,
    parse_body,
    verify,
)

__all__ = [
    "cancel",
    "create",
    "my_vote",
    "open_vote_page",
    "outcome_view",
    "proposal",
    "proposal_page",
    "proposal_view",
    "recompute_check",
    "signed_result",
    "state_of",
    "vote",
    "voter_page",
]


# Views


def state_of(view: ProposalView, now: int) -> str:
    """The proposal's state at ``now`` (the module docstring; the same as ``in_state``)."""
    if view.status == "cancelled":
        return "cancelled"
    if view.status == "closed" or now >= view.closes_at:
        return "closed"
    return "open" if now >= view.opens_at else "upcoming"


def _ratio(ratio: Ratio | None) -> dict[str, int] | None:
    return None if ratio is None else {"num": ratio.num, "den": ratio.den}


def _outcome(signed: SignedEnvelope) -> DecisionOutcome:
    outcome = parse_body(signed.envelope.type, signed.envelope.body)
    if not isinstance(outcome, DecisionOutcome):  # pragma: no cover - only closing writes it
        raise TypeError(f"a proposal's result is a {signed.envelope.type}")
    return outcome


def outcome_view(outcome: DecisionOutcome) -> dict[str, Any]:
    """A decoded ``decision.outcome`` (its title aside: the proposal has it)."""
    return {
        "proposal": outcome.proposal.hex(), "method": outcome.method,
        "quorum": _ratio(outcome.quorum), "fraction": _ratio(outcome.fraction),
        "ballot": outcome.ballot, "options": list(outcome.options),
        "electorate": outcome.electorate, "turnout": outcome.turnout,
        "counts": list(outcome.counts), "abstain": outcome.abstain, "blocks": outcome.blocks,
        "outcome": outcome.outcome, "winner": outcome.winner,
        "opened": outcome.opened, "closed": outcome.closed,
    }  # fmt: skip


def proposal_view(view: ProposalView, now: int) -> dict[str, Any]:
    result = None
    if view.result is not None:
        result = outcome_view(_outcome(SignedEnvelope.from_bytes(view.result)))
    return {
        "id": view.public_id.hex(), "title": view.title, "body": view.body,
        "options": list(view.options),
        "rule": {"method": view.rule.method, "quorum": _ratio(view.rule.quorum),
                 "fraction": _ratio(view.rule.fraction)},
        "ballot": view.ballot, "opens_at": view.opens_at, "closes_at": view.closes_at,
        "state": state_of(view, now), "created_by": view.created_by,
        "created_at": view.created_at, "closed_at": view.closed_at, "result": result,
    }  # fmt: skip


def _from_row(row: Proposal, labels: Sequence[str]) -> ProposalView:
    return ProposalView(
        public_id=row.public_id, title=row.title, body=row.body, options=tuple(labels),
        rule=rule_of(row), ballot=row.ballot, opens_at=row.opens_at, closes_at=row.closes_at,
        status=row.status, created_by=row.created_by, created_at=row.created_at,
        closed_at=row.closed_at, result=row.result,
    )  # fmt: skip


def _choice_view(choice: Choice | None) -> dict[str, Any]:
    if choice is None:
        return {"choice": None, "option": None}
    if isinstance(choice, int):
        return {"choice": "option", "option": choice}
    return {"choice": choice, "option": None}


def _stored_view(stored: store.StoredChoice) -> dict[str, Any]:
    return {"choice": stored.kind, "option": stored.position}


def _page(items: list[dict[str, Any]], limit: int, key: str) -> Page:
    """A page from up to ``limit + 1`` items: the extra one says there is more."""
    more = len(items) > limit
    items = items[:limit]
    return Page(items, items[-1][key] if more else None)


# Proposals


def _pair(value: dict[str, int]) -> tuple[int, int]:
    return value["num"], value["den"]


async def create(
    sessions: async_sessionmaker[Any], form: dict[str, Any], *, by: int, now: int
) -> dict[str, Any]:
    """A new proposal from a checked form; voting opens now unless ``opens_at`` says later."""
    draft = Draft(
        title=form["title"], body=form.get("body", ""), options=form["options"],
        method=form["method"], quorum=_pair(form["quorum"]), ballot=form["ballot"],
        opens_at=form.get("opens_at", now), closes_at=form["closes_at"],
        fraction=None if form.get("fraction") is None else _pair(form["fraction"]),
    )  # fmt: skip
    return proposal_view(await decisions.create_proposal(sessions, draft, by=by, now=now), now)


async def proposal(sessions: async_sessionmaker[Any], public_id: bytes, now: int) -> dict[str, Any]:
    return proposal_view(await decisions.get_proposal(sessions, public_id), now)


async def proposal_page(
    sessions: async_sessionmaker[Any], state: str | None, after: int | None, limit: int, now: int
) -> Page:
    """Proposals newest first, in ``state`` if given; options read in one query a page."""
    where = None if state is None else store.in_state(state, now)
    async with sessions() as session:
        rows = await store.page_proposals(session, where, after, limit + 1)
        labels = await store.list_options_of(session, [row.id for row in rows])
    more = len(rows) > limit
    rows = rows[:limit]
    items = [proposal_view(_from_row(row, labels[row.id]), now) for row in rows]
    return Page(items, rows[-1].id if more else None)


async def cancel(
    sessions: async_sessionmaker[Any], public_id: bytes, *, by: int, now: int
) -> dict[str, Any]:
    """Cancel (its creator or an admin, before voting ends); the proposal as it now is."""
    await decisions.cancel_proposal(sessions, public_id, by=by, now=now)
    return await proposal(sessions, public_id, now)


# Votes


def _choice(form: dict[str, Any]) -> Choice:
    kind, option = form["choice"], form.get("option")
    if kind == "option":
        if option is None:
            raise DecisionError(Code.INVALID_CHOICE, "choice 'option' needs the option's index")
        return int(option)
    if option is not None:
        raise DecisionError(Code.INVALID_CHOICE, "an option's index goes with choice 'option'")
    return ABSTAIN if kind == ABSTAIN else BLOCK


async def vote(
    sessions: async_sessionmaker[Any],
    keys: BallotKeys,
    public_id: bytes,
    member_id: int,
    form: dict[str, Any],
    *,
    now: int,
) -> dict[str, Any]:
    """Cast the member's ballot or replace it (one ballot per member, until close)."""
    choice = _choice(form)
    await decisions.cast_vote(sessions, keys, public_id, member_id, choice, now=now)
    return {"voted": True, **_choice_view(choice)}


async def my_vote(
    sessions: async_sessionmaker[Any], keys: BallotKeys, public_id: bytes, member_id: int
) -> dict[str, Any]:
    mine = await decisions.my_vote(sessions, keys, public_id, member_id)
    return {"voted": mine.voted, **_choice_view(mine.choice)}


async def voter_page(
    sessions: async_sessionmaker[Any], public_id: bytes, after: int | None, limit: int
) -> Page:
    """Who voted, by member id: never how, never when."""
    async with sessions() as session:
        row = await proposal_row(session, public_id)
        voters = await store.page_voters(session, row.id, after, limit + 1)
    return _page([{"member_id": m, "pseudonym": name} for m, name in voters], limit, "member_id")


async def open_vote_page(
    sessions: async_sessionmaker[Any], public_id: bytes, after: int | None, limit: int
) -> Page:
    """Who chose what, for an open ballot (403 ``ballot_secret`` for a secret one)."""
    async with sessions() as session:
        row = await proposal_row(session, public_id)
        if row.ballot != "open":
            raise DecisionError(Code.BALLOT_SECRET, "the ballot is secret")
        rows = await store.page_open_ballots(session, row.id, after, limit + 1)
    items = [
        {"member_id": m, "pseudonym": name, **_stored_view(stored)} for m, name, stored in rows
    ]
    return _page(items, limit, "member_id")


# The result


async def signed_result(sessions: async_sessionmaker[Any], public_id: bytes) -> dict[str, Any]:
    """The signed ``decision.outcome``: its wire bytes in base64, and decoded."""
    signed = await closing.get_result(sessions, public_id)
    envelope = signed.envelope
    return {
        "proposal": public_id.hex(), "envelope_id": signed.id.hex(),
        "origin": envelope.origin.hex(), "seq": envelope.seq, "created": envelope.created,
        "envelope": base64.b64encode(signed.to_bytes()).decode("ascii"),
        "summary": outcome_view(_outcome(signed)),
    }  # fmt: skip


async def recompute_check(
    sessions: async_sessionmaker[Any], public_id: bytes, now: int
) -> dict[str, Any]:
    """The ballots counted again beside the signed result; whether they match, and whether
    the signature verifies against the node's own key log."""
    signed = await closing.get_result(sessions, public_id)
    stated = _outcome(signed)
    recomputed = await closing.recompute(sessions, public_id)
    return {
        "signed": outcome_view(stated),
        "recomputed": outcome_view(recomputed),
        "matches": recomputed == stated,
        "signature_valid": await _signature_valid(sessions, signed, now),
    }


async def _signature_valid(
    sessions: async_sessionmaker[Any], signed: SignedEnvelope, now: int
) -> bool:
    async with sessions() as session:
        node_id = await envelopes.get_node_id(session)
        wires = await envelopes.list_key_events(session, node_id)
    try:
        state = KeyState.from_log([SignedKeyEvent.from_bytes(wire) for wire in wires])
        verify(signed, state, now=now)
    except ProtocolError:
        return False
    return True
