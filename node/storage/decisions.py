"""Repository of internal decisions: proposals, their options, ballots and the voter roll.

Every function takes an open session; the service owns the transaction. State changes of a
proposal are conditional UPDATEs (``claim_*``) that say whether they matched: the first write
of a transaction, so on PostgreSQL it takes the proposal's row lock and on SQLite the database
write lock, and whoever comes second sees the committed state. That is what makes closing
happen once, and makes a vote and the close of its proposal never interleave.

No function here returns a ballot with the member who cast it, for a secret ballot: ballots
carry no member and no time, and their voter keys are erased when the proposal closes.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Executable,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from node.storage.errors import Conflict, NotFound
from node.storage.models import Ballot, Member, Proposal, ProposalOption, VoterRoll

__all__ = [
    "LIVE",
    "STATES",
    "StoredChoice",
    "claim_for_cancel",
    "claim_for_closing",
    "claim_for_voting",
    "count_ballots",
    "count_electorate",
    "delete_ballots",
    "delete_voters",
    "get_ballot",
    "get_open_ballot",
    "get_proposal",
    "get_proposal_by_id",
    "has_voted",
    "in_state",
    "list_due",
    "list_open_ballots",
    "list_options",
    "list_options_of",
    "list_proposals",
    "list_voters",
    "next_due_at",
    "open_due",
    "page_open_ballots",
    "page_proposals",
    "page_voters",
    "put_ballot",
    "put_proposal",
    "put_result",
    "put_voter",
    "reseal_ballots",
]

LIVE = ("scheduled", "open")  # statuses in which a proposal can still be voted on or cancelled
STATES = ("upcoming", "open", "closed", "cancelled")  # as the clock has it: see in_state


@dataclass(frozen=True, slots=True)
class StoredChoice:
    """A ballot's choice as stored: ``kind`` is option, abstain or block."""

    kind: str
    position: int | None = None


# Proposals


async def put_proposal(session: AsyncSession, proposal: Proposal, labels: list[str]) -> Proposal:
    """Insert a proposal and its options (in order); a public id already taken is a Conflict."""
    session.add(proposal)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("proposal public id is taken") from exc
    session.add_all(
        ProposalOption(proposal_id=proposal.id, position=i, label=label)
        for i, label in enumerate(labels)
    )
    await session.flush()
    return proposal


async def get_proposal(session: AsyncSession, public_id: bytes) -> Proposal:
    query = select(Proposal).where(Proposal.public_id == public_id)
    proposal = (await session.scalars(query.execution_options(populate_existing=True))).first()
    if proposal is None:
        raise NotFound("proposal")
    return proposal


async def get_proposal_by_id(session: AsyncSession, proposal_id: int) -> Proposal:
    proposal = await session.get(Proposal, proposal_id, populate_existing=True)
    if proposal is None:
        raise NotFound(f"proposal {proposal_id}")
    return proposal


async def list_proposals(
    session: AsyncSession, statuses: Collection[str] = (), limit: int = 100
) -> list[Proposal]:
    """Proposals, newest first, optionally only those in ``statuses``; at most ``limit``."""
    query = select(Proposal).order_by(Proposal.id.desc()).limit(limit)
    if statuses:
        query = query.where(Proposal.status.in_(statuses))
    return list(await session.scalars(query))


def in_state(state: str, now: int) -> ColumnElement[bool]:
    """Proposals in ``state`` at ``now`` by the clock, as voting sees it: ``upcoming`` (voting
    opens later), ``open``, ``closed`` (voting has ended, whether or not the scheduler has
    counted it yet) or ``cancelled``. The stored status lags the clock by up to one pass of
    the scheduler; this does not."""
    live = Proposal.status.in_(LIVE)
    conditions = {
        "upcoming": and_(live, Proposal.opens_at > now),
        "open": and_(live, Proposal.opens_at <= now, Proposal.closes_at > now),
        "closed": or_(Proposal.status == "closed", and_(live, Proposal.closes_at <= now)),
        "cancelled": Proposal.status == "cancelled",
    }
    return conditions[state]


async def page_proposals(
    session: AsyncSession, where: ColumnElement[bool] | None, before: int | None, limit: int
) -> list[Proposal]:
    """Up to ``limit`` proposals matching ``where``, newest first, older than ``before``."""
    query = select(Proposal).order_by(Proposal.id.desc()).limit(limit)
    if where is not None:
        query = query.where(where)
    if before is not None:
        query = query.where(Proposal.id < before)
    return list(await session.scalars(query))


async def list_options_of(
    session: AsyncSession, proposal_ids: Collection[int]
) -> dict[int, list[str]]:
    """The option labels of several proposals, in order, in one query."""
    query = (
        select(ProposalOption.proposal_id, ProposalOption.label)
        .where(ProposalOption.proposal_id.in_(proposal_ids))
        .order_by(ProposalOption.proposal_id, ProposalOption.position)
    )
    labels: dict[int, list[str]] = {proposal_id: [] for proposal_id in proposal_ids}
    for proposal_id, label in await session.execute(query):
        labels[proposal_id].append(label)
    return labels


async def list_options(session: AsyncSession, proposal_id: int) -> list[str]:
    """The option labels of a proposal, in order."""
    query = (
        select(ProposalOption.label)
        .where(ProposalOption.proposal_id == proposal_id)
        .order_by(ProposalOption.position)
    )
    return list(await session.scalars(query))


async def list_due(session: AsyncSession, now: int, limit: int = 100) -> list[int]:
    """Ids of live proposals whose voting has ended (``closes_at <= now``), oldest first."""
    query = (
        select(Proposal.id)
        .where(Proposal.status.in_(LIVE), Proposal.closes_at <= now)
        .order_by(Proposal.closes_at, Proposal.id)
        .limit(limit)
    )
    return list(await session.scalars(query))


async def next_due_at(session: AsyncSession) -> int | None:
    """The earliest time at which a live proposal opens or closes, if any."""
    opens = select(func.min(Proposal.opens_at)).where(Proposal.status == "scheduled")
    closes = select(func.min(Proposal.closes_at)).where(Proposal.status.in_(LIVE))
    times = [await session.scalar(opens), await session.scalar(closes)]
    return min((t for t in times if t is not None), default=None)


async def _rowcount(session: AsyncSession, statement: Executable) -> int:
    """Execute an UPDATE or DELETE and say how many rows it matched."""
    result = await session.execute(statement.execution_options(synchronize_session=False))
    return int(cast("CursorResult[Any]", result).rowcount)


async def _claim(
    session: AsyncSession, proposal_id: int, *conditions: ColumnElement[bool], **values: object
) -> bool:
    """Change a live proposal if ``conditions`` hold; whether it did."""
    live = (Proposal.id == proposal_id, Proposal.status.in_(LIVE), *conditions)
    return await _rowcount(session, update(Proposal).where(*live).values(**values)) == 1


async def claim_for_voting(session: AsyncSession, proposal_id: int, now: int) -> bool:
    """Mark the proposal open if voting is on at ``now``; False if it is not."""
    window = (Proposal.opens_at <= now, Proposal.closes_at > now)
    return await _claim(session, proposal_id, *window, status="open")


async def claim_for_closing(session: AsyncSession, proposal_id: int, now: int) -> bool:
    """Close the proposal if voting has ended at ``now``; False if someone else did, or it was
    cancelled."""
    return await _claim(
        session, proposal_id, Proposal.closes_at <= now, status="closed", closed_at=now
    )


async def claim_for_cancel(session: AsyncSession, proposal_id: int, now: int) -> bool:
    """Cancel the proposal if voting has not ended at ``now``."""
    return await _claim(
        session, proposal_id, Proposal.closes_at > now, status="cancelled", closed_at=now
    )


async def open_due(session: AsyncSession, now: int) -> int:
    """Mark scheduled proposals open once ``opens_at`` has come; how many were marked."""
    due = (Proposal.status == "scheduled", Proposal.opens_at <= now, Proposal.closes_at > now)
    return await _rowcount(session, update(Proposal).where(*due).values(status="open"))


async def put_result(session: AsyncSession, proposal_id: int, result: bytes) -> None:
    await _rowcount(
        session, update(Proposal).where(Proposal.id == proposal_id).values(result=result)
    )


# Ballots


def _as_choice(ballot: Ballot) -> StoredChoice:
    return StoredChoice(ballot.choice, ballot.option_position)


async def get_ballot(
    session: AsyncSession, proposal_id: int, voter_key: bytes
) -> StoredChoice | None:
    """The choice of the ballot with this voter key (only until close: keys are then erased)."""
    query = select(Ballot).where(Ballot.proposal_id == proposal_id, Ballot.voter_key == voter_key)
    ballot = (await session.scalars(query)).first()
    return None if ballot is None else _as_choice(ballot)


async def get_open_ballot(
    session: AsyncSession, proposal_id: int, member_id: int
) -> StoredChoice | None:
    """An open ballot's choice by its member (secret ballots name no member)."""
    query = select(Ballot).where(Ballot.proposal_id == proposal_id, Ballot.member_id == member_id)
    ballot = (await session.scalars(query)).first()
    return None if ballot is None else _as_choice(ballot)


async def put_ballot(
    session: AsyncSession,
    proposal_id: int,
    voter_key: bytes,
    member_id: int | None,
    choice: StoredChoice,
) -> None:
    """Cast or replace the ballot with this voter key: one row per voter, ever."""
    values = {"choice": choice.kind, "option_position": choice.position, "member_id": member_id}
    mine = (Ballot.proposal_id == proposal_id, Ballot.voter_key == voter_key)
    if await _rowcount(session, update(Ballot).where(*mine).values(**values)) == 0:
        await session.execute(
            insert(Ballot).values(proposal_id=proposal_id, voter_key=voter_key, **values)
        )


async def count_ballots(session: AsyncSession, proposal_id: int) -> dict[StoredChoice, int]:
    """How many ballots made each choice."""
    query = (
        select(Ballot.choice, Ballot.option_position, func.count())
        .where(Ballot.proposal_id == proposal_id)
        .group_by(Ballot.choice, Ballot.option_position)
    )
    rows = await session.execute(query)
    return {StoredChoice(kind, position): count for kind, position, count in rows}


async def list_open_ballots(
    session: AsyncSession, proposal_id: int
) -> list[tuple[int, StoredChoice]]:
    """Who chose what, for an open ballot: ballots with a member, by member id."""
    query = (
        select(Ballot.member_id, Ballot.choice, Ballot.option_position)
        .where(Ballot.proposal_id == proposal_id, Ballot.member_id.is_not(None))
        .order_by(Ballot.member_id)
    )
    rows = await session.execute(query)
    return [(m, StoredChoice(kind, position)) for m, kind, position in rows if m is not None]


async def page_open_ballots(
    session: AsyncSession, proposal_id: int, after: int | None, limit: int
) -> list[tuple[int, str, StoredChoice]]:
    """Who chose what on an open ballot, by member id (after ``after``), with pseudonyms.
    Secret ballots name no member, so they give nothing here."""
    query = (
        select(Ballot.member_id, Member.pseudonym, Ballot.choice, Ballot.option_position)
        .join(Member, Member.id == Ballot.member_id)
        .where(Ballot.proposal_id == proposal_id)
        .order_by(Ballot.member_id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(Ballot.member_id > after)
    rows = await session.execute(query)
    return [
        (m, name, StoredChoice(kind, position))
        for m, name, kind, position in rows
        if m is not None  # the join has none; for the type checker
    ]


async def reseal_ballots(session: AsyncSession, proposal_id: int) -> None:
    """Erase every voter key of the proposal and rewrite its ballots in a random order.

    The rewrite gives the ballots fresh row ids in an order unrelated to the order of votes
    (and to the voter roll's), and on PostgreSQL one transaction id for all of them, so
    neither row order nor ``xmin`` can join a voter to a choice.
    """
    query = select(Ballot.member_id, Ballot.choice, Ballot.option_position).where(
        Ballot.proposal_id == proposal_id
    )
    rows = [dict(row._mapping) for row in await session.execute(query)]
    secrets.SystemRandom().shuffle(rows)
    await delete_ballots(session, proposal_id)
    if rows:
        await session.execute(
            insert(Ballot), [{"proposal_id": proposal_id, "voter_key": None, **r} for r in rows]
        )


async def delete_ballots(session: AsyncSession, proposal_id: int) -> None:
    await session.execute(delete(Ballot).where(Ballot.proposal_id == proposal_id))


# The voter roll: who voted, never how, and never when


async def put_voter(session: AsyncSession, proposal_id: int, member_id: int) -> None:
    """Record that ``member_id`` voted (idempotent)."""
    if not await has_voted(session, proposal_id, member_id):
        await session.execute(
            insert(VoterRoll).values(proposal_id=proposal_id, member_id=member_id)
        )


async def has_voted(session: AsyncSession, proposal_id: int, member_id: int) -> bool:
    query = select(VoterRoll.member_id).where(
        VoterRoll.proposal_id == proposal_id, VoterRoll.member_id == member_id
    )
    return (await session.scalar(query)) is not None


async def list_voters(session: AsyncSession, proposal_id: int) -> list[int]:
    """Member ids of those who voted, in id order (never the order they voted in)."""
    query = (
        select(VoterRoll.member_id)
        .where(VoterRoll.proposal_id == proposal_id)
        .order_by(VoterRoll.member_id)
    )
    return list(await session.scalars(query))


async def page_voters(
    session: AsyncSession, proposal_id: int, after: int | None, limit: int
) -> list[tuple[int, str]]:
    """Member ids and pseudonyms of those who voted, by member id (after ``after``)."""
    query = (
        select(VoterRoll.member_id, Member.pseudonym)
        .join(Member, Member.id == VoterRoll.member_id)
        .where(VoterRoll.proposal_id == proposal_id)
        .order_by(VoterRoll.member_id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(VoterRoll.member_id > after)
    return [(member_id, name) for member_id, name in await session.execute(query)]


async def delete_voters(session: AsyncSession, proposal_id: int) -> None:
    await session.execute(delete(VoterRoll).where(VoterRoll.proposal_id == proposal_id))


async def count_electorate(session: AsyncSession, proposal_id: int) -> int:
    """Members who are active now, plus those who voted on the proposal and are no longer."""
    voted = select(VoterRoll.member_id).where(VoterRoll.proposal_id == proposal_id)
    query = (
        select(func.count())
        .select_from(Member)
        .where(or_(Member.status == "active", Member.id.in_(voted)))
    )
    return await session.scalar(query) or 0
