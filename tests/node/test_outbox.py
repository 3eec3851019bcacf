"""The outbox (node.federation.outbox, node.storage.outbox): recipients by audience and peer
state, rows written in the envelope's own transaction, the relay path grown at send time."""

from __future__ import annotations

import secrets

import pytest
from delivery_support import add_peer, publish
from sqlalchemy import delete, select
from test_decisions_support import START, Node

from node.federation.outbox import enqueue, recipients, relay_wire
from node.storage.models import Alliance, EnvelopeRow, OutboxEntry
from protocol import SignedEnvelope, SigningKey, build_envelope, sign
from protocol.envelope import MAX_RELAY_PATH


def node_id() -> bytes:
    return secrets.token_bytes(32)


async def queued(node: Node) -> list[tuple[bytes, bytes]]:
    """(peer, envelope id) of every outbox row, in the order written."""
    async with node.sessions() as session:
        rows = await session.execute(
            select(OutboxEntry.peer, OutboxEntry.envelope_id).order_by(OutboxEntry.id)
        )
        return [(peer, envelope) for peer, envelope in rows]


async def peers_by_state(node: Node) -> dict[str, bytes]:
    ids = {state: node_id() for state in ("allied", "introduced", "blocked", "removed")}
    for state, peer in ids.items():
        await add_peer(node, peer, f"https://{state}.example", state)
    return ids


async def test_own_public_and_allies_go_to_allied_peers_only(node: Node) -> None:
    ids = await peers_by_state(node)
    second_ally = node_id()
    await add_peer(node, second_ally, "https://ally2.example")
    await publish(node, audience="public")
    await publish(node, audience="allies")
    rows = await queued(node)
    assert sorted(peer for peer, _ in rows) == sorted([ids["allied"], second_ally] * 2)


@pytest.mark.parametrize(
    ("state", "expected"),
    [("allied", True), ("introduced", True), ("blocked", False), ("removed", False)],
)
async def test_node_audience_goes_to_that_peer_if_reachable(
    node: Node, state: str, expected: bool
) -> None:
    ids = await peers_by_state(node)
    await publish(node, audience=f"node:{ids[state].hex()}")
    assert [peer for peer, _ in await queued(node)] == ([ids[state]] if expected else [])


async def test_node_audience_of_a_stranger_and_coalitions_go_nowhere(node: Node) -> None:
    await peers_by_state(node)
    await publish(node, audience=f"node:{node_id().hex()}")
    await publish(node, audience=f"coalition:{node_id().hex()}")
    assert await queued(node) == []


async def test_rows_commit_with_the_envelope_or_not_at_all(node: Node) -> None:
    ally = node_id()
    await add_peer(node, ally, "https://ally.example")

    async with node.sessions() as session:
        await session.begin()
        await node.signer.append(
            session, type="node.descriptor", audience="public", now=START,
            body={"name": {"en": "U"}, "endpoints": ["https://u.example"]},
        )  # fmt: skip
        assert len(await queued(node)) == 0  # not visible before the commit
        await session.rollback()
    assert await queued(node) == []
    await publish(node)
    assert len(await queued(node)) == 1


async def test_expired_envelopes_are_not_queued(node: Node) -> None:
    await add_peer(node, node_id(), "https://ally.example")
    await publish(node, expires=START + 1)
    async with node.sessions.begin() as session:
        row = (await session.scalars(select(EnvelopeRow))).one()
        await session.execute(delete(OutboxEntry))
        assert await enqueue(session, row, now=START + 1) == 0
        assert await enqueue(session, row, now=START) == 1
    [entry] = await _entries(node)
    assert entry.expires_at == START + 1


async def _entries(node: Node) -> list[OutboxEntry]:
    async with node.sessions() as session:
        return list(await session.scalars(select(OutboxEntry)))


def foreign(
    audience: str, path: tuple[bytes, ...] = (), expires: int | None = None
) -> tuple[bytes, SignedEnvelope]:
    """An envelope of another origin, as a relay holds it."""
    key = SigningKey.generate()
    origin = node_id()
    envelope = build_envelope(
        type="node.descriptor", origin=origin, kpos=0, seq=1, prev=None, created=START,
        body={"name": {"en": "Other"}, "endpoints": ["https://other.example"]},
        audience=audience, expires=expires,
    )  # fmt: skip
    signed = sign(envelope, key)
    for hop in path:
        signed = signed.relayed_by(hop)
    return origin, signed


async def hold(node: Node, signed: SignedEnvelope) -> EnvelopeRow:
    row = EnvelopeRow(
        origin=signed.envelope.origin, seq=signed.envelope.seq, id=signed.id,
        type=signed.envelope.type, audience=signed.envelope.audience, wire=signed.to_bytes(),
        created_at=START, received_at=START,
    )  # fmt: skip
    async with node.sessions.begin() as session:
        session.add(row)
    return row


async def relay_to(node: Node, row: EnvelopeRow, skip: tuple[bytes, ...] = ()) -> list[bytes]:
    async with node.sessions() as session:
        return await recipients(session, row, skip=skip)


async def test_relayed_public_skips_origin_path_sender_and_non_allies(node: Node) -> None:
    ids = await peers_by_state(node)
    on_path, sender, fresh = node_id(), node_id(), node_id()
    for peer in (on_path, sender, fresh):
        await add_peer(node, peer, "https://x.example")
    origin, signed = foreign("public", path=(on_path,))
    await add_peer(node, origin, "https://origin.example")
    row = await hold(node, signed)
    assert sorted(await relay_to(node, row, skip=(sender,))) == sorted([ids["allied"], fresh])


async def test_relayed_allies_go_only_to_peers_the_origin_declared_allied(node: Node) -> None:
    declared, undeclared, ended = node_id(), node_id(), node_id()
    for peer in (declared, undeclared, ended):
        await add_peer(node, peer, "https://x.example")
    origin, signed = foreign("allies")
    async with node.sessions.begin() as session:
        for peer, state in ((declared, "allied"), (ended, "ended")):
            session.add(Alliance(node=origin, peer=peer, state=state, seq=1, updated_at=START))
    row = await hold(node, signed)
    assert await relay_to(node, row) == [declared]


async def test_relayed_node_audience_and_full_paths_are_never_relayed(node: Node) -> None:
    ally = node_id()
    await add_peer(node, ally, "https://ally.example")
    _, addressed = foreign(f"node:{ally.hex()}")
    _, far = foreign("public", path=tuple(node_id() for _ in range(MAX_RELAY_PATH)))
    for signed in (addressed, far):
        assert await relay_to(node, await hold(node, signed)) == []


async def test_relay_wire_appends_this_node_to_foreign_envelopes_only(node: Node) -> None:
    hop = node_id()
    _, signed = foreign("public", path=(hop,))
    me = node.signer.node_id
    relayed = SignedEnvelope.from_bytes(relay_wire(signed.to_bytes(), me))
    assert (relayed.path, relayed.id, relayed.sig) == ((hop, me), signed.id, signed.sig)
    await publish(node)
    async with node.sessions() as session:
        own = (await session.scalars(select(EnvelopeRow.wire))).one()
    assert own is not None
    assert relay_wire(own, me) == own
