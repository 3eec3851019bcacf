"""Closing: the signed decision.outcome verifies against the node's key state and equals a
recount from the stored ballots; closing happens once however many closers race; votes racing
the close are either counted or refused; and the method, quorum and electorate boundaries
hold end to end."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from sqlalchemy import update
from test_decisions_support import (
    HOUR,
    START,
    Node,
    add_member,
    add_members,
    ballot_rows,
    key_state,
    propose,
    vote,
)

from node.services.closing import (
    close_due,
    get_result,
    recompute,
)
from node.services.decisions import (
    DecisionError,
    cast_vote,
)
from node.storage import envelopes
from node.storage.db import create_engine, session_factory
from node.storage.models import Ballot, Member
from protocol import DecisionOutcome, Ratio, parse_body, verify


async def run_vote(node: Node, choices: list[Any], **changes: Any) -> DecisionOutcome:
    """Propose (the organiser is one more active member), vote, close; the signed outcome."""
    made = await propose(node, **changes)
    voters = await add_members(node, len(choices))
    for member, choice in zip(voters, choices, strict=True):
        await vote(node, made.public_id, member, choice)
    assert await close_due(node.sessions, node.signer, made.closes_at) == [made.public_id]
    signed = await get_result(node.sessions, made.public_id)
    outcome = parse_body(signed.envelope.type, signed.envelope.body)
    assert isinstance(outcome, DecisionOutcome)
    assert await recompute(node.sessions, made.public_id) == outcome
    return outcome


async def test_the_result_is_signed_and_equals_a_recount(node: Node) -> None:
    made = await propose(node, options=("a", "b", "c"), method="supermajority", fraction=(2, 3))
    voters = await add_members(node, 5)
    for member, choice in zip(voters, (0, 0, 0, 1, "abstain"), strict=True):
        await vote(node, made.public_id, member, choice)
    await add_member(node, status="suspended")  # not in the electorate
    node.clock.advance(HOUR)
    assert await close_due(node.sessions, node.signer, node.now()) == [made.public_id]

    signed = await get_result(node.sessions, made.public_id)
    state = await key_state(node)
    verify(signed, state, now=node.now())
    envelope = signed.envelope
    assert (envelope.type, envelope.origin, envelope.kpos, envelope.seq, envelope.audience) == (
        "decision.outcome", state.node_id, 0, 1, "allies",
    )  # fmt: skip
    assert envelope.created == START + HOUR
    outcome = parse_body(envelope.type, envelope.body)
    assert outcome == DecisionOutcome(
        proposal=made.public_id, title={"und": made.title}, method="supermajority",
        fraction=Ratio(2, 3), quorum=Ratio(1, 4), ballot="secret", electorate=6, turnout=5,
        options=("a", "b", "c"), counts=(3, 1, 0), abstain=1, blocks=0, outcome="adopted",
        winner=0, opened=START, closed=START + HOUR,
    )  # fmt: skip
    assert await recompute(node.sessions, made.public_id) == outcome
    async with node.sessions() as session:
        logged = await envelopes.get_envelope(session, node.signer.node_id, 1)
    assert logged.wire == signed.to_bytes()
    assert (logged.type, logged.id) == ("decision.outcome", signed.id)


async def test_outcomes_are_chained_in_the_own_log(node: Node) -> None:
    first = await propose(node, closes_at=START + 100)
    second = await propose(node, closes_at=START + 200)
    assert await close_due(node.sessions, node.signer, START + 100) == [first.public_id]
    assert await close_due(node.sessions, node.signer, START + 200) == [second.public_id]
    one, two = [await get_result(node.sessions, p.public_id) for p in (first, second)]
    assert (one.envelope.seq, two.envelope.seq, two.envelope.prev) == (1, 2, one.id)
    state = await key_state(node)
    for signed in (one, two):
        verify(signed, state, now=START + 200)


async def test_a_tampered_ballot_shows_in_the_recount(node: Node) -> None:
    made = await propose(node)
    voter = await add_member(node)
    await vote(node, made.public_id, voter, 0)
    await close_due(node.sessions, node.signer, made.closes_at)
    signed = await get_result(node.sessions, made.public_id)
    async with node.sessions.begin() as session:
        await session.execute(update(Ballot).values(option_position=1))
    recount = await recompute(node.sessions, made.public_id)
    assert recount != parse_body(signed.envelope.type, signed.envelope.body)
    assert (recount.counts, recount.winner) == ((0, 1), 1)


async def test_concurrent_closers_close_once(node: Node, database_url: str) -> None:
    proposals = [await propose(node, closes_at=START + 100 + i) for i in range(3)]
    voters = await add_members(node, 3)
    for made in proposals:
        for member in voters:
            await vote(node, made.public_id, member, 0)
    other = create_engine(database_url)  # a second node process on the same database
    try:
        runs = [(node.sessions, i) for i in range(3)] + [
            (session_factory(other), i) for i in range(3)
        ]
        results = await asyncio.wait_for(
            asyncio.gather(*(close_due(s, node.signer, START + 200) for s, _ in runs)), 60
        )
    finally:
        await other.dispose()
    closed = [public_id for result in results for public_id in result]
    assert sorted(closed) == sorted(p.public_id for p in proposals)
    async with node.sessions() as session:
        assert await envelopes.count_envelopes(session, node.signer.node_id) == 3
    for made in proposals:
        outcome = await recompute(node.sessions, made.public_id)
        assert (outcome.turnout, outcome.counts, outcome.outcome) == (3, (3, 0), "adopted")


async def test_votes_racing_the_close_are_counted_or_refused(node: Node) -> None:
    made = await propose(node, closes_at=START + 100)
    voters = await add_members(node, 8)

    async def late_vote(member: int) -> str:
        try:
            await cast_vote(node.sessions, node.keys, made.public_id, member, 0, now=START + 99)
        except DecisionError as refused:
            return refused.code
        return "counted"

    tasks: list[Awaitable[object]] = [late_vote(m) for m in voters[:4]]
    tasks.append(close_due(node.sessions, node.signer, START + 100))
    tasks += [late_vote(m) for m in voters[4:]]
    results = await asyncio.wait_for(asyncio.gather(*tasks), 60)
    codes = [r for r in results if isinstance(r, str)]
    assert set(codes) <= {"counted", "voting_closed"}
    counted = codes.count("counted")
    outcome = await recompute(node.sessions, made.public_id)
    assert outcome.turnout == counted
    assert all(row.voter_key is None for row in await ballot_rows(node))
    signed = await get_result(node.sessions, made.public_id)
    assert parse_body(signed.envelope.type, signed.envelope.body) == outcome


async def test_consent_fails_on_one_block(node: Node) -> None:
    blocked = await run_vote(node, [0, 0, 0, 0, "block"], method="consent")
    assert (blocked.outcome, blocked.winner, blocked.blocks) == ("rejected", None, 1)
    agreed = await run_vote(node, [0, 0, 1, "abstain"], method="consent")
    assert (agreed.outcome, agreed.winner, agreed.blocks) == ("adopted", 0, 0)


async def test_supermajority_boundary(node: Node) -> None:
    exactly = await run_vote(node, [0, 0, 0, 0, 1, 1], method="supermajority", fraction=(2, 3))
    assert (exactly.counts, exactly.outcome, exactly.winner) == ((4, 2), "adopted", 0)
    short = await run_vote(node, [0, 0, 0, 0, 1, 1, 1], method="supermajority", fraction=(2, 3))
    assert (short.counts, short.outcome, short.winner) == ((4, 3), "rejected", None)


async def test_majority_tie_is_rejected(node: Node) -> None:
    tie = await run_vote(node, [0, 1, "abstain"])
    assert (tie.outcome, tie.winner, tie.abstain) == ("rejected", None, 1)


async def test_quorum_boundary(node: Node) -> None:
    # Electorate: the organiser and five members, six in all; a quorum of one half is three.
    made = await propose(node, quorum=(1, 2))
    members = await add_members(node, 5)
    for member in members[:2]:
        await vote(node, made.public_id, member, 0)
    await close_due(node.sessions, node.signer, made.closes_at)
    short = await recompute(node.sessions, made.public_id)
    assert (short.electorate, short.turnout, short.outcome) == (6, 2, "no_quorum")

    made = await propose(node, quorum=(1, 2), opens_at=node.now(), closes_at=node.now() + HOUR)
    electorate = 7  # one more organiser was added by propose()
    for member in members[:3]:
        await vote(node, made.public_id, member, "abstain")
    await vote(node, made.public_id, members[3], 0)
    await close_due(node.sessions, node.signer, made.closes_at)
    met = await recompute(node.sessions, made.public_id)
    assert (met.electorate, met.turnout, met.outcome, met.winner) == (electorate, 4, "adopted", 0)


async def test_the_electorate_counts_only_active_members(node: Node) -> None:
    made = await propose(node)  # the organiser: active
    voters = await add_members(node, 3)
    for status in ("pending", "suspended", "left"):
        await add_member(node, status=status)
    for member in voters:
        await vote(node, made.public_id, member, 0)
    async with node.sessions.begin() as session:  # suspended after voting: the ballot stands
        await session.execute(
            update(Member).where(Member.id == voters[0]).values(status="suspended")
        )
    await close_due(node.sessions, node.signer, made.closes_at)
    outcome = await recompute(node.sessions, made.public_id)
    assert (outcome.electorate, outcome.turnout, outcome.counts) == (4, 3, (3, 0))


async def test_a_proposal_nobody_voted_on(node: Node) -> None:
    empty = await run_vote(node, [], quorum=(0, 1))
    assert (empty.turnout, empty.counts, empty.outcome, empty.winner) == (
        0,
        (0, 0),
        "rejected",
        None,
    )
