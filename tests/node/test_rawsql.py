"""Plain SQL on the inbox's hot path (node.storage.rawsql), on SQLite and PostgreSQL: it runs
in the session's transaction, reports a key taken as the ORM would, sees the session's
pending objects, and the envelope INSERT of a large batch goes in chunks."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from node.storage import inbox as store
from node.storage import nonces
from node.storage.db import session_factory, upgrade
from node.storage.errors import Conflict
from node.storage.models import EnvelopeRow, Peer
from node.storage.peers import INTRODUCED, record_contact
from node.storage.rawsql import Raw, _numbered

NOW = 1_800_000_000


@pytest.fixture
async def sessions(engine: AsyncEngine) -> async_sessionmaker[Any]:
    await upgrade(engine)
    return session_factory(engine)


async def _nonce_count(sessions: async_sessionmaker[Any]) -> int:
    async with sessions() as session:
        return await nonces.count_nonces(session)


def test_markers_are_numbered_for_asyncpg() -> None:
    assert _numbered("a = ? AND b IN (?, ?)") == "a = $1 AND b IN ($2, $3)"
    assert _numbered("SELECT 1") == "SELECT 1"


async def test_a_statement_is_part_of_the_sessions_transaction(
    sessions: async_sessionmaker[Any],
) -> None:
    keyid = secrets.token_bytes(32)

    async def put_then_fail() -> None:
        async with sessions.begin() as session:
            await nonces.put_nonce(session, keyid, "rolled-back-nonce-01", NOW)
            raise RuntimeError("undo")

    with pytest.raises(RuntimeError):
        await put_then_fail()
    assert await _nonce_count(sessions) == 0
    async with sessions.begin() as session:
        await nonces.put_nonce(session, keyid, "committed-nonce-0001", NOW)
    assert await _nonce_count(sessions) == 1


async def test_a_key_taken_is_an_integrity_error(
    sessions: async_sessionmaker[Any],
) -> None:
    keyid = secrets.token_bytes(32)
    async with sessions.begin() as session:
        await nonces.put_nonce(session, keyid, "the-only-nonce-00001", NOW)

    async def insert_again() -> None:
        async with sessions.begin() as session:
            raw = await Raw.of(session)
            sql = "INSERT INTO nonces (keyid, nonce, expires_at) VALUES (?, ?, ?)"
            await raw.execute(sql, (keyid, "the-only-nonce-00001", NOW))

    async def put_again() -> None:
        async with sessions.begin() as session:
            await nonces.put_nonce(session, keyid, "the-only-nonce-00001", NOW)

    with pytest.raises(IntegrityError):
        await insert_again()
    with pytest.raises(Conflict):  # as the repository function reports it
        await put_again()
    assert await _nonce_count(sessions) == 1


async def test_pending_objects_are_flushed_before_a_statement(
    sessions: async_sessionmaker[Any],
) -> None:
    node = secrets.token_bytes(32)
    async with sessions.begin() as session:
        session.add(
            Peer(node_id=node, endpoint="https://peer.example", state=INTRODUCED,
                 created_at=NOW, updated_at=NOW, failures=3, next_attempt_at=NOW + 600)
        )  # fmt: skip
        await record_contact(session, node, NOW + 1)  # an UPDATE of the row just added
    async with sessions() as session:
        peer = await session.get(Peer, node)
        assert peer is not None
        assert (peer.last_contact_at, peer.failures, peer.next_attempt_at) == (NOW + 1, 0, 0)


async def test_one_connection_per_transaction(
    sessions: async_sessionmaker[Any],
) -> None:
    async with sessions() as session:
        first = await Raw.of(session)
        assert await Raw.of(session) is first
        assert await first.fetch("SELECT ? + 1", (41,)) == [(42,)]
        await session.commit()
        assert await Raw.of(session) is not first  # a new transaction, maybe a new connection


async def test_a_large_batch_of_envelopes_is_inserted_in_chunks(
    sessions: async_sessionmaker[Any],
) -> None:
    origin = secrets.token_bytes(32)
    count = 2 * store.INSERT_ROWS + 3
    rows = [
        (origin, seq, secrets.token_bytes(32), "org.example.note", "public", b"\x80", NOW, NOW)
        for seq in range(1, count + 1)
    ]
    async with sessions.begin() as session:
        await store.insert_envelopes(session, rows)
        await store.insert_envelopes(session, [])
    async with sessions() as session:
        stored = await session.execute(
            select(EnvelopeRow.seq, EnvelopeRow.id).where(EnvelopeRow.origin == origin)
        )
        assert sorted(stored) == [(row[1], row[2]) for row in rows]
