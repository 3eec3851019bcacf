"""Internal decisions (node.services.decisions): creating proposals, the voting window on a
fake clock, changing a vote, cancelling, open ballots, the scheduler, and refusals with
stable codes that change nothing. Secret ballots: test_decisions_secret.py; closing and the
signed result: test_decisions_closing.py."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from sqlalchemy import select
from test_decisions_support import (
    HOUR,
    START,
    Node,
    add_member,
    ballot_rows,
    draft,
    propose,
    row_counts,
    vote,
)

from node.services import closing, decisions
from node.services.closing import (
    close_due,
    run_scheduler,
)
from node.services.decisions import (
    BallotKeys,
    DecisionError,
    MyVote,
    cancel_proposal,
    create_proposal,
    get_proposal,
    my_vote,
)
from node.services.signer import Signer
from node.storage import wakeups
from node.storage.models import Proposal, ProposalOption

UNKNOWN = b"\x00" * 16


async def refused(code: str, call: Any) -> DecisionError:
    with pytest.raises(DecisionError) as caught:
        await call
    assert caught.value.code == code, caught.value.message
    return caught.value


# Creating proposals


async def test_a_proposal_is_stored_with_its_options_in_order(node: Node) -> None:
    organiser = await add_member(node, "organiser")
    options = ("strike", "work to rule", "wait")
    made = await create_proposal(
        node.sessions, draft(options=options, title="  What now?  "), by=organiser, now=START
    )
    assert (made.status, made.title, made.options, made.created_by) == (
        "open", "What now?", options, organiser,
    )  # fmt: skip
    assert len(made.public_id) == 16
    assert await get_proposal(node.sessions, made.public_id) == made
    async with node.sessions() as session:
        labels = await session.scalars(
            select(ProposalOption.label).order_by(ProposalOption.position)
        )
        assert tuple(labels) == options
    later = await propose(node, opens_at=START + HOUR, closes_at=START + 2 * HOUR)
    assert later.status == "scheduled"
    listed = await decisions.list_proposals(node.sessions)
    assert [p.public_id for p in listed] == [later.public_id, made.public_id]
    assert await decisions.list_proposals(node.sessions, ["scheduled"]) == [later]


BAD_DRAFTS: list[tuple[dict[str, Any], str]] = [
    ({"title": ""}, "invalid_title"),
    ({"title": "   "}, "invalid_title"),
    ({"title": "x" * 513}, "invalid_title"),
    ({"title": "ع" * 257}, "invalid_title"),  # 514 bytes of UTF-8
    ({"title": "a\nb"}, "invalid_title"),
    ({"title": "\ud800"}, "invalid_title"),
    ({"title": 7}, "invalid_title"),
    ({"body": "x" * 16_385}, "invalid_body"),
    ({"body": "nul\x00"}, "invalid_body"),
    ({"body": None}, "invalid_body"),
    ({"options": ("only",)}, "invalid_options"),
    ({"options": tuple(f"o{i}" for i in range(65))}, "invalid_options"),
    ({"options": ("yes", "yes")}, "invalid_options"),
    ({"options": ("yes", "")}, "invalid_options"),
    ({"options": ("yes", "x" * 513)}, "invalid_options"),
    ({"options": "yes/no"}, "invalid_options"),
    ({"method": "plurality"}, "invalid_method"),
    ({"method": "supermajority"}, "invalid_fraction"),
    ({"method": "supermajority", "fraction": (1, 2)}, "invalid_fraction"),  # not more than half
    ({"method": "supermajority", "fraction": (3, 2)}, "invalid_fraction"),
    ({"method": "supermajority", "fraction": (2, 0)}, "invalid_fraction"),
    ({"method": "supermajority", "fraction": (2.0, 3)}, "invalid_fraction"),
    ({"fraction": (2, 3)}, "invalid_fraction"),  # majority takes no fraction
    ({"quorum": (1, 0)}, "invalid_quorum"),
    ({"quorum": (-1, 4)}, "invalid_quorum"),
    ({"quorum": (5, 4)}, "invalid_quorum"),
    ({"quorum": (1, 1_000_001)}, "invalid_quorum"),
    ({"quorum": (True, 4)}, "invalid_quorum"),
    ({"quorum": (1, 2, 3)}, "invalid_quorum"),
    ({"ballot": "postal"}, "invalid_ballot"),
    ({"opens_at": START - 1}, "invalid_window"),  # in the past
    ({"opens_at": START + 366 * 86_400, "closes_at": START + 367 * 86_400}, "invalid_window"),
    ({"closes_at": START}, "invalid_window"),
    ({"closes_at": START + 59}, "invalid_window"),
    ({"closes_at": START + 91 * 86_400}, "invalid_window"),
    ({"opens_at": float(START)}, "invalid_window"),
]


async def test_bad_drafts_are_refused_and_change_nothing(node: Node) -> None:
    organiser = await add_member(node, "organiser")
    before = await row_counts(node)
    for changes, code in BAD_DRAFTS:
        error = await refused(
            code, create_proposal(node.sessions, draft(**changes), by=organiser, now=START)
        )
        assert error.status == 400, changes
    assert await row_counts(node) == before


@pytest.mark.parametrize(
    ("role", "status", "code"),
    [("member", "active", "not_allowed"), ("organiser", "suspended", "not_an_active_member"),
     ("admin", "pending", "not_an_active_member"), ("organiser", "left", "not_an_active_member")],
)  # fmt: skip
async def test_only_active_organisers_and_admins_propose(
    node: Node, role: str, status: str, code: str
) -> None:
    member = await add_member(node, role, status)
    before = await row_counts(node)
    error = await refused(code, create_proposal(node.sessions, draft(), by=member, now=START))
    assert error.status == 403
    await refused(code="not_an_active_member", call=create_proposal(
        node.sessions, draft(), by=999_999, now=START))  # fmt: skip
    assert await row_counts(node) == before
    admin = await add_member(node, "admin")
    assert (await create_proposal(node.sessions, draft(), by=admin, now=START)).status == "open"


# Voting


async def test_lifecycle_on_a_fake_clock(node: Node) -> None:
    voter = await add_member(node)
    made = await propose(node, opens_at=START + 600, closes_at=START + 600 + HOUR)
    error = await refused("voting_not_open", vote(node, made.public_id, voter, 0))
    assert error.status == 409
    assert await ballot_rows(node) == []

    node.clock.advance(600)  # exactly opens_at: voting is on
    assert (await get_proposal(node.sessions, made.public_id)).status == "scheduled"
    await vote(node, made.public_id, voter, 0)
    assert (await get_proposal(node.sessions, made.public_id)).status == "open"

    node.clock.advance(HOUR - 1)  # the last second
    await vote(node, made.public_id, voter, 1)
    node.clock.advance(1)  # exactly closes_at: voting is over, closed or not
    await refused("voting_closed", vote(node, made.public_id, voter, 0))
    assert await my_vote(node.sessions, node.keys, made.public_id, voter) == MyVote(True, 1)

    assert await close_due(node.sessions, node.signer, node.now()) == [made.public_id]
    closed = await get_proposal(node.sessions, made.public_id)
    assert (closed.status, closed.closed_at) == ("closed", node.now())
    assert closed.result is not None
    await refused("voting_closed", vote(node, made.public_id, voter, 0))
    assert await close_due(node.sessions, node.signer, node.now()) == []  # idempotent


async def test_open_due_marks_proposals_open_on_time(node: Node) -> None:
    made = await propose(node, opens_at=START + 60, closes_at=START + 60 + HOUR)
    assert await closing.open_due(node.sessions, START + 59) == 0
    assert await closing.open_due(node.sessions, START + 60) == 1
    assert (await get_proposal(node.sessions, made.public_id)).status == "open"
    assert await closing.open_due(node.sessions, START + 61) == 0


@pytest.mark.parametrize("ballot", ["open", "secret"])
async def test_voting_again_replaces_the_ballot(node: Node, ballot: str) -> None:
    voter, other = await add_member(node), await add_member(node)
    made = await propose(node, ballot=ballot, options=("a", "b", "c"))
    for choice in (0, 2, "abstain", 1):
        await vote(node, made.public_id, voter, choice)
        assert await my_vote(node.sessions, node.keys, made.public_id, voter) == MyVote(
            True, choice
        )
    await vote(node, made.public_id, other, 1)
    rows = await ballot_rows(node)
    assert len(rows) == 2
    assert sorted(r.option_position for r in rows) == [1, 1]
    assert await decisions.list_voters(node.sessions, made.public_id) == sorted([voter, other])


async def test_concurrent_votes_of_one_member_leave_one_ballot(node: Node) -> None:
    voter = await add_member(node)
    made = await propose(node, options=("a", "b", "c"))
    await asyncio.wait_for(
        asyncio.gather(*(vote(node, made.public_id, voter, i % 3) for i in range(6))), 60
    )
    assert len(await ballot_rows(node)) == 1
    assert await decisions.list_voters(node.sessions, made.public_id) == [voter]


async def test_bad_choices_are_refused_and_change_nothing(node: Node) -> None:
    voter = await add_member(node)
    made = await propose(node)  # majority: no blocks
    before = await row_counts(node)
    for bad in (2, -1, True, "block", "yes", None, 0.0):
        await refused("invalid_choice", vote(node, made.public_id, voter, bad))
    assert await row_counts(node) == before
    consent = await propose(node, method="consent")
    await vote(node, consent.public_id, voter, "block")
    assert await my_vote(node.sessions, node.keys, consent.public_id, voter) == MyVote(
        True, "block"
    )


@pytest.mark.parametrize("status", ["pending", "suspended", "left"])
async def test_only_active_members_vote(node: Node, status: str) -> None:
    made = await propose(node)
    member = await add_member(node, status=status)
    before = await row_counts(node)
    error = await refused("not_an_active_member", vote(node, made.public_id, member, 0))
    assert error.status == 403
    await refused("not_an_active_member", vote(node, made.public_id, 424_242, 0))
    assert await row_counts(node) == before


async def test_unknown_proposals_are_not_found(node: Node) -> None:
    member = await add_member(node, "admin")
    calls = [
        vote(node, UNKNOWN, member, 0),
        get_proposal(node.sessions, UNKNOWN),
        my_vote(node.sessions, node.keys, UNKNOWN, member),
        cancel_proposal(node.sessions, UNKNOWN, by=member, now=START),
        decisions.list_voters(node.sessions, UNKNOWN),
        decisions.list_open_votes(node.sessions, UNKNOWN),
        closing.get_result(node.sessions, UNKNOWN),
        closing.recompute(node.sessions, UNKNOWN),
    ]
    for call in calls:
        assert (await refused("proposal_not_found", call)).status == 404


async def test_no_result_before_close(node: Node) -> None:
    made = await propose(node)
    await refused("not_closed", closing.get_result(node.sessions, made.public_id))
    await refused("not_closed", closing.recompute(node.sessions, made.public_id))


# Cancelling


async def test_cancel_by_creator_or_admin_before_close(node: Node) -> None:
    creator, admin = await add_member(node, "organiser"), await add_member(node, "admin")
    stranger, voter = await add_member(node, "organiser"), await add_member(node)
    first = await propose(node, by=creator)
    await vote(node, first.public_id, voter, 0)
    before = await row_counts(node)
    await refused(
        "not_allowed", cancel_proposal(node.sessions, first.public_id, by=stranger, now=START)
    )
    assert await row_counts(node) == before

    await cancel_proposal(node.sessions, first.public_id, by=creator, now=START + 1)
    cancelled = await get_proposal(node.sessions, first.public_id)
    assert (cancelled.status, cancelled.closed_at, cancelled.result) == (
        "cancelled",
        START + 1,
        None,
    )
    assert await ballot_rows(node) == []  # no result will be counted from them
    assert await decisions.list_voters(node.sessions, first.public_id) == []
    await refused("proposal_cancelled", vote(node, first.public_id, voter, 0))
    await refused(
        "proposal_cancelled",
        cancel_proposal(node.sessions, first.public_id, by=admin, now=START + 2),
    )

    second = await propose(node, by=creator)
    await cancel_proposal(node.sessions, second.public_id, by=admin, now=START)
    third = await propose(node, by=creator)
    await refused(
        "voting_closed", cancel_proposal(node.sessions, third.public_id, by=admin, now=START + HOUR)
    )
    assert await close_due(node.sessions, node.signer, START + HOUR) == [third.public_id]
    await refused(
        "voting_closed", cancel_proposal(node.sessions, third.public_id, by=admin, now=START + HOUR)
    )


async def test_cancelled_proposals_are_never_closed(node: Node) -> None:
    made = await propose(node)
    await cancel_proposal(
        node.sessions, made.public_id, by=await add_member(node, "admin"), now=START
    )
    assert await close_due(node.sessions, node.signer, START + HOUR) == []
    async with node.sessions() as session:
        assert (await session.scalar(select(Proposal.status))) == "cancelled"


# Open ballots


async def test_an_open_ballot_shows_who_voted_what(node: Node) -> None:
    a, b, c = await add_member(node), await add_member(node), await add_member(node)
    made = await propose(node, ballot="open", method="consent")
    for member, choice in ((a, 1), (b, "abstain"), (c, "block"), (a, 0)):
        await vote(node, made.public_id, member, choice)
    expected = [(a, 0), (b, "abstain"), (c, "block")]
    assert await decisions.list_open_votes(node.sessions, made.public_id) == expected
    assert {r.member_id for r in await ballot_rows(node)} == {a, b, c}
    node.clock.advance(HOUR)
    await close_due(node.sessions, node.signer, node.now())
    assert await decisions.list_open_votes(node.sessions, made.public_id) == expected
    assert await my_vote(node.sessions, node.keys, made.public_id, a) == MyVote(True, 0)
    secret = await propose(node, opens_at=node.now(), closes_at=node.now() + HOUR)
    error = await refused(
        "ballot_secret", decisions.list_open_votes(node.sessions, secret.public_id)
    )
    assert error.status == 403


# The scheduler


async def test_the_scheduler_closes_on_time_and_stops(node: Node) -> None:
    voter = await add_member(node)
    soon = await propose(node, closes_at=START + 60)
    later = await propose(node, opens_at=START + 20, closes_at=START + 90)
    stop = asyncio.Event()
    task = asyncio.create_task(run_scheduler(node.clock, node.sessions, node.signer, stop))

    async def slept() -> float:
        return await asyncio.wait_for(node.clock.sleeps.get(), 30)

    try:
        assert await slept() == 20  # until `later` opens
        node.clock.advance(20)
        assert await slept() == 40  # until `soon` closes
        assert (await get_proposal(node.sessions, later.public_id)).status == "open"
        await vote(node, soon.public_id, voter, 0)
        node.clock.advance(40)
        assert await slept() == 30  # until `later` closes
        assert (await get_proposal(node.sessions, soon.public_id)).status == "closed"
        assert (await get_proposal(node.sessions, later.public_id)).status == "open"
        node.clock.advance(30)
        assert await slept() == closing.MAX_IDLE  # nothing left: look again in a minute
        assert (await get_proposal(node.sessions, later.public_id)).status == "closed"
        stop.set()
        await asyncio.wait_for(task, 30)
    finally:
        task.cancel()
    assert task.done()
    assert not task.cancelled()


async def test_the_scheduler_idles_when_nothing_is_due(node: Node) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(run_scheduler(node.clock, node.sessions, node.signer, stop))
    try:
        assert await asyncio.wait_for(node.clock.sleeps.get(), 30) == closing.MAX_IDLE
        stop.set()
        await asyncio.wait_for(task, 30)
    finally:
        task.cancel()


async def test_a_new_proposal_wakes_the_idle_scheduler(node: Node) -> None:
    """A vote created while the scheduler idles (a call's "do we join?" may close within a
    minute) is planned at once, not at the next idle pass; a rolled-back one wakes nothing."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_scheduler(node.clock, node.sessions, node.signer, stop))
    try:
        assert await asyncio.wait_for(node.clock.sleeps.get(), 30) == closing.MAX_IDLE
        with contextlib.suppress(RuntimeError):
            async with node.sessions.begin() as session:
                wakeups.note(session, wakeups.DECISIONS)
                raise RuntimeError("rolled back")
        await propose(node, opens_at=START + 20, closes_at=START + 90)
        assert await asyncio.wait_for(node.clock.sleeps.get(), 30) == 20  # until it opens
        assert node.clock.sleeps.empty()
        stop.set()
        await asyncio.wait_for(task, 30)
    finally:
        task.cancel()


def test_ballot_keys_depend_on_secret_proposal_and_member() -> None:
    keys, other = BallotKeys(b"\x01" * 32), BallotKeys(b"\x02" * 32)
    base = keys.voter_key(b"p" * 16, 1)
    assert len(base) == 32
    assert base == BallotKeys(b"\x01" * 32).voter_key(b"p" * 16, 1)
    assert len({base, other.voter_key(b"p" * 16, 1), keys.voter_key(b"q" * 16, 1),
                keys.voter_key(b"p" * 16, 2)}) == 4  # fmt: skip


async def test_a_failed_pass_is_logged_and_retried(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    made = await propose(node, closes_at=START + 60)
    stranger = Signer(b"\x01" * 32, node.signer.key)  # cannot sign for this node
    stop = asyncio.Event()
    task = asyncio.create_task(run_scheduler(node.clock, node.sessions, stranger, stop))
    try:
        assert await asyncio.wait_for(node.clock.sleeps.get(), 30) == 60
        node.clock.advance(60)
        assert await asyncio.wait_for(node.clock.sleeps.get(), 30) == closing.MAX_IDLE
        stop.set()
        await asyncio.wait_for(task, 30)
    finally:
        task.cancel()
    assert "pass failed" in caplog.text
    assert "names another node" in caplog.text
    unchanged = await get_proposal(node.sessions, made.public_id)
    assert (unchanged.status, unchanged.result) == ("open", None)  # rolled back, retried later
    assert await close_due(node.sessions, node.signer, node.now()) == [made.public_id]
