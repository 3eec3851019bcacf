"""Coalitions and concurrency (SPEC §15.4): two processes on one PostgreSQL database applying
batches that touch the same coalitions in opposite orders both complete (the inbox locks the
coalitions a batch touches all at once, by id, before it reads their membership); a batch
whose transaction PostgreSQL aborts as a deadlock victim or a serialization failure is
planned again, a bounded number of times; and an escrowed coalition envelope is checked for
this node again when the chain reaches it (on SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from inbox_support import Origin, Receiver, receiver
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from test_coalitions import CLI, NAME, call_issue, own, send, service, states

from node.federation.inbox import ATTEMPTS, FirstWrite, Inbox
from node.federation.keylogs import KeyLogs
from node.storage.db import create_engine, session_factory
from node.storage.models import CallRow, EscrowEntry
from protocol import CoalitionInvite, CoalitionJoin, CoalitionLeave, SignedEnvelope

POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
WITHIN = 20  # seconds: the bound of every wait below


@pytest.fixture
async def rx(engine: AsyncEngine, tmp_path: Path) -> Receiver:
    return await receiver(engine, tmp_path)


@pytest.fixture
async def second_inbox(rx: Receiver, database_url: str) -> AsyncIterator[Inbox]:
    """Another process's inbox for the same node, on the same database (its own engine)."""
    engine = create_engine(database_url)
    try:
        yield Inbox(session_factory(engine), KeyLogs(), rx.node_id)
    finally:
        await engine.dispose()


async def coalition_with(rx: Receiver, name: str, *allies: Origin) -> bytes:
    """A coalition this node founds, ``allies`` (peers already) invited and joined."""
    made = await service(rx).found(CLI, {"en": name})
    coalition = bytes.fromhex(made["coalition"])
    for ally in allies:
        await service(rx).invite(CLI, made["id"], ally.node_id.hex())
        invite = (await own(rx, CoalitionInvite.TYPE))[-1].id
        joined = await rx.receive(ally, [send(ally, CoalitionJoin(coalition, invite))])
        assert joined.results == ("ok",)
    return coalition


async def allies(rx: Receiver, count: int) -> list[Origin]:
    found = [Origin.new() for _ in range(count)]
    for origin in found:
        await rx.peer(origin)
    return found


def barrier(mine: asyncio.Event, theirs: asyncio.Event) -> FirstWrite:
    """A first write that holds its transaction open until the other batch's is open too."""

    async def write(session: AsyncSession) -> None:
        await session.execute(text("SELECT 1"))
        mine.set()
        await asyncio.wait_for(theirs.wait(), WITHIN)

    return write


# ------------------------------------------------------------------ locking (PostgreSQL)


@POSTGRESQL
async def test_two_processes_applying_two_coalitions_in_opposite_orders_both_complete(
    rx: Receiver, second_inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    x, y = await allies(rx, 2)
    c1 = await coalition_with(rx, "North", x, y)
    c2 = await coalition_with(rx, "South", x, y)
    x_leaves = [send(x, CoalitionLeave(c1)), send(x, CoalitionLeave(c2))]
    y_leaves = [send(y, CoalitionLeave(c2)), send(y, CoalitionLeave(c1))]
    a_open, b_open = asyncio.Event(), asyncio.Event()
    caplog.set_level(logging.INFO, logger="node.federation.inbox")
    now = rx.now()
    first, second = await asyncio.wait_for(
        asyncio.gather(
            rx.inbox.receive(x.node_id, x_leaves, [], now=now, first_write=barrier(a_open, b_open)),
            second_inbox.receive(
                y.node_id, y_leaves, [], now=now, first_write=barrier(b_open, a_open)
            ),
        ),
        WITHIN,
    )
    assert (first.results, second.results) == (("ok", "ok"), ("ok", "ok"))
    assert "lost a race" not in caplog.text  # no deadlock: nothing had to be retried
    for coalition in (c1, c2):
        assert await states(rx, coalition) == {
            rx.node_id: "member", x.node_id: "left", y.node_id: "left",
        }  # fmt: skip


def raising(sqlstate: str, times: int) -> tuple[FirstWrite, list[int]]:
    """A first write that fails as PostgreSQL does with ``sqlstate``, the first ``times``
    times it runs; and the count of its runs."""
    runs = [0]

    async def write(session: AsyncSession) -> None:
        runs[0] += 1
        if runs[0] <= times:
            await session.execute(
                text(f"DO $$ BEGIN RAISE EXCEPTION 'test' USING ERRCODE = '{sqlstate}'; END $$")
            )

    return write, runs


@POSTGRESQL
@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
async def test_a_batch_chosen_as_a_deadlock_victim_is_planned_again(
    rx: Receiver, sqlstate: str
) -> None:
    (x,) = await allies(rx, 1)
    write, runs = raising(sqlstate, 1)
    wires = x.wires(2)
    result = await rx.inbox.receive(x.node_id, wires, [], now=rx.now(), first_write=write)
    assert result.results == ("ok", "ok")
    assert runs == [2]
    assert [row.seq for row in await rx.rows(x)] == [1, 2]


@POSTGRESQL
async def test_retries_are_bounded_and_other_errors_are_not_retried(rx: Receiver) -> None:
    (x,) = await allies(rx, 1)
    always, runs = raising("40P01", ATTEMPTS + 5)
    with pytest.raises(DBAPIError) as caught:
        await rx.inbox.receive(x.node_id, x.wires(1), [], now=rx.now(), first_write=always)
    assert getattr(caught.value.orig, "sqlstate", None) == "40P01"
    assert runs == [ATTEMPTS]
    other, runs = raising("22012", 1)  # division_by_zero: no race to lose
    with pytest.raises(DBAPIError):
        await rx.inbox.receive(x.node_id, x.wires(1), [], now=rx.now(), first_write=other)
    assert runs == [1]
    assert await rx.rows(x) == []  # nothing of either batch was kept


# ------------------------------------------------------------------ escrow (both databases)


async def calls(rx: Receiver) -> int:
    async with rx.node.sessions() as session:
        return await session.scalar(select(func.count()).select_from(CallRow)) or 0


async def escrowed(rx: Receiver) -> int:
    async with rx.node.sessions() as session:
        return await session.scalar(select(func.count()).select_from(EscrowEntry)) or 0


async def test_an_escrowed_coalition_call_released_after_this_node_left_is_withheld(
    rx: Receiver,
) -> None:
    (b,) = await allies(rx, 1)
    coalition = await coalition_with(rx, NAME["en"], b)
    number = (await service(rx).list())[0]["id"]
    gap, call = b.envelope().to_bytes(), call_issue(b, coalition, "Held while a member")
    assert (await rx.receive(b, [call])).results == ("held",)
    assert (await rx.receive(b, [gap])).results == ("ok",)
    assert await calls(rx) == 1  # still a member when it was released: applied
    gap, call = b.envelope().to_bytes(), call_issue(b, coalition, "Held, then this node left")
    assert (await rx.receive(b, [call])).results == ("held",)  # for this node when it came
    await service(rx).leave(CLI, number)
    assert (await rx.receive(b, [gap])).results == ("ok",)
    assert await calls(rx) == 1  # not applied
    assert await escrowed(rx) == 0
    last = (await rx.rows(b))[-1]
    assert (last.seq, last.type, last.wire) == (b.seq, "call.issue", None)  # withheld
    assert await rx.head(b) == b.seq  # the chain goes on past it


async def test_an_escrowed_call_relayed_by_a_node_that_left_meanwhile_is_withheld(
    rx: Receiver,
) -> None:
    b, c = await allies(rx, 2)
    coalition = await coalition_with(rx, NAME["en"], b, c)
    gap = b.envelope().to_bytes()
    relayed = SignedEnvelope.from_bytes(call_issue(b, coalition)).relayed_by(c.node_id)
    assert (await rx.receive(c, [relayed.to_bytes()])).results == ("held",)
    assert (await rx.receive(c, [send(c, CoalitionLeave(coalition))])).results == ("ok",)
    assert (await rx.receive(b, [gap])).results == ("ok",)  # the call is reached now
    assert await calls(rx) == 0  # c, who relayed it, is no longer in the coalition
    last = (await rx.rows(b))[-1]
    assert (last.seq, last.id, last.wire) == (b.seq, relayed.id, None)
    assert await escrowed(rx) == 0
