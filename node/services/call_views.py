"""What the JSON API shows of calls: a summary per call in lists; in detail, each
organisation's verdict and how it decided, the latest tallies and progress toward the
threshold, the activation, the issuer's updates, the "do we join?" proposal and the
member's own pledge. Admins also see the evidence: equivocating tallies and activations
held for missing tallies. Ids are lowercase hex; times unix seconds.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.services.calls import call_row
from node.services.calls_apply import split_ids
from node.services.members import Page
from node.services.tallies import progress
from node.storage import calls as store
from node.storage import envelopes
from node.storage.models import CallRow, Endorsement, Setting, TallyRow
from node.storage.pledges import get_pledge

__all__ = ["call_detail", "call_page", "call_summary"]


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


def call_summary(call: CallRow, self_id: bytes) -> dict[str, Any]:
    threshold = None
    if call.deadline is not None:
        threshold = {
            "pledges": call.pledges_needed, "orgs": call.orgs_needed, "deadline": call.deadline,
        }  # fmt: skip
    location = None if call.region is None else {"region": call.region, "place": call.place}
    return {
        "id": call.id, "call": call.call_id.hex(), "origin": call.origin.hex(),
        "own": call.origin == self_id, "kind": call.kind, "title": dict(call.title),
        "text": dict(call.text), "audience": call.audience, "starts": call.starts,
        "ends": call.ends, "location": location, "sectors": list(call.sectors),
        "regions": list(call.regions), "threshold": threshold, "state": call.state,
        "stance": call.stance, "outcome": call.outcome,
        "note": None if call.note is None else dict(call.note), "created_at": call.created_at,
    }  # fmt: skip


async def call_page(
    sessions: async_sessionmaker[Any],
    *,
    state: str | None,
    call: bytes | None,
    own: bool | None,
    before: int | None,
    limit: int,
    states: Collection[str] = (),
) -> Page:
    """Calls, newest first, filtered by state (or any of ``states``), by protocol id, or by
    who issued them."""
    async with sessions() as session:
        self_id = await envelopes.get_node_id(session)
        where: list[ColumnElement[bool]] = []
        if state is not None:
            where.append(CallRow.state == state)
        if states:
            where.append(CallRow.state.in_(tuple(states)))
        if call is not None:
            where.append(CallRow.call_id == call)
        if own is not None:
            where.append(CallRow.origin == self_id if own else CallRow.origin != self_id)
        rows = await store.page_calls(session, where, before, limit + 1)
    return Page.of(rows, limit, lambda row: call_summary(row, self_id))


def _verdict(row: Endorsement, names: dict[bytes, str]) -> dict[str, Any]:
    return {
        "origin": row.origin.hex(), "name": names.get(row.origin), "verdict": row.verdict,
        "by": row.by, "method": row.method, "electorate": row.electorate,
        "turnout": row.turnout, "yes": row.yes, "no": row.no, "abstain": row.abstain,
        "blocks": row.blocks, "decision": _hex(row.decision),
        "note": None if row.note is None else dict(row.note), "created_at": row.created_at,
    }  # fmt: skip


def _tally(row: TallyRow, names: dict[bytes, str]) -> dict[str, Any]:
    return {
        "id": row.id.hex(), "origin": row.origin.hex(), "name": names.get(row.origin),
        "seq": row.seq, "firm": row.firm, "conditional": row.conditional,
        "bucket": row.bucket, "k": row.k, "created_at": row.created_at,
        "equivocation": row.equivocation,
    }  # fmt: skip


def _latest_each(tallies: Sequence[TallyRow]) -> list[TallyRow]:
    latest: dict[bytes, TallyRow] = {}
    for row in tallies:  # ordered by origin and seq
        latest[row.origin] = row
    return list(latest.values())


async def _names(session: AsyncSession, origins: set[bytes], self_id: bytes) -> dict[bytes, str]:
    names = await store.list_names(session, origins)
    own = await session.get(Setting, "name")
    if own is not None:
        names[self_id] = own.value
    return names


async def _evidence(
    session: AsyncSession, call: CallRow, tallies: Sequence[TallyRow], names: dict[bytes, str]
) -> dict[str, Any]:
    held = {row.id for row in tallies}
    pending = [
        {"id": row.id.hex(), "origin": row.origin.hex(),
         "missing": [t.hex() for t in split_ids(row.tallies) if t not in held]}
        for row in await store.list_activations(session, call.call_id, "pending")
    ]  # fmt: skip
    return {
        "equivocations": [_tally(row, names) for row in tallies if row.equivocation],
        "pending_activations": pending,
    }


async def call_detail(
    sessions: async_sessionmaker[Any], number: int, member_id: int, *, admin: bool
) -> dict[str, Any]:
    async with sessions() as session:
        self_id = await envelopes.get_node_id(session)
        call = await call_row(session, number)
        tallies = await store.list_tallies(session, call.call_id)
        verdicts = await store.list_endorsements(session, call.call_id)
        origins = {t.origin for t in tallies} | {v.origin for v in verdicts} | {call.origin}
        names = await _names(session, origins, self_id)
        valid = await store.list_activations(session, call.call_id, "valid")
        activation = next((a for a in valid if a.id == call.activation), None)
        pledge = await get_pledge(session, call.id, member_id)
        done = progress(call, tallies)
        return call_summary(call, self_id) | {
            "origin_name": names.get(call.origin),
            "meeting_point": call.meeting_point,
            "progress": None if done is None else {
                "pledges": done.pledges, "orgs": done.orgs, "met": done.met,
            },
            "endorsements": [_verdict(row, names) for row in verdicts],
            "tallies": [_tally(row, names) for row in _latest_each(tallies)],
            "activation": None if activation is None else {
                "id": activation.id.hex(), "origin": activation.origin.hex(),
                "pledges": activation.pledges, "orgs": activation.orgs,
                "created_at": activation.created_at,
            },
            "updates": [
                {"text": dict(u.text), "created_at": u.created_at}
                for u in await store.list_updates(session, call.id)
            ],
            "proposal": _hex(await store.get_call_proposal(session, call.call_id)),
            "my_pledge": pledge and pledge.kind,
            "evidence": await _evidence(session, call, tallies, names) if admin else None,
        }  # fmt: skip
