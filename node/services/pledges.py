"""Members' pledges to calls, and their notifications. Both stay inside the node: only the
bucketed counts of node.services.tallies ever leave it.

Pledge rules:

- A member pledges to a call their organisation has joined: one it issued, or endorsed
  (``not_joined`` otherwise), while the call is open or activated (``call_closed``).
- ``firm``, or ``conditional`` on the threshold (a call without one takes firm pledges only:
  ``no_threshold``). Pledging again replaces the pledge; withdrawing deletes it.
- Pledges and withdrawals are taken until the threshold's deadline, or for a call without a
  threshold until it starts (if it says when); after that, ``pledges_closed``.
- Each change makes this node's next tally due (debounced by node.services.tallies).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.errors import not_found
from node.services.calls import CallError, Code, call_row
from node.services.members import Page
from node.services.tallies import TallyRules, schedule_tally
from node.storage import pledges as store
from node.storage.errors import NotFound
from node.storage.members import get_member
from node.storage.models import CallRow

__all__ = [
    "KINDS",
    "my_pledge",
    "notification_page",
    "pledge",
    "pledge_deadline",
    "read_all",
    "read_notifications",
    "withdraw",
]

KINDS: Final = ("firm", "conditional")
JOINED: Final = frozenset({"own", "endorsed"})
LIVE: Final = frozenset({"open", "activated"})


def pledge_deadline(call: CallRow) -> int | None:
    """Until when pledges are taken: the threshold's deadline, else the start, else always."""
    return call.deadline if call.deadline is not None else call.starts


async def _pledgeable(session: AsyncSession, number: int, member_id: int, now: int) -> CallRow:
    try:
        member = await get_member(session, member_id)
    except NotFound:
        member = None
    if member is None or member.status != "active":
        raise CallError(Code.NOT_ACTIVE_MEMBER, "only active members pledge")
    call = await call_row(session, number)
    if call.stance not in JOINED:
        raise CallError(Code.NOT_JOINED, "your organisation has not joined this call")
    if call.state not in LIVE:
        raise CallError(Code.CALL_CLOSED, f"the call is {call.state}")
    deadline = pledge_deadline(call)
    if deadline is not None and now >= deadline:
        raise CallError(Code.PLEDGES_CLOSED, "pledges for this call have closed")
    return call


async def pledge(
    sessions: async_sessionmaker[Any],
    rules: TallyRules,
    number: int,
    member_id: int,
    kind: str,
    *,
    now: int,
) -> dict[str, Any]:
    """Make or replace the member's pledge; their pledge as :func:`my_pledge` shows it."""
    if kind not in KINDS:
        raise CallError(Code.INVALID_FIELD, f"a pledge is {' or '.join(KINDS)}")
    async with sessions.begin() as session:
        call = await _pledgeable(session, number, member_id, now)
        if kind == "conditional" and call.deadline is None:
            raise CallError(Code.NO_THRESHOLD, "the call has no threshold to be conditional on")
        await store.put_pledge(session, number, member_id, kind, now)
        await schedule_tally(session, call, now, rules)
    return {"kind": kind, "updated_at": now}


async def withdraw(
    sessions: async_sessionmaker[Any], rules: TallyRules, number: int, member_id: int, *, now: int
) -> None:
    async with sessions.begin() as session:
        call = await _pledgeable(session, number, member_id, now)
        if not await store.delete_pledge(session, number, member_id):
            raise CallError(Code.NO_PLEDGE, "you have not pledged to this call")
        await schedule_tally(session, call, now, rules)


async def my_pledge(
    sessions: async_sessionmaker[Any], number: int, member_id: int
) -> dict[str, Any]:
    async with sessions() as session:
        await call_row(session, number)
        row = await store.get_pledge(session, number, member_id)
    return {"kind": row and row.kind, "updated_at": row and row.updated_at}


# Notifications


async def notification_page(
    sessions: async_sessionmaker[Any], member_id: int, before: int | None, limit: int
) -> Page:
    async with sessions() as session:
        rows = await store.page_notifications(session, member_id, before, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        {
            "id": note.id, "kind": note.kind, "call_id": call.id, "call": call.call_id.hex(),
            "title": dict(call.title), "created_at": note.created_at,
            "read": note.read_at is not None,
        }
        for note, call in rows
    ]  # fmt: skip
    return Page(items, rows[-1][0].id if more else None)


async def read_notifications(
    sessions: async_sessionmaker[Any], member_id: int, ids: Collection[int], *, now: int
) -> None:
    """Mark the member's notifications read; 404 if one of ``ids`` is not theirs."""
    async with sessions.begin() as session:
        if await store.mark_read(session, member_id, set(ids), now) != len(set(ids)):
            raise not_found("notification")


async def read_all(sessions: async_sessionmaker[Any], member_id: int, *, now: int) -> None:
    async with sessions.begin() as session:
        await store.mark_all_read(session, member_id, now)
