"""Fetching the tallies an activation names (SPEC §9.3): an activation held because a named
tally is not here makes catch-up pull, at once, the logs that should hold it from the allies
(node.federation.catchup ``nudge``), and then activates; forged activations naming tallies
that exist nowhere cannot keep the node pulling (each origin at most once per NUDGE_EVERY)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from delivery_support import LogServer, config, eventually
from inbox_support import Origin, Receiver, receiver
from sqlalchemy.ext.asyncio import AsyncEngine
from test_calls import remote_issue
from test_catchup import ally, serve
from test_decisions_support import START

from node.federation.catchup import NUDGE_EVERY, Catchup
from node.federation.client import FederationClient
from node.storage import calls as store
from protocol import CallActivate, CallEndorse, CallTally, DecisionSummary, Threshold

THRESHOLD = Threshold(30, 2, START + 86_400)


@pytest.fixture
async def rx(engine: AsyncEngine, tmp_path: Path) -> Receiver:
    return await receiver(engine, tmp_path)


@pytest.fixture
async def catchup(rx: Receiver) -> AsyncIterator[Catchup]:
    """Catch-up whose clock never moves by itself: after its first pass, only a wake-up or a
    nudge makes another."""
    settings = config(catchup_interval=3_600)
    client = FederationClient(settings, rx.node.signer, rx.node.clock)
    await client.start()
    running = Catchup(rx.node.sessions, client, rx.node.clock, settings, rx.inbox)
    yield running
    await running.stop()
    await client.close()


@pytest.fixture
async def servers() -> AsyncIterator[list[LogServer]]:
    started: list[LogServer] = []
    yield started
    for server in started:
        await server.stop()


def issue(issuer: Origin) -> bytes:
    body = remote_issue(threshold=THRESHOLD).to_body()
    return issuer.envelope(type="call.issue", body=body, audience="public").id


def tally(org: Origin, call: bytes, firm: int) -> bytes:
    body = CallTally(call, 1, firm, 0, 5, 10).to_body()
    return org.envelope(type="call.tally", body=body, audience="public").id


def endorse(org: Origin, call: bytes) -> None:
    decision = DecisionSummary(by="admins", electorate=1, turnout=1, yes=1, no=0)
    org.envelope(type="call.endorse", body=CallEndorse(call, decision).to_body(),
                 audience="public")  # fmt: skip


def activate(org: Origin, call: bytes, tallies: list[bytes], pledges: int, orgs: int) -> bytes:
    body = CallActivate(call, tuple(sorted(tallies)), pledges, orgs).to_body()
    return org.envelope(type="call.activate", body=body, audience="public").to_bytes()


async def state(rx: Receiver, call: bytes) -> tuple[str, list[str]]:
    async with rx.node.sessions() as session:
        held = await store.get_call(session, call)
        assert held is not None
        activations = await store.list_activations(session, call)
    return held.state, [row.state for row in activations]


async def started(catchup: Catchup) -> None:
    await catchup.start()
    await eventually(lambda: _passes(catchup, 1))  # the pass at start, before the story


async def _passes(catchup: Catchup, count: int) -> bool:
    return catchup.passes >= count


async def test_a_held_activation_pulls_the_missing_tally_at_once_and_activates(
    rx: Receiver, catchup: Catchup, servers: list[LogServer]
) -> None:
    issuer, other = Origin.new(), Origin.new()  # the issuer is our ally; the other is not
    server = await ally(rx, servers, issuer)
    await rx.know(other)
    call = issue(issuer)
    own = tally(issuer, call, 20)
    endorse(other, call)
    serve(server, issuer)
    serve(server, other)
    wires = [s.to_bytes() for s in (*issuer.signed, *other.signed)]
    assert (await rx.receive(issuer, wires)).results == ("ok",) * 3
    await started(catchup)
    theirs = tally(other, call, 10)  # its push to us is lost; the ally holds it
    serve(server, other)
    await rx.receive(issuer, [activate(issuer, call, [own, theirs], 30, 2)])
    asked = len(server.requests)
    await eventually(lambda: _activated(rx, call))  # no clock moved, no wake() called
    assert (other.node_id, 1) in server.requests[asked:]
    assert await state(rx, call) == ("activated", ["valid"])
    assert catchup.passes == 2


async def _activated(rx: Receiver, call: bytes) -> bool:
    return (await state(rx, call))[0] == "activated"


async def test_forged_activations_cannot_keep_the_node_pulling(
    rx: Receiver, catchup: Catchup, servers: list[LogServer]
) -> None:
    issuer = Origin.new()
    server = await ally(rx, servers, issuer)
    call = issue(issuer)
    serve(server, issuer)
    assert (await rx.receive(issuer, [issuer.signed[0].to_bytes()])).results == ("ok",)
    await started(catchup)

    async def forged() -> None:
        nowhere = [secrets.token_bytes(32), secrets.token_bytes(32)]
        wire = activate(issuer, call, nowhere, 30, 2)
        assert (await rx.receive(issuer, [wire])).results == ("ok",)

    await forged()
    assert catchup.nudged == 1  # the issuer's log, from every ally
    await eventually(lambda: _passes(catchup, 2))
    for _ in range(20):
        await forged()
    assert catchup.nudged == 1  # within NUDGE_EVERY: no more pulls for them
    held = await state(rx, call)
    assert held == ("open", ["pending"] * 21)
    rx.node.clock.advance(NUDGE_EVERY)
    await forged()
    assert catchup.nudged == 2
    await eventually(lambda: _passes(catchup, 3))
    assert catchup.passes == 3
