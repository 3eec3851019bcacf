"""Helpers shared by the decision and signer tests (no tests here): a migrated node with its
keys on disk, members, drafts, and a fake clock that says when something sleeps on it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from node.clock import FakeClock
from node.identity import Identity, new_identity, write_identity
from node.services.decisions import BallotKeys, Draft, ProposalView, cast_vote, create_proposal
from node.services.setup import record_identity
from node.services.signer import Signer, load_signer
from node.storage.db import session_factory, upgrade
from node.storage.models import Ballot, Base, KeyEventRow, Member
from protocol import KeyState, SignedKeyEvent

START = 1_800_000_000
HOUR = 3_600


class SignallingClock(FakeClock):
    """A FakeClock that reports each sleep (its length) once the sleeper is registered, so a
    test can advance time knowing the sleeper will wake; no real sleeping."""

    def __init__(self, start: int = START) -> None:
        super().__init__(start)
        self.sleeps: asyncio.Queue[float] = asyncio.Queue()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.put_nowait(seconds)  # FakeClock registers the sleeper before it yields
        await super().sleep(seconds)


@dataclass
class Node:
    sessions: async_sessionmaker[Any]
    signer: Signer
    keys: BallotKeys
    identity: Identity
    clock: SignallingClock
    data_dir: Path

    def now(self) -> int:
        return self.clock.now()


async def start_node(engine: AsyncEngine, data_dir: Path) -> Node:
    """A migrated database holding a new node's identity, and its key files in ``data_dir``."""
    await upgrade(engine)
    identity = new_identity(officers=1, threshold=1, now=START)
    write_identity(data_dir, identity)
    sessions = session_factory(engine)
    await record_identity(sessions, identity, "Union", START)
    clock = SignallingClock()
    return Node(
        sessions, load_signer(data_dir), BallotKeys.load(data_dir), identity, clock, data_dir
    )


async def add_member(node: Node, role: str = "member", status: str = "active") -> int:
    async with node.sessions.begin() as session:
        count = await session.scalar(select(func.count()).select_from(Member))
        member = Member(
            pseudonym=f"m{count}-{role}-{status}", role=role, status=status,
            password_hash="x", language="ar", created_at=START,  # noqa: S106 - not a password
        )  # fmt: skip
        session.add(member)
        await session.flush()
        return member.id


async def add_members(node: Node, count: int) -> list[int]:
    return [await add_member(node) for _ in range(count)]


def draft(**changes: Any) -> Draft:
    """A valid draft opening at START and closing an hour later; ``changes`` override it."""
    base = Draft(
        title="Strike on 1 May?", body="The committee proposes a one-day strike.",
        options=("yes", "no"), method="majority", quorum=(1, 4), ballot="secret",
        opens_at=START, closes_at=START + HOUR,
    )  # fmt: skip
    return replace(base, **changes)


async def propose(node: Node, by: int | None = None, **changes: Any) -> ProposalView:
    organiser = by if by is not None else await add_member(node, "organiser")
    return await create_proposal(node.sessions, draft(**changes), by=organiser, now=node.now())


async def vote(node: Node, public_id: bytes, member: int, choice: Any) -> None:
    await cast_vote(node.sessions, node.keys, public_id, member, choice, now=node.now())


async def key_state(node: Node) -> KeyState:
    async with node.sessions() as session:
        rows = await session.scalars(select(KeyEventRow.wire).order_by(KeyEventRow.pos))
        return KeyState.from_log([SignedKeyEvent.from_bytes(wire) for wire in rows])


async def ballot_rows(node: Node) -> list[Any]:
    async with node.sessions() as session:
        return list((await session.execute(select(Ballot).order_by(Ballot.id))).scalars())


async def row_counts(node: Node) -> dict[str, int]:
    """Rows in every table: to show that a refused request changed nothing."""
    async with node.sessions() as session:
        return {
            name: int(await session.scalar(select(func.count()).select_from(table)) or 0)
            for name, table in Base.metadata.tables.items()
        }
