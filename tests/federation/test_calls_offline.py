"""A node offline while a call is issued and voted on catches up afterwards (issue 5 item 7),
between three real node processes on 127.0.0.1, driven as people would, over the JSON API.

A issues a conditional strike call; B decides by member vote; C is killed (SIGKILL) before
the call is issued and stays down through B's vote, the pledges on A and B, the tallies and
the activation. What A had queued for C is lost as well, so C must pull. Once back, C holds
the call, B's endorsement, the tallies and the activation; its admins join, its members see
the call and pledge, and C's tally reaches the others. At the end every node holds every
call envelope once, the same endorsements, tallies and activations, and each member of A and
B was told of the activation exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from calls_support import (
    ACTIVATES,
    FAST_CALLS,
    VOTE_CLOSES,
    WAIT,
    CallView,
    Holdings,
    Org,
    activated,
    close_vote_soon,
    decide,
    held,
    holdings,
    in_seconds,
    issue,
    marker,
    organise,
    own_count,
    pledge,
    set_policy,
    tally_of,
    verdict_of,
    vote,
    wait_for,
)
from cluster import cluster, peer, poll

DEADLINE = 600  # seconds from issuing: far beyond the story, so it never gets in the way


@pytest.mark.timeout(300)  # the vote closes within a minute of being due: about 90 s in all
async def test_a_node_offline_during_the_vote_catches_up_and_joins(tmp_path: Path) -> None:
    async with cluster(tmp_path) as nodes:
        a, b, c = await nodes.make(3, calls=FAST_CALLS)
        await nodes.start([a, b, c])
        for inviter, joiner in ((a, b), (a, c), (b, c)):
            await peer(inviter, joiner)
        orgs = [await organise(a, 3), await organise(b, 4), await organise(c, 2)]
        try:
            await _story(*orgs)
        finally:
            for org in orgs:
                await org.close()
            print(nodes.logs())


async def _story(issuer: Org, voters: Org, late: Org) -> None:
    a, b, c = issuer.node, voters.node, late.node
    await set_policy(voters, "vote")
    await set_policy(late, "admins")
    await c.kill()

    call = (await issue(issuer, 5, 2, in_seconds(DEADLINE), marker()))["call"]
    opened = await wait_for(voters, call, lambda v: v["proposal"] is not None, "the vote open")
    await vote(voters, opened["proposal"], voters.people[:3], voters.people[3:])
    await close_vote_soon(b, call)
    await wait_for(issuer, call, verdict_of(voters, "endorse"), "B's endorsement", VOTE_CLOSES)
    await pledge(issuer, call, ["firm", "conditional", "conditional"])
    await pledge(voters, call, ["firm", "conditional"])
    for org in (issuer, voters):
        await wait_for(org, call, activated, "the activation", ACTIVATES)

    await a.forget_outbox(c)  # A's pushes to C are lost: C pulls A's log, or B relays it
    await c.start()
    seen = await wait_for(late, call, _caught_up(issuer, voters), "C caught up", 2 * WAIT)
    assert seen["stance"] == "undecided"
    assert seen["activation"]["pledges"] == 5
    members_view = await held(late, call, late.people[0])
    assert members_view is not None
    assert activated(members_view)

    await decide(late, call, True)
    await pledge(late, call, ["firm", "conditional"])
    for org in (issuer, voters):
        await wait_for(org, call, tally_of(late, 2), "C's tally")
        await wait_for(org, call, verdict_of(late, "endorse"), "C's endorsement")
    await _nothing_lost_nothing_twice(issuer, voters, late, call)


def _caught_up(issuer: Org, voters: Org) -> Callable[[CallView], bool]:
    def holds(view: CallView) -> bool:
        return (
            activated(view) and verdict_of(voters, "endorse")(view)
            and tally_of(issuer, 3)(view) and tally_of(voters, 2)(view)
        )  # fmt: skip

    return holds


async def _nothing_lost_nothing_twice(issuer: Org, voters: Org, late: Org, call: str) -> None:
    everyone = (issuer, voters, late)

    async def converged() -> bool:
        held = [await holdings(org.node, call) for org in everyone]
        return all(h.envelopes == held[0].envelopes for h in held)

    await poll(converged, WAIT, "every node holds the same call envelopes")
    a, b, c = [await holdings(org.node, call) for org in everyone]
    for org in everyone:
        for kind in ("call.issue", "call.endorse", "call.tally", "call.activate"):
            signed = await own_count(org.node, kind)
            assert a.envelopes.get((org.node.node_id, kind), 0) == signed, (org.node.name, kind)
    verdicts = {voters.node.node_id: "endorse", late.node.node_id: "endorse"}
    tallies = {org.node.node_id: await own_count(org.node, "call.tally") for org in everyone}
    made = {origin for (origin, kind) in a.envelopes if kind == "call.activate"}
    assert made, "nobody published the activation"
    for mine in (a, b, c):
        assert mine.state == "activated"
        assert mine.activation in mine.activations
        assert mine.endorsements == verdicts
        assert mine.tallies == tallies
        assert set(mine.activations.values()) == {"valid"}
        assert len(mine.activations) == sum(n for (_, k), n in a.envelopes.items()
                                            if k == "call.activate")  # fmt: skip
    assert (a.proposals, b.proposals, c.proposals) == (0, 1, 0)
    _told_once(issuer, a)
    _told_once(voters, b)
    assert not [kind for (_, kind) in c.notifications if kind == "activated"]  # C was undecided


def _told_once(org: Org, mine: Holdings) -> None:
    """Every member of ``org`` got one notification of the activation, and none twice."""
    for person in org.everyone:
        assert mine.notifications.get((person.member_id, "activated")) == 1, person.pseudonym
    assert all(count == 1 for count in mine.notifications.values()), mine.notifications
