"""Read-only queries for a member's data export: what the decision tables hold that names
them. Secret-ballot choices name no one (models.Ballot), so nothing here can find them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.storage.models import (
    Ballot,
    CallRow,
    Invite,
    Notification,
    Pledge,
    Proposal,
    ProposalOption,
    VoterRoll,
)

__all__ = [
    "list_invites_created",
    "list_notifications",
    "list_open_votes",
    "list_participation",
    "list_pledges",
]


async def list_open_votes(session: AsyncSession, member_id: int) -> list[dict[str, Any]]:
    """The member's choices on open ballots, with the proposal and the option's label."""
    query = (
        select(Proposal.public_id, Proposal.title, Ballot.choice, ProposalOption.label)
        .join(Proposal, Proposal.id == Ballot.proposal_id)
        .outerjoin(
            ProposalOption,
            and_(
                ProposalOption.proposal_id == Ballot.proposal_id,
                ProposalOption.position == Ballot.option_position,
            ),
        )
        .where(Ballot.member_id == member_id)
        .order_by(Proposal.id)
    )
    return [
        {"proposal": public_id.hex(), "title": title, "choice": choice, "option": label}
        for public_id, title, choice, label in (await session.execute(query)).all()
    ]


async def list_participation(session: AsyncSession, member_id: int) -> list[dict[str, Any]]:
    """Proposals the member voted in (the voter list: who voted, never how)."""
    query = (
        select(Proposal.public_id, Proposal.title, Proposal.ballot)
        .join(VoterRoll, VoterRoll.proposal_id == Proposal.id)
        .where(VoterRoll.member_id == member_id)
        .order_by(Proposal.id)
    )
    return [
        {"proposal": public_id.hex(), "title": title, "ballot": ballot}
        for public_id, title, ballot in (await session.execute(query)).all()
    ]


async def list_invites_created(session: AsyncSession, member_id: int) -> list[dict[str, Any]]:
    query = select(Invite).where(Invite.created_by == member_id).order_by(Invite.id)
    return [
        {"id": i.id, "role": i.role, "uses_left": i.uses_left, "created_at": i.created_at}
        for i in (await session.scalars(query)).all()
    ]


async def list_pledges(session: AsyncSession, member_id: int) -> list[dict[str, Any]]:
    """The member's pledges to calls (they never leave the node: only counts do)."""
    query = (
        select(CallRow.call_id, Pledge.kind, Pledge.updated_at)
        .join(CallRow, CallRow.id == Pledge.call)
        .where(Pledge.member_id == member_id)
        .order_by(CallRow.id)
    )
    return [
        {"call": call_id.hex(), "kind": kind, "updated_at": at}
        for call_id, kind, at in (await session.execute(query)).all()
    ]


async def list_notifications(session: AsyncSession, member_id: int) -> list[dict[str, Any]]:
    query = (
        select(CallRow.call_id, Notification.kind, Notification.created_at, Notification.read_at)
        .join(CallRow, CallRow.id == Notification.call)
        .where(Notification.member_id == member_id)
        .order_by(Notification.id)
    )
    return [
        {"call": call_id.hex(), "kind": kind, "created_at": at, "read_at": read_at}
        for call_id, kind, at, read_at in (await session.execute(query)).all()
    ]
