"""A coalition across four real node processes on 127.0.0.1 (SPEC §15), driven with the
``tadamun coalition`` and ``tadamun call`` commands while the servers run and deliver.

Alliances: a—b, b—c, b—d, c—d (c and d are not allied with a). a founds a coalition and
invites b (an ally); b joins and invites c (b's ally: a node takes invites from allies only),
which joins; a learns of both through b. A call a addresses
to the coalition reaches b directly and c through b, and never d, though d is allied with b
and with c. c leaves: a's next call reaches b, and not c.
"""

from __future__ import annotations

import re
from pathlib import Path

from cluster import NodeProcess, cluster, peer, poll, run
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.storage.models import CallRow, CoalitionMember, CoalitionRow, EnvelopeRow

FOUNDED = re.compile(r"^Coalition (\d+) founded: ([0-9a-f]{64})$", re.MULTILINE)


async def standings(node: NodeProcess) -> dict[bytes, str]:
    """Who is in (the only) coalition, as ``node`` computes it."""

    async def query(session: AsyncSession) -> dict[bytes, str]:
        rows = await session.execute(select(CoalitionMember.node, CoalitionMember.state))
        return dict(rows.all())

    return await node.read(query)


async def calls(node: NodeProcess) -> list[str]:
    """English titles of the calls ``node`` holds."""

    async def query(session: AsyncSession) -> list[str]:
        return [row.title.get("en", "") for row in await session.scalars(select(CallRow))]

    return await node.read(query)


async def readable(node: NodeProcess, audience: str) -> int:
    """How many envelopes to ``audience`` ``node`` holds with their bytes."""

    async def query(session: AsyncSession) -> int:
        rows = await session.scalars(
            select(EnvelopeRow.id).where(
                EnvelopeRow.audience == audience, EnvelopeRow.wire.is_not(None)
            )
        )
        return len(list(rows))

    return await node.read(query)


async def number_here(node: NodeProcess) -> str:
    async def query(session: AsyncSession) -> str:
        row = await session.scalar(select(CoalitionRow))
        assert row is not None, f"{node.name} knows no coalition"
        return str(row.id)

    return await node.read(query)


async def issue(node: NodeProcess, audience: str, title: str) -> None:
    out = await run(
        "call", "issue", "--data-dir", node.data_dir, "--kind", "strike", "--title-en", title,
        "--text-en", "Stop work.", "--audience", audience,
    )  # fmt: skip
    assert "issued" in out, out


async def test_a_coalition_call_reaches_members_only(tmp_path: Path) -> None:
    async with cluster(tmp_path) as nodes:
        a, b, c, d = await nodes.make(4)
        await nodes.start([a, b, c, d])
        for inviter, joiner in ((a, b), (b, c), (b, d), (c, d)):
            await peer(inviter, joiner)
        out = await run("coalition", "found", "--data-dir", a.data_dir, "--name-en", "South")
        found = FOUNDED.search(out)
        assert found, out
        audience = f"coalition:{found[2]}"
        for inviter, joiner in ((a, b), (b, c)):
            number = await number_here(inviter)
            await run("coalition", "invite", "--data-dir", inviter.data_dir, number,
                      joiner.node_id.hex())  # fmt: skip

            async def invited(node: NodeProcess = joiner) -> bool:
                return (await standings(node)).get(node.node_id) == "invited"

            await poll(invited, what=f"{joiner.name} invited")
            await run("coalition", "join", "--data-dir", joiner.data_dir, await number_here(joiner))
        everyone = {n.node_id: "member" for n in (a, b, c)}

        async def joined() -> bool:
            return all([await standings(n) == everyone for n in (a, b, c)])

        await poll(joined, what="a, b and c each see all three as members")

        await issue(a, audience, "First")

        async def first_arrived() -> bool:
            return all([await calls(n) == ["First"] for n in (b, c)])

        await poll(first_arrived, what="the coalition call at b and, through b, at c")

        await run("coalition", "leave", "--data-dir", c.data_dir, await number_here(c))
        left = everyone | {c.node_id: "left"}

        async def c_left() -> bool:
            return all([await standings(n) == left for n in (a, b, c)])

        await poll(c_left, what="everyone sees c left")
        await issue(a, audience, "Second")

        async def second_arrived() -> bool:
            return await calls(b) == ["First", "Second"] and await b.pending() == 0

        await poll(second_arrived, what="the second call at b, and b's outbox empty")
        await poll(lambda: _quiet(a), what="a's outbox empty")
        assert await calls(c) == ["First"]  # left before the second call
        assert await calls(d) == []
        assert await readable(d, audience) == 0  # not one coalition envelope readable at d
        assert (await standings(d)) == {}


async def _quiet(node: NodeProcess) -> bool:
    return await node.pending() == 0
