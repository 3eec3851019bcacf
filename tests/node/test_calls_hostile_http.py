"""Hostile and out-of-order ``call.*`` envelopes pushed over real HTTP to a served node's
inbox (issue 5 item 7): a cancel before its call, a non-issuer amending or cancelling, an
amendment after a cancel, an activation whose tallies do not add up, tally equivocation and a
tally below k. Each gets its per-item code (SPEC §12, §14.3) and changes nothing it must not.
Pledges after the deadline are refused by the JSON API (tests/node/test_api_calls.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from inbox_support import Origin
from peering_support import FedNode, fed_node
from sqlalchemy import select
from test_calls import remote_issue
from test_decisions_support import START
from test_inbox_http import CLIENT, make_peer

from node.clock import FakeClock
from node.federation.client import FederationClient
from node.federation.wire import decode_batch_result, encode_inbox_request
from node.services.signer import Signer
from node.storage.models import CallRow, TallyRow
from protocol import CallActivate, CallAmend, CallCancel, CallTally, SignedEnvelope

AMENDED = {"en": "Amended by someone"}


@pytest.fixture
async def node(tmp_path: Path, database_url: str) -> AsyncIterator[FedNode]:
    async with fed_node(tmp_path, database_url, "receiver", FakeClock(START)) as served:
        yield served


async def push(node: FedNode, sender: Origin, *signed: SignedEnvelope) -> tuple[str, ...]:
    """POST ``signed`` (the sender's own envelopes) to the node's inbox, signed by the sender;
    the per-item results."""
    body = encode_inbox_request([item.to_bytes() for item in signed], sender.keys)
    async with FederationClient(CLIENT, Signer(sender.node_id, sender.key), node.clock) as client:
        response = await client.post(node.url + "/federation/v1/inbox", body,
                                     destination=node.node_id)  # fmt: skip
    assert response.status == 200, response.body[:200]
    return tuple(decode_batch_result(response.body, 1 << 20).results)


def call_envelope(origin: Origin, message: Any) -> SignedEnvelope:
    return origin.envelope(type=message.TYPE, body=message.to_body(), audience="allies")


async def held_call(node: FedNode, call_id: bytes) -> CallRow:
    async with node.sessions() as session:
        row: CallRow | None = await session.scalar(
            select(CallRow).where(CallRow.call_id == call_id)
        )
    assert row is not None
    return row


async def tallies(node: FedNode, call_id: bytes) -> list[TallyRow]:
    async with node.sessions() as session:
        rows = await session.scalars(select(TallyRow).where(TallyRow.call_id == call_id))
        return sorted(rows, key=lambda row: row.firm)


async def issued(node: FedNode) -> tuple[Origin, SignedEnvelope]:
    issuer = await make_peer(node)
    issue = call_envelope(issuer, remote_issue())
    assert await push(node, issuer, issue) == ("ok",)
    return issuer, issue


async def test_a_cancel_before_its_call_is_held_and_wins(node: FedNode) -> None:
    issuer = await make_peer(node)
    issue = call_envelope(issuer, remote_issue())
    cancel = call_envelope(issuer, CallCancel(issue.id, {"en": "called off"}))
    assert await push(node, issuer, cancel) == ("held",)
    assert await push(node, issuer, issue) == ("ok",)
    assert (await held_call(node, issue.id)).state == "cancelled"


async def test_only_the_issuer_amends_or_cancels(node: FedNode) -> None:
    _, issue = await issued(node)
    mallory = await make_peer(node)
    forged = (call_envelope(mallory, CallAmend(issue.id, title=AMENDED)),
              call_envelope(mallory, CallCancel(issue.id)))  # fmt: skip
    assert await push(node, mallory, *forged) == ("not_issuer", "not_issuer")
    call = await held_call(node, issue.id)
    assert call.state == "open"
    assert call.title == remote_issue().title


async def test_an_amendment_after_the_cancel_changes_nothing(node: FedNode) -> None:
    issuer, issue = await issued(node)
    late = (call_envelope(issuer, CallCancel(issue.id)),
            call_envelope(issuer, CallAmend(issue.id, title=AMENDED)))  # fmt: skip
    assert await push(node, issuer, *late) == ("ok", "call_closed")
    call = await held_call(node, issue.id)
    assert (call.state, call.title) == ("cancelled", remote_issue().title)


async def test_an_activation_that_does_not_add_up_is_refused(node: FedNode) -> None:
    _, issue = await issued(node)  # threshold: 20 pledges across 2 organisations
    first, second = await make_peer(node), await make_peer(node)
    one = call_envelope(first, CallTally(issue.id, 1, 10, 0, 5, 10))
    two = call_envelope(second, CallTally(issue.id, 1, 5, 0, 5, 5))
    assert await push(node, first, one) == ("ok",)
    assert await push(node, second, two) == ("ok",)
    mallory = await make_peer(node)
    inflated = call_envelope(mallory, CallActivate(issue.id, tuple(sorted((one.id, two.id))),
                                                   20, 2))  # fmt: skip
    assert await push(node, mallory, inflated) == ("activation_unproven",)
    call = await held_call(node, issue.id)
    assert (call.state, call.activation) == ("open", None)


async def test_tally_equivocation_is_kept_as_evidence(node: FedNode) -> None:
    _, issue = await issued(node)
    teller = await make_peer(node)
    both = (call_envelope(teller, CallTally(issue.id, 1, 10, 0, 5, 10)),
            call_envelope(teller, CallTally(issue.id, 1, 15, 0, 5, 10)))  # fmt: skip
    assert await push(node, teller, *both) == ("ok", "ok")
    rows = await tallies(node, issue.id)
    assert [(row.seq, row.firm, row.equivocation) for row in rows] == [(1, 10, True),
                                                                       (1, 15, True)]  # fmt: skip


async def test_a_tally_below_k_is_refused(node: FedNode) -> None:
    _, issue = await issued(node)
    teller = await make_peer(node)
    body = {"call": issue.id, "seq": 1, "firm": 3, "conditional": 0, "bucket": 1, "k": 5}
    small = teller.envelope(type="call.tally", body=body, audience="allies")
    assert await push(node, teller, small) == ("invalid_field",)
    assert await tallies(node, issue.id) == []
