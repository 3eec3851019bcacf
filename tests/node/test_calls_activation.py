"""Activation anyone can check, equivocation and voiding (SPEC §9.2, §9.3), and privacy:
no envelope this node signs for calls carries a member's id, pseudonym or contact."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select, update
from test_calls import remote_issue
from test_calls_support import (
    DAY,
    RULES,
    Remote,
    apply,
    call,
    call_by_id,
    issue,
    members,
    notifications,
    own_envelopes,
    remote,
    set_policy,
)
from test_decisions_support import HOUR, START, Node, add_member, row_counts

from node.services.call_votes import decide
from node.services.closing import close_due
from node.services.decisions import cast_vote
from node.services.pledges import my_pledge, pledge
from node.services.secrets import load_secrets
from node.services.tallies import CallScheduler, run_due
from node.storage import calls as store
from node.storage.models import EnvelopeRow, Member
from protocol import (
    MESSAGE_TYPES,
    CallActivate,
    CallTally,
    DecodeError,
    ErrorCode,
    SignedEnvelope,
    Threshold,
    ValidationError,
    decode,
    encode,
)

THRESHOLD = Threshold(30, 2, START + 5 * DAY)


async def their_call(node: Node) -> tuple[Remote, bytes]:
    issuer = remote()
    issued = issuer.envelope(remote_issue(threshold=THRESHOLD), node.now())
    await apply(node, issued)
    return issuer, issued.id


def tally(org: Remote, call_id: bytes, seq: int, firm: int, created: int = START) -> SignedEnvelope:
    return org.envelope(CallTally(call_id, seq, firm, 0, 5, 10), created)


def activation(org: Remote, call_id: bytes, tallies: list[SignedEnvelope], pledges: int,
               orgs: int) -> SignedEnvelope:  # fmt: skip
    ids = tuple(sorted(t.id for t in tallies))
    return org.envelope(CallActivate(call_id, ids, pledges, orgs), START + DAY)


async def state(node: Node, call_id: bytes) -> tuple[str, bytes | None]:
    held = await call_by_id(node, call_id)
    assert held is not None
    return held.state, held.activation


async def test_a_valid_activation_activates_and_notifies(node: Node) -> None:
    await set_policy(node, endorsement_by="admins")
    admin, member = await add_member(node, "admin"), await add_member(node)
    issuer, call_id = await their_call(node)
    held = await call_by_id(node, call_id)
    assert held is not None
    await decide(node.sessions, node.signer, held.id, True, None, by=admin, now=node.now())
    a, b = remote(), remote()
    proof = [tally(a, call_id, 1, 20), tally(b, call_id, 1, 10)]
    for signed in proof:
        await apply(node, signed)
    activate = activation(issuer, call_id, proof, 30, 2)
    await apply(node, activate)
    assert await state(node, call_id) == ("activated", activate.id)
    assert {(m, k) for m, k, _ in await notifications(node)} == {
        (admin, "activated"), (member, "activated"),
    }  # fmt: skip
    await run_due(node.sessions, node.signer, RULES, node.now())
    assert await own_envelopes(node, "call.activate") == []  # one is held: none of ours


@pytest.mark.parametrize(
    ("pledges", "orgs", "late"),
    [
        (35, 2, False),  # claims more pledges than the tallies hold
        (30, 3, False),  # counts an organisation whose tally is zero
        (30, 2, True),  # a tally made after the deadline
    ],
)
async def test_a_forged_activation_is_refused_and_changes_nothing(
    node: Node, pledges: int, orgs: int, late: bool
) -> None:
    issuer, call_id = await their_call(node)
    a, b, c = remote(), remote(), remote()
    proof = [
        tally(a, call_id, 1, 20),
        tally(b, call_id, 1, 10, START + (6 * DAY if late else 0)),
        tally(c, call_id, 1, 0),
    ]
    for signed in proof:
        await apply(node, signed)
    before = await row_counts(node)
    with pytest.raises(ValidationError) as caught:
        await apply(node, activation(issuer, call_id, proof, pledges, orgs))
    assert caught.value.code == ErrorCode.ACTIVATION_UNPROVEN
    assert await row_counts(node) == before
    assert await state(node, call_id) == ("open", None)


async def test_two_tallies_of_one_organisation_do_not_prove_two(node: Node) -> None:
    issuer, call_id = await their_call(node)
    a = remote()
    proof = [tally(a, call_id, 1, 15), tally(a, call_id, 2, 15)]
    for signed in proof:
        await apply(node, signed)
    with pytest.raises(ValidationError):
        await apply(node, activation(issuer, call_id, proof, 30, 2))


async def test_a_threshold_not_met_is_refused(node: Node) -> None:
    issuer, call_id = await their_call(node)
    a, b = remote(), remote()
    proof = [tally(a, call_id, 1, 10), tally(b, call_id, 1, 10)]
    for signed in proof:
        await apply(node, signed)
    with pytest.raises(ValidationError):
        await apply(node, activation(issuer, call_id, proof, 20, 2))


async def test_an_activation_waits_for_missing_tallies(node: Node) -> None:
    issuer, call_id = await their_call(node)
    a, b = remote(), remote()
    proof = [tally(a, call_id, 1, 20), tally(b, call_id, 1, 10)]
    activate = activation(issuer, call_id, proof, 30, 2)
    await apply(node, proof[0])
    await apply(node, activate)
    assert await state(node, call_id) == ("open", None)
    async with node.sessions() as session:
        (pending,) = await store.list_activations(session, call_id, "pending")
    assert pending.id == activate.id
    await apply(node, proof[1])
    assert await state(node, call_id) == ("activated", activate.id)


async def test_a_held_activation_that_does_not_add_up_is_dropped(node: Node) -> None:
    issuer, call_id = await their_call(node)
    a, b = remote(), remote()
    proof = [tally(a, call_id, 1, 20), tally(b, call_id, 1, 10)]
    await apply(node, activation(issuer, call_id, proof, 40, 2))
    for signed in proof:
        await apply(node, signed)
    assert await state(node, call_id) == ("open", None)
    async with node.sessions() as session:
        assert await store.list_activations(session, call_id) == []


async def test_an_activation_before_its_call_is_held(node: Node) -> None:
    issuer = remote()
    issued = issuer.envelope(remote_issue(threshold=THRESHOLD), START)
    a, b = remote(), remote()
    proof = [tally(a, issued.id, 1, 20), tally(b, issued.id, 1, 10)]
    for signed in (*proof, activation(a, issued.id, proof, 30, 2)):
        await apply(node, signed)
    await apply(node, issued)
    assert (await state(node, issued.id))[0] == "activated"


async def test_this_node_publishes_the_activation_once_tallies_meet_the_threshold(
    node: Node,
) -> None:
    made = await issue(node, threshold=(30, 2, START + 5 * DAY))
    crowd = await members(node, 12)
    for member in crowd:
        await pledge(node.sessions, RULES, made.id, member, "conditional", now=node.now())
    await run_due(node.sessions, node.signer, RULES, node.now())
    assert await own_envelopes(node, "call.activate") == []  # 10 of 30
    other = remote()
    await apply(node, tally(other, made.call_id, 1, 15))
    await run_due(node.sessions, node.signer, RULES, node.now())
    assert await own_envelopes(node, "call.activate") == []  # 25 of 30
    await apply(node, tally(other, made.call_id, 2, 20))
    await run_due(node.sessions, node.signer, RULES, node.now())
    (signed,) = await own_envelopes(node, "call.activate")
    body = CallActivate.from_body(signed.envelope.body)
    own_tally = (await own_envelopes(node, "call.tally"))[0]
    assert (body.pledges, body.orgs) == (30, 2)
    assert own_tally.id in body.tallies
    assert await state(node, made.call_id) == ("activated", signed.id)
    await apply(node, tally(other, made.call_id, 3, 25))
    await run_due(node.sessions, node.signer, RULES, node.now())
    assert len(await own_envelopes(node, "call.activate")) == 1


async def test_a_tally_from_another_node_wakes_the_scheduler(node: Node) -> None:
    """The scheduler idling on the clock checks the activation as soon as a tally that
    meets the threshold arrives, not at its next idle pass."""
    made = await issue(node, threshold=(30, 2, START + 5 * DAY))
    for member in await members(node, 12):
        await pledge(node.sessions, RULES, made.id, member, "conditional", now=node.now())
    await run_due(node.sessions, node.signer, RULES, node.now())  # our tally: 10
    scheduler = CallScheduler(node.clock, node.sessions, node.signer, RULES)
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    try:
        await asyncio.wait_for(node.clock.sleeps.get(), 30)  # idle: nothing due
        assert await own_envelopes(node, "call.activate") == []
        await apply(node, tally(remote(), made.call_id, 1, 20))
        await asyncio.wait_for(node.clock.sleeps.get(), 30)  # woken: one more pass
        assert len(await own_envelopes(node, "call.activate")) == 1
        stop.set()
        await asyncio.wait_for(task, 30)
    finally:
        task.cancel()


async def test_tally_equivocation_is_kept_flagged_and_not_counted(node: Node) -> None:
    made = await issue(node, threshold=(20, 2, START + 5 * DAY))
    for member in await members(node, 10):
        await pledge(node.sessions, RULES, made.id, member, "firm", now=node.now())
    liar = remote()
    first = tally(liar, made.call_id, 1, 10)
    second = liar.envelope(CallTally(made.call_id, 1, 50, 0, 5, 10), START + 1)
    await apply(node, first)
    await apply(node, second)
    await run_due(node.sessions, node.signer, RULES, node.now())
    async with node.sessions() as session:
        held = await store.list_tallies(session, made.call_id)
    flagged = {row.id for row in held if row.equivocation}
    assert flagged == {first.id, second.id}
    assert await own_envelopes(node, "call.activate") == []  # the liar is left out
    await apply(node, tally(liar, made.call_id, 2, 10, START + 2))  # a clean later one counts
    await run_due(node.sessions, node.signer, RULES, node.now())
    assert len(await own_envelopes(node, "call.activate")) == 1


async def test_a_tally_below_k_is_refused_by_the_decoder(node: Node) -> None:
    _, call_id = await their_call(node)
    before = await row_counts(node)
    cheat = remote()
    for firm, bucket, k in ((3, 1, 5), (7, 5, 5), (0, 0, 5)):
        body = {"call": call_id, "seq": 1, "firm": firm, "conditional": 0, "bucket": bucket,
                "k": k}  # fmt: skip
        with pytest.raises(ValidationError) as caught:
            CallTally.from_body(body)
        assert caught.value.code == ErrorCode.INVALID_FIELD
        signed = cheat.envelope(CallTally(call_id, 1, 0, 0, 5, 5), START)
        forged = _with_body(signed, body)
        with pytest.raises(ValidationError):
            await apply(node, forged)
    assert await row_counts(node) == before


def _with_body(signed: SignedEnvelope, body: dict[str, object]) -> SignedEnvelope:
    """The same envelope with another body (its signature no longer holds: the inbox would
    refuse it first; here the handler's own parse is what is tested)."""
    outer = decode(signed.to_bytes())
    assert isinstance(outer, dict)
    outer["env"] = {**outer["env"], "body": body}
    try:
        return SignedEnvelope.from_bytes(encode(outer))
    except DecodeError:  # pragma: no cover - encode is canonical
        raise


async def test_past_the_deadline_the_call_is_void(node: Node) -> None:
    made = await issue(node)
    firm, conditional = await members(node, 2)
    await pledge(node.sessions, RULES, made.id, firm, "firm", now=node.now())
    await pledge(node.sessions, RULES, made.id, conditional, "conditional", now=node.now())
    node.clock.advance(5 * DAY + HOUR - 1)
    await run_due(node.sessions, node.signer, RULES, node.now())
    assert (await call(node, made.id)).state == "open"  # within the grace
    node.clock.advance(1)
    await run_due(node.sessions, node.signer, RULES, node.now())
    assert (await call(node, made.id)).state == "void"
    assert (await my_pledge(node.sessions, made.id, conditional))["kind"] is None
    assert (await my_pledge(node.sessions, made.id, firm))["kind"] == "firm"
    assert {(m, k) for m, k, _ in await notifications(node)} == {
        (firm, "void"), (conditional, "void"),
    }  # fmt: skip


async def test_no_signed_call_envelope_names_a_member(node: Node, tmp_path: Path) -> None:
    """The whole story on one node, then every envelope it holds decoded and searched."""
    await set_policy(node, vote_quorum_num=0, vote_quorum_den=1, vote_hours=1)
    crowd = await members(node, 12)
    organiser = await add_member(node, "organiser")
    secrets = load_secrets(node.data_dir)
    async with node.sessions.begin() as session:
        for member in (*crowd, organiser):
            contact = secrets.seal_contact(member, {"phone": "+964 770 123 4567"})
            await session.execute(
                update(Member).where(Member.id == member).values(
                    real_name=f"Real Name {member}", contact_sealed=contact)
            )  # fmt: skip
    made = await issue(node, by=organiser, threshold=(20, 2, START + DAY))
    for member in crowd:
        await pledge(node.sessions, RULES, made.id, member, "firm", now=node.now())
    _, call_id = await their_call(node)
    held = await call_by_id(node, call_id)
    assert held is not None
    async with node.sessions() as session:
        public_id = await store.get_call_proposal(session, call_id)
    assert public_id is not None
    for member in crowd:
        await cast_vote(node.sessions, node.keys, public_id, member, 0, now=node.now())
    await close_due(node.sessions, node.signer, START + HOUR)
    for member in crowd:
        await pledge(node.sessions, RULES, held.id, member, "conditional", now=node.now())
    node.clock.advance(HOUR)
    await apply(node, tally(remote(), made.call_id, 1, 10))
    await run_due(node.sessions, node.signer, RULES, node.now())
    types = {s.envelope.type for s in await own_envelopes(node)}
    assert types >= {"call.issue", "call.tally", "call.endorse", "call.activate",
                     "decision.outcome"}  # fmt: skip
    async with node.sessions() as session:
        everyone = list(await session.scalars(select(Member)))
        wires = [w for w in await session.scalars(select(EnvelopeRow.wire)) if w is not None]
    for wire in wires:
        signed = SignedEnvelope.from_bytes(wire)
        known = MESSAGE_TYPES[signed.envelope.type].field_names()
        assert set(signed.envelope.body) <= known  # no field beyond the protocol's
        values = _strings(decode(wire))
        for member in everyone:
            assert member.pseudonym not in values
            assert member.pseudonym.encode() not in wire
        for needle in (b"Gate 4", b"+964", b"770 123", b"Real Name"):
            assert needle not in wire


def _strings(value: object) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(_strings(v) | _strings(k) for k, v in value.items()))
    if isinstance(value, list):
        return set().union(*(_strings(v) for v in value))
    return set()
