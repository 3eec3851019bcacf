"""Calls this node issues, and call envelopes received from other nodes (SPEC §8.5, §9.1):
who may issue and change a call, what is signed and what stays local, and the hostile
cases a single node can see: a non-issuer amending or cancelling, amend after cancel,
cancel before issue, stale amendments. Each refusal changes nothing."""

from __future__ import annotations

import pytest
from test_calls_support import (
    DAY,
    TEXT,
    TITLE,
    apply,
    call,
    call_by_id,
    draft,
    issue,
    members,
    notifications,
    own_envelopes,
    remote,
    set_policy,
)
from test_decisions_support import START, Node, add_member, row_counts

from node.services.calls import (
    CallError,
    amend_call,
    cancel_call,
    conclude_call,
    issue_call,
    update_call,
)
from node.services.calls_apply import CallIgnored
from node.storage import calls as store
from protocol import (
    CallAmend,
    CallCancel,
    CallConclude,
    CallIssue,
    CallUpdate,
    Location,
    Threshold,
    parse_body,
    verify,
)


def remote_issue(**changes: object) -> CallIssue:
    fields: dict[str, object] = {
        "kind": "strike", "title": TITLE, "text": TEXT, "location": Location("IQ-BA", "Basra"),
        "threshold": Threshold(20, 2, START + 5 * DAY), "sectors": ("oil",),
    }  # fmt: skip
    return CallIssue(**(fields | changes))  # type: ignore[arg-type]


# Issuing


async def test_an_organiser_issues_a_signed_call_and_the_meeting_point_stays_here(
    node: Node,
) -> None:
    organiser = await add_member(node, "organiser")
    made = await issue(node, by=organiser)
    (signed,) = await own_envelopes(node, "call.issue")
    verify(signed, node.identity.state, now=node.now())
    assert signed.id == made.call_id
    assert signed.envelope.audience == "allies"
    body = parse_body("call.issue", signed.envelope.body)
    assert isinstance(body, CallIssue)
    assert body.title == TITLE
    assert body.threshold == Threshold(20, 2, START + 5 * DAY)
    assert body.location == Location("IQ-BA", "Basra oil fields")
    assert b"Gate 4" not in signed.to_bytes()
    assert (made.meeting_point, made.created_by) == ("Gate 4, North Rumaila, 06:00", organiser)
    assert (made.state, made.stance, made.origin) == ("open", "own", node.signer.node_id)


@pytest.mark.parametrize(
    ("policy", "role", "allowed"),
    [
        ("organisers", "organiser", True),
        ("organisers", "member", False),
        ("admins", "organiser", False),
        ("admins", "admin", True),
        ("vote", "organiser", False),
        ("vote", "admin", True),
    ],
)
async def test_who_issues_follows_the_policy(
    node: Node, policy: str, role: str, allowed: bool
) -> None:
    await set_policy(node, call_issuers=policy)
    by = await add_member(node, role)
    before = await row_counts(node)
    if allowed:
        await issue(node, by=by)
        return
    with pytest.raises(CallError) as caught:
        await issue(node, by=by)
    assert (caught.value.status, caught.value.code) == (403, "not_allowed")
    assert await row_counts(node) == before


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"audience": "coalition:" + "ab" * 32}, "audience_unsupported"),
        ({"audience": "node:" + "ab" * 32}, "invalid_field"),
        ({"kind": "riot"}, "invalid_field"),
        ({"title": {}}, "invalid_field"),
        ({"title": {"EN": "x"}}, "invalid_field"),
        ({"text": {"en": ""}}, "invalid_field"),
        ({"title": {"ar": "ض" * 300}}, "invalid_field"),  # 600 bytes > 512
        ({"threshold": (20, 2, START)}, "invalid_field"),  # deadline not in the future
        ({"threshold": (0, 2, START + DAY)}, "invalid_field"),
        ({"threshold": (5, 257, START + DAY)}, "invalid_field"),
        ({"starts": START + 2 * DAY, "ends": START + DAY}, "invalid_field"),
        ({"region": None}, "invalid_field"),  # a place without its region
        ({"sectors": ("oil", "oil")}, "invalid_field"),
        ({"regions": ("no spaces",)}, "invalid_field"),
        ({"meeting_point": "x" * 1001}, "invalid_field"),
    ],
)
async def test_bad_calls_are_refused_and_change_nothing(
    node: Node, changes: dict[str, object], code: str
) -> None:
    before = await row_counts(node)
    with pytest.raises(CallError) as caught:
        await issue_call(node.sessions, node.signer, draft(**changes), by=None, now=node.now())
    assert (caught.value.status, caught.value.code) == (400, code)
    assert await row_counts(node) == before


async def test_a_suspended_organiser_cannot_issue(node: Node) -> None:
    organiser = await add_member(node, "organiser", "suspended")
    with pytest.raises(CallError) as caught:
        await issue(node, by=organiser)
    assert caught.value.code == "not_an_active_member"


# Changing this node's calls


async def test_amend_cancel_update_conclude_are_signed_and_applied(node: Node) -> None:
    everyone = await members(node, 2)
    made = await issue(node)
    now = node.now()
    title = {"en": "General strike, day two"}
    await amend_call(node.sessions, node.signer, made.id, {"title": title}, by=None, now=now)
    await amend_call(
        node.sessions, node.signer, made.id, {"meeting_point": "Gate 5"}, by=None, now=now
    )
    await update_call(node.sessions, node.signer, made.id, {"en": "Buses at 5"}, by=None, now=now)
    amended = await call(node, made.id)
    assert (amended.title, amended.meeting_point) == (title, "Gate 5")
    assert [(m, k) for m, k, _ in await notifications(node)] == [(m, "amended") for m in everyone]
    await conclude_call(node.sessions, node.signer, made.id, "held", None, by=None, now=now)
    assert (await call(node, made.id)).state == "concluded"
    types = [s.envelope.type for s in await own_envelopes(node)]
    assert types == ["call.issue", "call.amend", "call.update", "call.conclude"]
    for action in (
        amend_call(node.sessions, node.signer, made.id, {"text": TEXT}, by=None, now=now),
        cancel_call(node.sessions, node.signer, made.id, None, by=None, now=now),
        update_call(node.sessions, node.signer, made.id, {"en": "x"}, by=None, now=now),
    ):
        with pytest.raises(CallError) as caught:
            await action
        assert (caught.value.status, caught.value.code) == (409, "call_closed")


async def test_a_cancelled_call_takes_updates_but_no_amendment(node: Node) -> None:
    made = await issue(node)
    now = node.now()
    await cancel_call(node.sessions, node.signer, made.id, {"en": "Talks won"}, by=None, now=now)
    cancelled = await call(node, made.id)
    assert (cancelled.state, cancelled.note) == ("cancelled", {"en": "Talks won"})
    await update_call(node.sessions, node.signer, made.id, {"en": "Why"}, by=None, now=now)
    with pytest.raises(CallError) as caught:
        await amend_call(node.sessions, node.signer, made.id, {"text": TEXT}, by=None, now=now)
    assert caught.value.code == "call_closed"


async def test_an_amendment_must_change_something_and_not_the_kind(node: Node) -> None:
    made = await issue(node)
    before = await row_counts(node)
    attempts: list[dict[str, object]] = [{}, {"location": {"place": "x"}}, {"title": {}}]
    for changes in attempts:
        with pytest.raises(CallError) as caught:
            await amend_call(node.sessions, node.signer, made.id, changes, by=None, now=node.now())
        assert caught.value.code == "invalid_field"
    assert await row_counts(node) == before


async def test_this_node_cannot_change_another_nodes_call(node: Node) -> None:
    other = remote()
    issued = other.envelope(remote_issue(), node.now())
    await apply(node, issued)
    theirs = await call_by_id(node, issued.id)
    assert theirs is not None
    before = await row_counts(node)
    with pytest.raises(CallError) as caught:
        await cancel_call(node.sessions, node.signer, theirs.id, None, by=None, now=node.now())
    assert (caught.value.status, caught.value.code) == (409, "not_issuer")
    assert await row_counts(node) == before


async def test_an_unknown_call_is_not_found(node: Node) -> None:
    with pytest.raises(CallError) as caught:
        await cancel_call(node.sessions, node.signer, 999, None, by=None, now=node.now())
    assert (caught.value.status, caught.value.code) == (404, "call_not_found")


# Received envelopes (SPEC §9.1)


async def test_a_received_call_is_held_with_its_texts(node: Node) -> None:
    await set_policy(node, endorsement_by="admins")
    other = remote()
    issued = other.envelope(remote_issue(), node.now(), "public")
    await apply(node, issued)
    await apply(node, issued)  # a replay changes nothing
    held = await call_by_id(node, issued.id)
    assert held is not None
    assert (held.origin, held.audience, held.kind) == (other.node_id, "public", "strike")
    assert (held.title, held.deadline, held.stance) == (TITLE, START + 5 * DAY, "undecided")


async def test_a_non_issuer_cannot_amend_cancel_update_or_conclude(node: Node) -> None:
    issuer, intruder = remote(), remote()
    issued = issuer.envelope(remote_issue(), node.now())
    await apply(node, issued)
    before = await row_counts(node)
    for message in (
        CallAmend(issued.id, title={"en": "Forged"}),
        CallCancel(issued.id),
        CallUpdate(issued.id, {"en": "Forged news"}),
        CallConclude(issued.id, "called_off"),
    ):
        with pytest.raises(CallIgnored) as caught:
            await apply(node, intruder.envelope(message, node.now()))
        assert caught.value.code == "not_issuer"
    assert await row_counts(node) == before
    held = await call_by_id(node, issued.id)
    assert held is not None
    assert (held.state, held.title) == ("open", TITLE)


async def test_amend_after_cancel_is_ignored(node: Node) -> None:
    issuer = remote()
    issued = issuer.envelope(remote_issue(), node.now())
    await apply(node, issued)
    await apply(node, issuer.envelope(CallCancel(issued.id, {"en": "Off"}), node.now()))
    before = await row_counts(node)
    with pytest.raises(CallIgnored) as caught:
        await apply(node, issuer.envelope(CallAmend(issued.id, text={"en": "On"}), node.now()))
    assert caught.value.code == "call_closed"
    with pytest.raises(CallIgnored):
        await apply(node, issuer.envelope(CallConclude(issued.id, "held"), node.now()))
    await apply(node, issuer.envelope(CallCancel(issued.id), node.now()))  # again: no-op
    assert await row_counts(node) == before
    held = await call_by_id(node, issued.id)
    assert held is not None
    assert (held.state, held.text, held.note) == ("cancelled", TEXT, {"en": "Off"})


async def test_a_cancel_before_its_call_is_kept_and_wins(node: Node) -> None:
    issuer, intruder = remote(), remote()
    issued = issuer.envelope(remote_issue(), node.now())
    cancel = issuer.envelope(CallCancel(issued.id, {"en": "Off"}), node.now())
    await apply(node, intruder.envelope(CallCancel(issued.id), node.now()))
    await apply(node, cancel)
    assert await call_by_id(node, issued.id) is None
    await apply(node, issued)
    held = await call_by_id(node, issued.id)
    assert held is not None
    assert (held.state, held.note) == ("cancelled", {"en": "Off"})
    async with node.sessions() as session:  # the kept cancels were used up
        assert await store.pop_early_cancels(session, issued.id) == []
        assert await store.live_proposals(session, issued.id) == []  # and no vote opened


async def test_only_the_issuers_early_cancel_counts(node: Node) -> None:
    issuer, intruder = remote(), remote()
    issued = issuer.envelope(remote_issue(), node.now())
    await apply(node, intruder.envelope(CallCancel(issued.id), node.now()))
    await apply(node, issued)
    held = await call_by_id(node, issued.id)
    assert held is not None
    assert held.state == "open"


async def test_amendments_apply_in_order_and_a_stale_one_is_ignored(node: Node) -> None:
    issuer = remote()
    issued = issuer.envelope(remote_issue(), node.now())
    await apply(node, issued)
    first = issuer.envelope(CallAmend(issued.id, title={"en": "One"}), node.now())
    second = issuer.envelope(
        CallAmend(issued.id, text={"en": "Two"}, location=Location("IQ-NI")), node.now()
    )
    await apply(node, first)
    await apply(node, second)
    with pytest.raises(CallIgnored) as caught:
        await apply(node, first)
    assert caught.value.code == "stale_amendment"
    held = await call_by_id(node, issued.id)
    assert held is not None
    assert (held.title, held.text, held.region, held.place) == (
        {"en": "One"}, {"en": "Two"}, "IQ-NI", None,
    )  # fmt: skip
    assert held.amended_seq == second.envelope.seq


async def test_messages_about_an_unknown_call_are_ignored(node: Node) -> None:
    issuer = remote()
    for message in (
        CallAmend(b"\x01" * 32, title={"en": "x"}),
        CallUpdate(b"\x01" * 32, {"en": "x"}),
        CallConclude(b"\x01" * 32, "held"),
    ):
        with pytest.raises(CallIgnored) as caught:
            await apply(node, issuer.envelope(message, node.now()))
        assert caught.value.code == "unknown_call"


async def test_updates_and_conclusion_from_the_issuer(node: Node) -> None:
    issuer = remote()
    issued = issuer.envelope(remote_issue(), node.now())
    await apply(node, issued)
    await apply(node, issuer.envelope(CallUpdate(issued.id, {"en": "Day 1"}), node.now()))
    await apply(node, issuer.envelope(CallConclude(issued.id, "partial"), node.now()))
    held = await call_by_id(node, issued.id)
    assert held is not None
    assert (held.state, held.outcome) == ("concluded", "partial")
    async with node.sessions() as session:
        assert [u.text for u in await store.list_updates(session, held.id)] == [{"en": "Day 1"}]
