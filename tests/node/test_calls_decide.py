"""Each organisation decides for itself (DESIGN §3): a call that arrives opens a "do we join?"
member vote when the policy says ``vote``, and its close publishes ``call.endorse`` or
``call.decline`` with the vote's summary; otherwise admins or organisers decide. Verdicts
of other organisations are kept per organisation, the latest winning."""

from __future__ import annotations

import pytest
from test_calls import remote_issue
from test_calls_support import (
    DAY,
    apply,
    call_by_id,
    issue,
    members,
    own_envelopes,
    remote,
    set_policy,
)
from test_decisions_support import HOUR, START, Node, add_member, row_counts

from node.services.call_votes import decide
from node.services.calls import CallError
from node.services.closing import close_due, get_result
from node.services.counting import Choice
from node.services.decisions import cast_vote, get_proposal
from node.storage import calls as store
from protocol import CallCancel, CallDecline, CallEndorse, DecisionSummary, Threshold, parse_body


async def received(node: Node, **changes: object) -> tuple[bytes, int]:
    """A call from another node; its id and local number."""
    signed = remote().envelope(remote_issue(**changes), node.now())
    await apply(node, signed)
    held = await call_by_id(node, signed.id)
    assert held is not None
    return signed.id, held.id


async def verdicts(node: Node) -> list[tuple[str, DecisionSummary]]:
    found = []
    for signed in await own_envelopes(node):
        if signed.envelope.type in ("call.endorse", "call.decline"):
            body = parse_body(signed.envelope.type, signed.envelope.body)
            assert isinstance(body, CallEndorse | CallDecline)
            found.append((signed.envelope.type, body.decision))
    return found


# By member vote


async def test_a_call_opens_a_vote_and_its_close_endorses(node: Node) -> None:
    await set_policy(node, vote_hours=24, vote_quorum_num=1, vote_quorum_den=2)
    voters = await members(node, 4)
    call_id, number = await received(node)
    async with node.sessions() as session:
        public_id = await store.get_call_proposal(session, call_id)
        held = await store.get_call_by_number(session, number)
    assert public_id is not None
    assert held.stance == "voting"
    proposal = await get_proposal(node.sessions, public_id)
    assert (proposal.options, proposal.ballot, proposal.rule.method) == (
        ("yes", "no"), "secret", "majority",
    )  # fmt: skip
    assert (proposal.closes_at, proposal.created_by) == (START + 24 * HOUR, None)
    choices: tuple[Choice, ...] = (0, 0, 1, "abstain")
    for member, choice in zip(voters, choices, strict=True):
        await cast_vote(node.sessions, node.keys, public_id, member, choice, now=node.now())
    assert await close_due(node.sessions, node.signer, proposal.closes_at) == [public_id]

    outcome = await get_result(node.sessions, public_id)
    ((kind, summary),) = await verdicts(node)
    assert kind == "call.endorse"
    assert summary == DecisionSummary(
        by="vote", method="majority", electorate=4, turnout=4, yes=2, no=1, abstain=1,
        decision=outcome.id,
    )  # fmt: skip
    async with node.sessions() as session:
        assert (await store.get_call_by_number(session, number)).stance == "endorsed"
        (mine,) = await store.list_endorsements(session, call_id)
    assert (mine.origin, mine.verdict, mine.decision) == (
        node.signer.node_id,
        "endorse",
        outcome.id,
    )


async def test_a_vote_without_quorum_declines(node: Node) -> None:
    await members(node, 4)
    call_id, _ = await received(node)
    async with node.sessions() as session:
        public_id = await store.get_call_proposal(session, call_id)
    assert public_id is not None
    proposal = await get_proposal(node.sessions, public_id)
    await close_due(node.sessions, node.signer, proposal.closes_at)
    ((kind, summary),) = await verdicts(node)
    assert (kind, summary.turnout, summary.electorate) == ("call.decline", 0, 4)


async def test_the_vote_closes_halfway_to_the_deadline_or_is_not_opened(node: Node) -> None:
    """Members of an organisation that votes to join must still have time to pledge: the
    vote takes at most half the time left (at least a minute), never past the deadline."""
    for deadline, closes in ((START + HOUR, START + HOUR // 2), (START + 90, START + 60),
                             (START + 60, START + 60)):  # fmt: skip
        call_id, _ = await received(node, threshold=Threshold(5, 1, deadline))
        async with node.sessions() as session:
            public_id = await store.get_call_proposal(session, call_id)
        assert public_id is not None
        assert (await get_proposal(node.sessions, public_id)).closes_at == closes
    late_id, late = await received(node, threshold=Threshold(5, 1, START + 30))
    async with node.sessions() as session:
        assert await store.get_call_proposal(session, late_id) is None
        assert (await store.get_call_by_number(session, late)).stance == "undecided"


async def test_cancelling_a_call_cancels_its_vote_and_no_verdict_follows(node: Node) -> None:
    issuer = remote()
    issued = issuer.envelope(remote_issue(), node.now())
    await apply(node, issued)
    async with node.sessions() as session:
        public_id = await store.get_call_proposal(session, issued.id)
    assert public_id is not None
    await apply(node, issuer.envelope(CallCancel(issued.id), node.now()))
    proposal = await get_proposal(node.sessions, public_id)
    assert proposal.status == "cancelled"
    assert await close_due(node.sessions, node.signer, START + 100 * DAY) == []
    assert await verdicts(node) == []


async def test_this_nodes_own_call_opens_no_vote(node: Node) -> None:
    made = await issue(node)
    async with node.sessions() as session:
        assert await store.get_call_proposal(session, made.call_id) is None
    assert made.stance == "own"


# By admins or organisers


@pytest.mark.parametrize(("policy", "role"), [("admins", "admin"), ("organisers", "organiser")])
async def test_officers_decide_where_the_policy_says(node: Node, policy: str, role: str) -> None:
    await set_policy(node, endorsement_by=policy)
    deciders = await members(node, 2, role)
    await add_member(node, "admin" if role == "organiser" else "organiser")
    await members(node, 3)
    _, number = await received(node)
    await decide(node.sessions, node.signer, number, False, {"en": "Not now"},
                 by=deciders[0], now=node.now())  # fmt: skip
    electorate = 2 if policy == "admins" else 3
    assert await verdicts(node) == [
        ("call.decline", DecisionSummary(by=policy, electorate=electorate, turnout=1, yes=0, no=1))
    ]
    before = await row_counts(node)
    with pytest.raises(CallError) as caught:
        await decide(node.sessions, node.signer, number, True, None, by=deciders[1],
                     now=node.now())  # fmt: skip
    assert caught.value.code == "already_decided"
    assert await row_counts(node) == before


@pytest.mark.parametrize(
    ("policy", "role", "code"),
    [
        ("vote", "admin", "decided_by_vote"),
        ("admins", "organiser", "not_allowed"),
        ("organisers", "member", "not_allowed"),
    ],
)
async def test_who_may_not_decide(node: Node, policy: str, role: str, code: str) -> None:
    await set_policy(node, endorsement_by=policy)
    member = await add_member(node, role)
    _, number = await received(node)
    before = await row_counts(node)
    with pytest.raises(CallError) as caught:
        await decide(node.sessions, node.signer, number, True, None, by=member, now=node.now())
    assert caught.value.code == code
    assert await row_counts(node) == before


async def test_no_verdict_on_an_own_or_cancelled_call(node: Node) -> None:
    await set_policy(node, endorsement_by="admins")
    admin = await add_member(node, "admin")
    made = await issue(node)
    with pytest.raises(CallError) as caught:
        await decide(node.sessions, node.signer, made.id, True, None, by=admin, now=node.now())
    assert caught.value.code == "own_call"
    issuer = remote()
    issued = issuer.envelope(remote_issue(), node.now())
    await apply(node, issued)
    await apply(node, issuer.envelope(CallCancel(issued.id), node.now()))
    held = await call_by_id(node, issued.id)
    assert held is not None
    with pytest.raises(CallError) as caught:
        await decide(node.sessions, node.signer, held.id, True, None, by=admin, now=node.now())
    assert caught.value.code == "call_closed"


# Other organisations' verdicts


async def test_the_latest_verdict_of_each_organisation_is_kept(node: Node) -> None:
    call_id, _ = await received(node)
    basra, sulaymaniyah = remote(), remote()
    summary = DecisionSummary(by="vote", method="consent", electorate=9, turnout=5, yes=5, no=0)
    first = basra.envelope(CallDecline(call_id, DecisionSummary("admins", 1, 1, 0, 1)), START)
    await apply(node, basra.envelope(CallEndorse(call_id, summary), START + 1))
    await apply(node, first)  # older than the one held: kept out
    await apply(node, sulaymaniyah.envelope(CallEndorse(call_id, summary), START))
    async with node.sessions() as session:
        held = {(e.origin, e.verdict, e.method, e.yes) for e in await store.list_endorsements(
            session, call_id)}  # fmt: skip
    assert held == {
        (basra.node_id, "endorse", "consent", 5), (sulaymaniyah.node_id, "endorse", "consent", 5),
    }  # fmt: skip
