"""Secret ballots: until close a member finds and changes their own ballot through a keyed
hash; after close nothing joins a voter to a choice (no member, no time, no voter key, no row
order, no PostgreSQL transaction id), while the voter roll still shows who voted."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from test_decisions_support import (
    HOUR,
    START,
    Node,
    add_member,
    add_members,
    ballot_rows,
    propose,
    vote,
)

from node.services import decisions
from node.services.closing import (
    close_due,
)
from node.services.decisions import (
    DecisionError,
    MyVote,
    my_vote,
)
from node.storage import decisions as store
from node.storage.models import Base, Proposal, VoterRoll


async def close(node: Node) -> None:
    node.clock.advance(HOUR)
    await close_due(node.sessions, node.signer, node.now())


def test_ballots_and_the_voter_roll_have_no_time_columns() -> None:
    ballots = set(Base.metadata.tables["ballots"].columns.keys())
    assert ballots == {"id", "proposal_id", "voter_key", "member_id", "choice", "option_position"}
    assert set(Base.metadata.tables["voter_roll"].columns.keys()) == {"proposal_id", "member_id"}


async def test_before_close_a_member_finds_and_changes_their_secret_ballot(node: Node) -> None:
    alice, bob = await add_members(node, 2)
    made = await propose(node, options=("a", "b", "c"))
    await vote(node, made.public_id, alice, 0)
    await vote(node, made.public_id, bob, 2)
    await vote(node, made.public_id, alice, 1)
    rows = await ballot_rows(node)
    assert [r.member_id for r in rows] == [None, None]
    assert {r.voter_key for r in rows} == {
        node.keys.voter_key(made.public_id, alice), node.keys.voter_key(made.public_id, bob),
    }  # fmt: skip
    assert await my_vote(node.sessions, node.keys, made.public_id, alice) == MyVote(True, 1)
    assert await my_vote(node.sessions, node.keys, made.public_id, bob) == MyVote(True, 2)
    outsider = await add_member(node)
    assert await my_vote(node.sessions, node.keys, made.public_id, outsider) == MyVote(False, None)


async def test_after_close_no_one_can_join_voter_and_choice(node: Node) -> None:
    voters = await add_members(node, 3)
    made = await propose(node)
    for member, choice in zip(voters, (0, 1, "abstain"), strict=True):
        await vote(node, made.public_id, member, choice)
    await close(node)

    rows = await ballot_rows(node)
    assert sorted(str(r.option_position) + r.choice for r in rows) == [
        "0option", "1option", "Noneabstain",
    ]  # fmt: skip
    assert all(r.voter_key is None and r.member_id is None for r in rows)
    for member in voters:  # even the node, holding the secret, finds no ballot by voter key
        assert await my_vote(node.sessions, node.keys, made.public_id, member) == MyVote(True, None)
        async with node.sessions() as session:
            proposal = await store.get_proposal(session, made.public_id)
            key = node.keys.voter_key(made.public_id, member)
            assert await store.get_ballot(session, proposal.id, key) is None
    assert await decisions.list_voters(node.sessions, made.public_id) == sorted(voters)
    with pytest.raises(DecisionError) as refused:
        await decisions.list_open_votes(node.sessions, made.public_id)
    assert refused.value.code == "ballot_secret"


def _member_columns(connection: Connection) -> list[tuple[str, str]]:
    """Every (table, column) of the live schema that references members.id."""
    found = []
    inspector = inspect(connection)
    for table in inspector.get_table_names():
        for foreign_key in inspector.get_foreign_keys(table):
            if foreign_key["referred_table"] == "members":
                found += [(table, column) for column in foreign_key["constrained_columns"]]
    return found


async def test_an_export_of_a_member_reveals_no_secret_choice(
    node: Node, engine: AsyncEngine
) -> None:
    alice, bob = await add_members(node, 2)
    made = await propose(node)
    await vote(node, made.public_id, alice, 1)
    await vote(node, made.public_id, bob, 0)
    await close(node)
    alice_key = node.keys.voter_key(made.public_id, alice)

    async with engine.connect() as connection:
        columns = await connection.run_sync(_member_columns)
        assert ("ballots", "member_id") in columns
        exported: dict[str, list[dict[str, Any]]] = {}
        for table, column in columns:  # everything the database holds under alice's id
            query = text(f"SELECT * FROM {table} WHERE {column} = :member")  # noqa: S608
            rows = (await connection.execute(query, {"member": alice})).mappings().all()
            exported.setdefault(table, []).extend(dict(row) for row in rows)
        keys = (await connection.execute(text("SELECT voter_key FROM ballots"))).scalars().all()

    assert exported["ballots"] == []
    assert [set(row) for row in exported["voter_roll"]] == [{"proposal_id", "member_id"}]
    values = [v for rows in exported.values() for row in rows for v in row.values()]
    assert alice_key not in values
    assert alice_key not in keys
    assert set(keys) == {None}


async def test_closing_rewrites_secret_ballots_in_a_random_order(node: Node) -> None:
    voters = await add_members(node, 24)
    made = await propose(node)
    for i, member in enumerate(voters):  # the first half chose 0, the second half 1
        await vote(node, made.public_id, member, i // 12)
    assert [r.option_position for r in await ballot_rows(node)] == [0] * 12 + [1] * 12
    await close(node)
    after = [r.option_position for r in await ballot_rows(node)]
    assert sorted(after) == [0] * 12 + [1] * 12
    assert after != [0] * 12 + [1] * 12  # the vote order is gone (chance of failing: 1 in 2.7M)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_closing_gives_all_ballots_one_transaction_id(
    node: Node, engine: AsyncEngine
) -> None:
    voters = await add_members(node, 4)
    made = await propose(node)
    for member in voters:
        await vote(node, made.public_id, member, 0)
    xmin = text("SELECT count(DISTINCT xmin::text) FROM ballots")
    async with engine.connect() as connection:
        assert (await connection.execute(xmin)).scalar() == 4  # one per vote: a join by xmin
    await close(node)
    async with engine.connect() as connection:
        assert (await connection.execute(xmin)).scalar() == 1  # the closing transaction's


async def test_a_cancelled_secret_ballot_keeps_nothing(node: Node) -> None:
    voter, admin = await add_member(node), await add_member(node, "admin")
    made = await propose(node)
    await vote(node, made.public_id, voter, 0)
    await decisions.cancel_proposal(node.sessions, made.public_id, by=admin, now=START)
    assert await ballot_rows(node) == []
    async with node.sessions() as session:
        assert list(await session.scalars(select(VoterRoll))) == []
        assert (await session.scalar(select(Proposal.result))) is None
