"""The node's signer (node.services.signer): consecutive sequence numbers chained by ``prev``,
signatures that verify against the node's key state, safe allocation under concurrency (two
engines on one database stand for two processes), and refusals when the keys do not fit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import delete, select
from test_decisions_support import START, Node, key_state

from node.identity import KEYS_DIR, OPERATIONAL_KEY, KeyFile, write_key_file
from node.services.signer import Signer, SignerError, load_signer
from node.storage import envelopes
from node.storage.db import create_engine, session_factory
from node.storage.errors import Conflict
from node.storage.models import EnvelopeRow, KeyEventRow, Setting
from protocol import SignedEnvelope, SigningKey, sign_key_event, verify

BODY = {"name": {"en": "Union"}, "endpoints": ["https://union.example"]}


async def sign_one(node: Node, signer: Signer | None = None, now: int = START) -> SignedEnvelope:
    async with node.sessions.begin() as session:
        return await (signer or node.signer).append(
            session, type="node.descriptor", body=BODY, audience="public", now=now
        )


async def stored(node: Node) -> list[EnvelopeRow]:
    async with node.sessions() as session:
        return await envelopes.list_envelopes(session, node.signer.node_id)


def check_chain(rows: list[EnvelopeRow]) -> None:
    """Sequence numbers 1..n, each envelope naming the previous one's id (SPEC §5.2)."""
    assert [row.seq for row in rows] == list(range(1, len(rows) + 1))
    previous = None
    for row in rows:
        assert row.wire is not None
        envelope = SignedEnvelope.from_bytes(row.wire).envelope
        assert (envelope.seq, envelope.prev, envelope.id) == (row.seq, previous, row.id)
        previous = row.id


async def test_envelopes_are_numbered_chained_and_verify(node: Node) -> None:
    first, second = await sign_one(node), await sign_one(node, now=START + 5)
    state = await key_state(node)
    assert (first.envelope.seq, first.envelope.prev, "prev" in first.envelope.fields) == (
        1, None, False,
    )  # fmt: skip
    assert (second.envelope.seq, second.envelope.prev) == (2, first.id)
    for signed in (first, second):
        assert signed.envelope.origin == state.node_id == node.identity.state.node_id
        assert signed.envelope.kpos == state.position == 0
        verify(signed, state, now=START + 10)
    rows = await stored(node)
    check_chain(rows)
    assert [r.wire for r in rows] == [first.to_bytes(), second.to_bytes()]
    assert [(r.type, r.audience, r.created_at) for r in rows] == [
        ("node.descriptor", "public", START), ("node.descriptor", "public", START + 5),
    ]  # fmt: skip


async def test_concurrent_signers_never_share_a_number(node: Node, database_url: str) -> None:
    # Two engines on one database, as two node processes would have, and several tasks each.
    other = create_engine(database_url)
    try:
        factories = [node.sessions, session_factory(other)]

        async def one(i: int) -> SignedEnvelope:
            async with factories[i % 2].begin() as session:
                return await node.signer.append(
                    session, type="node.descriptor", body=BODY, audience="public", now=START + i
                )

        signed = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(12))), 60)
    finally:
        await other.dispose()
    assert sorted(s.envelope.seq for s in signed) == list(range(1, 13))
    check_chain(await stored(node))
    state = await key_state(node)
    for envelope in signed:
        verify(envelope, state, now=START + 20)


async def test_a_rolled_back_transaction_takes_no_number(node: Node) -> None:
    class Boom(Exception):
        pass

    async def sign_then_fail() -> None:
        async with node.sessions.begin() as session:
            await node.signer.append(
                session, type="node.descriptor", body=BODY, audience="public", now=START
            )
            raise Boom

    with pytest.raises(Boom):
        await sign_then_fail()
    assert await stored(node) == []
    assert (await sign_one(node)).envelope.seq == 1


async def test_a_taken_number_is_a_conflict(node: Node) -> None:
    taken = await sign_one(node)
    row = EnvelopeRow(origin=node.signer.node_id, seq=1, id=b"\x07" * 32, type="x.y.z",
                      audience="public", wire=b"", created_at=START, received_at=START)  # fmt: skip
    with pytest.raises(Conflict):
        async with node.sessions.begin() as session:
            await envelopes.put_envelope(session, row)
    assert [r.id for r in await stored(node)] == [taken.id]


async def test_after_a_delegation_only_the_new_key_signs(node: Node) -> None:
    before = await sign_one(node)
    identity = node.identity
    new_key = SigningKey.generate()
    event = identity.state.delegation(op=new_key.public, seal=1, created=START + 60)
    delegation = sign_key_event(event, identity.officers, identity.state)
    async with node.sessions.begin() as session:
        session.add(KeyEventRow(node_id=identity.state.node_id, pos=1, digest=event.digest,
                                wire=delegation.to_bytes(), received_at=START + 60))  # fmt: skip
    with pytest.raises(SignerError) as refused:
        await sign_one(node)
    assert refused.value.code == "operational_key_not_current"

    after = await sign_one(node, Signer(identity.state.node_id, new_key), now=START + 61)
    assert (after.envelope.kpos, after.envelope.seq, after.envelope.prev) == (1, 2, before.id)
    state = await key_state(node)
    verify(after, state, now=START + 62)
    verify(before, state, now=START + 62)  # seq 1 <= seal 1: still valid under position 0


async def test_an_uninitialised_node_cannot_sign(node: Node) -> None:
    async with node.sessions.begin() as session:
        await session.execute(delete(Setting).where(Setting.key == "node_id"))
    with pytest.raises(SignerError) as refused:
        await sign_one(node)
    assert refused.value.code == "node_not_initialised"
    assert refused.value.status == 500
    assert "node_id" not in refused.value.message  # details go to the log, not the client


async def test_a_key_of_another_node_is_refused(node: Node) -> None:
    stranger = Signer(b"\x01" * 32, node.signer.key)
    with pytest.raises(SignerError) as refused:
        await sign_one(node, stranger)
    assert refused.value.code == "operational_key_wrong_node"


async def test_a_broken_stored_key_log_is_refused(node: Node) -> None:
    async with node.sessions.begin() as session:
        await session.execute(delete(KeyEventRow))
    with pytest.raises(SignerError) as refused:
        await sign_one(node)
    assert refused.value.code == "own_key_log_invalid"
    assert await stored(node) == []


def test_load_signer_reads_the_operational_key_file(tmp_path: Path) -> None:
    with pytest.raises(SignerError) as missing:
        load_signer(tmp_path)
    assert missing.value.code == "operational_key_file_invalid"
    (tmp_path / KEYS_DIR).mkdir()
    key = SigningKey.generate()
    write_key_file(tmp_path / KEYS_DIR / OPERATIONAL_KEY, KeyFile("secret", "00" * 32, key.seed))
    with pytest.raises(SignerError, match="kind"):
        load_signer(tmp_path)


async def test_the_log_lists_in_order_and_pages(node: Node) -> None:
    signed = [await sign_one(node, now=START + i) for i in range(5)]
    async with node.sessions() as session:
        page = await envelopes.list_envelopes(session, node.signer.node_id, after=2, limit=2)
        assert [row.seq for row in page] == [3, 4]
        assert await envelopes.count_envelopes(session, node.signer.node_id) == 5
        assert (await envelopes.get_envelope(session, node.signer.node_id, 5)).id == signed[4].id
        ids = list(await session.scalars(select(EnvelopeRow.id).order_by(EnvelopeRow.seq)))
    assert ids == [s.id for s in signed]
