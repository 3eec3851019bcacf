"""Pledges and this node's tallies (SPEC §9.2): members pledge firm or conditional to calls
their organisation joined, until the deadline; tallies are aggregate, rounded down to the
bucket, zero below k, debounced, with a growing ``seq``; none after the deadline."""

from __future__ import annotations

import pytest
from test_calls import remote_issue
from test_calls_support import (
    DAY,
    RULES,
    apply,
    call,
    call_by_id,
    issue,
    members,
    own_envelopes,
    remote,
    set_policy,
)
from test_decisions_support import START, Node, add_member, row_counts

from node.services.call_votes import decide
from node.services.calls import CallError, cancel_call
from node.services.pledges import my_pledge, pledge, withdraw
from node.services.tallies import TallyRules, bucketed, run_due, schedule_tally
from node.storage import calls as calls_store
from node.storage import pledges as pledges_store
from protocol import CallTally, Threshold, parse_body


async def pledge_all(node: Node, number: int, who: list[int], kind: str = "firm") -> None:
    for member in who:
        await pledge(node.sessions, RULES, number, member, kind, now=node.now())


async def tallies(node: Node) -> list[CallTally]:
    found = []
    for signed in await own_envelopes(node, "call.tally"):
        body = parse_body("call.tally", signed.envelope.body)
        assert isinstance(body, CallTally)
        found.append(body)
    return found


async def tick(node: Node, seconds: int = 0) -> None:
    node.clock.advance(seconds)
    await run_due(node.sessions, node.signer, RULES, node.now())


@pytest.mark.parametrize(
    ("count", "rounded"), [(0, 0), (4, 0), (9, 0), (10, 10), (14, 10), (15, 15), (99, 95)]
)
def test_counts_are_rounded_down_and_suppressed_below_k(count: int, rounded: int) -> None:
    assert bucketed(count, RULES) == rounded
    assert bucketed(count, TallyRules(bucket=1, k=1)) == count


async def test_a_burst_of_pledges_makes_one_tally(node: Node) -> None:
    made = await issue(node)
    crowd = await members(node, 13)
    await pledge_all(node, made.id, crowd[:11])
    await pledge_all(node, made.id, crowd[11:], "conditional")
    await tick(node)
    assert await tallies(node) == [CallTally(made.call_id, 1, 10, 0, 5, 10)]
    for member in crowd[:2]:  # 9 firm, 4 conditional: nothing to publish at once
        await withdraw(node.sessions, RULES, made.id, member, now=node.now())
    await tick(node, 30)
    assert len(await tallies(node)) == 1  # debounced: at most one a minute
    await tick(node, 30)
    assert (await tallies(node))[-1] == CallTally(made.call_id, 2, 0, 0, 5, 10)
    await tick(node, 600)
    assert len(await tallies(node)) == 2  # nothing changed since


async def test_unchanged_rounded_counts_publish_nothing(node: Node) -> None:
    made = await issue(node)
    crowd = await members(node, 12)
    await pledge_all(node, made.id, crowd[:10])
    await tick(node)
    await pledge_all(node, made.id, crowd[10:])  # 12 rounds to 10 again
    await tick(node, 120)
    assert [t.seq for t in await tallies(node)] == [1]


async def test_the_last_tally_is_published_before_the_deadline(node: Node) -> None:
    made = await issue(node)  # deadline START + 5 days
    crowd = await members(node, 20)
    node.clock.advance(5 * DAY - 50)
    await pledge_all(node, made.id, crowd[:10])
    await tick(node)
    node.clock.advance(5)
    await pledge_all(node, made.id, crowd[10:])
    await tick(node)  # the next is due 30 s before the deadline, not a minute after the last
    assert len(await tallies(node)) == 1
    await tick(node, 15)
    signed = (await own_envelopes(node, "call.tally"))[-1]
    assert signed.envelope.created == START + 5 * DAY - 30
    assert (await tallies(node))[-1].firm == 20
    node.clock.advance(31)
    await withdraw(node.sessions, RULES, made.id, crowd[0], now=node.now() - 2)  # just in time
    await tick(node, 60)
    assert len(await tallies(node)) == 2  # none after the deadline


async def test_pledges_close_at_the_deadline(node: Node) -> None:
    made = await issue(node)
    early, late = await members(node, 2)
    await pledge(node.sessions, RULES, made.id, early, "conditional", now=node.now())
    node.clock.advance(5 * DAY)
    before = await row_counts(node)
    for action in (
        pledge(node.sessions, RULES, made.id, late, "firm", now=node.now()),
        withdraw(node.sessions, RULES, made.id, early, now=node.now()),
    ):
        with pytest.raises(CallError) as caught:
            await action
        assert (caught.value.status, caught.value.code) == (409, "pledges_closed")
    assert await row_counts(node) == before
    assert (await my_pledge(node.sessions, made.id, early))["kind"] == "conditional"


async def test_pledge_replace_withdraw_and_my_pledge(node: Node) -> None:
    made = await issue(node)
    member = await add_member(node)
    assert await my_pledge(node.sessions, made.id, member) == {"kind": None, "updated_at": None}
    await pledge(node.sessions, RULES, made.id, member, "conditional", now=node.now())
    await pledge(node.sessions, RULES, made.id, member, "firm", now=node.now() + 1)
    assert await my_pledge(node.sessions, made.id, member) == {
        "kind": "firm", "updated_at": node.now() + 1,
    }  # fmt: skip
    await withdraw(node.sessions, RULES, made.id, member, now=node.now())
    with pytest.raises(CallError) as caught:
        await withdraw(node.sessions, RULES, made.id, member, now=node.now())
    assert (caught.value.status, caught.value.code) == (404, "no_pledge")


async def test_pledges_need_a_joined_live_call_and_a_threshold_to_be_conditional(
    node: Node,
) -> None:
    await set_policy(node, endorsement_by="admins")
    member, admin = await add_member(node), await add_member(node, "admin")
    issued = remote().envelope(remote_issue(), node.now())
    await apply(node, issued)
    theirs = await call_by_id(node, issued.id)
    assert theirs is not None
    no_threshold = await issue(node, threshold=None, starts=None)
    cancelled = await issue(node)
    await cancel_call(node.sessions, node.signer, cancelled.id, None, by=None, now=node.now())
    before = await row_counts(node)
    for number, kind, code in (
        (theirs.id, "firm", "not_joined"),
        (no_threshold.id, "conditional", "no_threshold"),
        (cancelled.id, "firm", "call_closed"),
        (999, "firm", "call_not_found"),
    ):
        with pytest.raises(CallError) as caught:
            await pledge(node.sessions, RULES, number, member, kind, now=node.now())
        assert caught.value.code == code
    assert await row_counts(node) == before
    await decide(node.sessions, node.signer, theirs.id, True, None, by=admin, now=node.now())
    await pledge(node.sessions, RULES, theirs.id, member, "conditional", now=node.now())
    await pledge(node.sessions, RULES, no_threshold.id, member, "firm", now=node.now())


async def test_only_active_members_pledges_count(node: Node) -> None:
    made = await issue(node)
    crowd = await members(node, 10)
    await pledge_all(node, made.id, crowd)
    suspended = await add_member(node, status="suspended")
    with pytest.raises(CallError):
        await pledge(node.sessions, RULES, made.id, suspended, "firm", now=node.now())
    await tick(node)
    assert [t.firm for t in await tallies(node)] == [10]


async def test_tally_seq_grows_and_a_cancelled_call_gets_no_more(node: Node) -> None:
    made = await issue(node, threshold=(10, 1, START + 5 * DAY))
    crowd = await members(node, 15)
    await pledge_all(node, made.id, crowd[:10])
    await tick(node)
    await pledge_all(node, made.id, crowd[10:])
    await tick(node, 60)
    assert [(t.seq, t.firm) for t in await tallies(node)] == [(1, 10), (2, 15)]
    await cancel_call(node.sessions, node.signer, made.id, None, by=None, now=node.now())
    assert (await call(node, made.id)).tally_due_at is None


async def test_an_endorsed_call_gets_tallies_to_its_audience(node: Node) -> None:
    await set_policy(node, endorsement_by="admins")
    admin = await add_member(node, "admin")
    issued = remote().envelope(remote_issue(threshold=Threshold(10, 1, START + DAY)), 0, "public")
    await apply(node, issued)
    theirs = await call_by_id(node, issued.id)
    assert theirs is not None
    await decide(node.sessions, node.signer, theirs.id, True, None, by=admin, now=node.now())
    await pledge_all(node, theirs.id, await members(node, 10), "conditional")
    await tick(node)
    signed = (await own_envelopes(node, "call.tally"))[0]
    assert signed.envelope.audience == "public"
    assert (await tallies(node))[0].conditional == 10


async def test_a_pledge_racing_the_scheduler_still_gets_its_tally(node: Node) -> None:
    """A pledge whose transaction read the call before the scheduler claimed the due tally
    (and counted without it) still makes the next tally due: the CI demo once lost one so."""
    made = await issue(node)
    crowd = await members(node, 15)
    await pledge_all(node, made.id, crowd[:14])  # 14 rounds to 10
    async with node.sessions.begin() as session:
        stale = await calls_store.get_call_by_number(session, made.id)
        assert stale.tally_due_at is not None
        await tick(node)  # the scheduler, in its own transaction, publishes 10 meanwhile
        await pledges_store.put_pledge(session, made.id, crowd[14], "firm", node.now())
        await schedule_tally(session, stale, node.now(), RULES)
    assert [t.firm for t in await tallies(node)] == [10]
    await tick(node, RULES.interval)
    assert [t.firm for t in await tallies(node)] == [10, 15]
