"""Calls between real node processes on 127.0.0.1: a call issued with ``tadamun call issue``
on one node reaches its ally over HTTP, whose inbox applies it through the call handlers
(node.services.calls_apply): the ally's "do we join?" vote opens at once (its default policy).
The issuer's cancel follows the same way and cancels the call and the vote there."""

from __future__ import annotations

import time
from pathlib import Path

from cluster import NodeProcess, cluster, peer, poll, run
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.services.calls import cancel_call
from node.services.signer import load_signer
from node.storage.db import create_engine, session_factory
from node.storage.models import CallRow, Proposal


async def held(node: NodeProcess) -> list[tuple[bytes, str, str, str | None]]:
    """(call id, state, stance, status of its "do we join?" proposal) of each call held."""

    async def query(session: AsyncSession) -> list[tuple[bytes, str, str, str | None]]:
        calls = list(await session.scalars(select(CallRow).order_by(CallRow.id)))
        found = []
        for call in calls:
            status = await session.scalar(
                select(Proposal.status).where(Proposal.call_id == call.call_id)
            )
            found.append((call.call_id, call.state, call.stance, status))
        return found

    return await node.read(query)


async def test_a_call_reaches_an_ally_and_opens_its_vote(tmp_path: Path) -> None:
    async with cluster(tmp_path) as nodes:
        a, b = await nodes.make(2)
        await nodes.start([a, b])
        await peer(a, b)
        out = await run(
            "call", "issue", "--data-dir", a.data_dir, "--kind", "strike",
            "--title-en", "General strike", "--title-ar", "إضراب عام", "--text-en", "Stop.",
            "--threshold-pledges", "100", "--threshold-orgs", "2",
            "--deadline", time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() + 86_400)),
        )  # fmt: skip
        assert "issued" in out, out
        ((call_id, *_),) = await held(a)

        async def arrived() -> bool:
            return await held(b) == [(call_id, "open", "voting", "open")]

        await poll(arrived, what="the call applied at the ally, its vote open")

        engine = create_engine(a.db_url)
        try:
            sessions = session_factory(engine)
            await cancel_call(sessions, load_signer(a.data_dir), 1, {"en": "Won"}, by=None,
                              now=int(time.time()))  # fmt: skip
        finally:
            await engine.dispose()

        async def cancelled() -> bool:
            return await held(b) == [(call_id, "cancelled", "voting", "cancelled")]

        await poll(cancelled, what="the cancel applied at the ally, its vote cancelled")
