"""Propagation: how long one envelope takes to reach every node of a chain and of a mesh of
real nodes on loopback (issue 4), pushed by the outbox and relayed by each inbox.

Every node is made with ``tadamun init`` and peered with ``tadamun peer invite``/``join``.
The other nodes run as ``tadamun serve`` processes; the origin runs in this process (the
same application ``serve`` runs, on its own port) so that the envelope is signed inside the
node and its delivery starts on the commit, as when a member issues a call, rather than on
the next outbox poll. The clock starts before the envelope is signed and stops when the
last node has stored it (each node's database is polled every 5 ms).

Chain: node i is peered with node i+1 only, so the envelope is relayed N-1 hops. Mesh: every
node is peered with every other. One warm-up envelope first; then the median and the worst
of ``--rounds`` envelopes. Figures are printed, never asserted.

Run: ``python bench/bench_propagation.py [--nodes N] [--mesh-nodes N] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "federation"))
from cluster import NOTE, Cluster, NodeProcess, cluster, peer

from node.app import create_app
from node.config import load_config
from node.storage.db import create_engine
from node.storage.models import EnvelopeRow
from node.web.keys import SESSIONS, SIGNER

POLL = 0.005  # seconds between looks at the nodes' databases


class Origin:
    """The first node, served from this process so that signing happens inside it."""

    def __init__(self, node: NodeProcess) -> None:
        self.node = node
        self.app = create_app(load_config(node.data_dir, {}, {}))
        self.runner = web.AppRunner(self.app, access_log=None)

    async def start(self) -> None:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.node.port).start()

    async def stop(self) -> None:
        await self.runner.cleanup()

    async def sign(self, text: str) -> bytes:
        async with self.app[SESSIONS].begin() as session:
            signed = await self.app[SIGNER].append(
                session, type=NOTE, body={"text": text}, audience="public", now=int(time.time())
            )
        return signed.id


async def reached(engines: Sequence[AsyncEngine], envelope_id: bytes) -> list[float]:
    """Seconds from now until each node holds ``envelope_id`` (polled)."""
    start = time.perf_counter()
    times: list[float | None] = [None] * len(engines)
    query = select(EnvelopeRow.seq).where(EnvelopeRow.id == envelope_id)
    async with asyncio.timeout(60):
        while any(t is None for t in times):
            for index, engine in enumerate(engines):
                if times[index] is None:
                    async with engine.connect() as connection:
                        if (await connection.execute(query)).first() is not None:
                            times[index] = time.perf_counter() - start
            await asyncio.sleep(POLL)
    return [t for t in times if t is not None]


async def measure(origin: Origin, others: Sequence[NodeProcess], rounds: int) -> list[float]:
    """Seconds for each round's envelope to reach every node (after one warm-up)."""
    engines = [create_engine(node.db_url) for node in others]
    try:
        totals = []
        for index in range(rounds + 1):
            started = time.perf_counter()
            envelope_id = await origin.sign(f"propagation {index}")
            signed_in = time.perf_counter() - started
            times = await reached(engines, envelope_id)
            if index:  # the first round warms up: key logs, connections, catch-up of gaps
                totals.append(signed_in + max(times))
        return totals
    finally:
        for engine in engines:
            await engine.dispose()


async def topology(
    root: Path, count: int, pairs: list[tuple[int, int]], rounds: int
) -> list[float]:
    async with cluster(root) as made:
        nodes = await made.make(count, delivery_poll=30, catchup_interval=600)
        origin = Origin(nodes[0])
        await origin.start()
        try:
            await made.start(nodes[1:])
            await _peer_all(made, nodes, pairs)
            return await measure(origin, nodes[1:], rounds)
        finally:
            await origin.stop()


async def _peer_all(made: Cluster, nodes: list[NodeProcess], pairs: list[tuple[int, int]]) -> None:
    """Peer the pairs in rounds in which no node appears twice (the CLI runs in parallel)."""
    left = list(pairs)
    while left:
        busy: set[int] = set()
        wave = []
        for pair in list(left):
            if not busy & set(pair):
                busy.update(pair)
                wave.append(pair)
                left.remove(pair)
        await asyncio.gather(*(peer(nodes[i], nodes[j]) for i, j in wave))
    del made


def report(name: str, count: int, hops: int, totals: list[float]) -> None:
    median = statistics.median(totals)
    print(
        f"{name:<6} {count:>2} nodes  {hops:>2} hop(s) to the farthest  "
        f"median {median * 1000:7.1f} ms  worst {max(totals) * 1000:7.1f} ms  "
        f"per hop {median / hops * 1000:6.1f} ms  ({len(totals)} rounds)"
    )


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="tadamun-bench-") as tmp:
        root = Path(tmp)
        n, m = args.nodes, args.mesh_nodes
        chain = await topology(root / "chain", n, [(i, i + 1) for i in range(n - 1)], args.rounds)
        mesh_pairs = list(itertools.combinations(range(m), 2))
        mesh = await topology(root / "mesh", m, mesh_pairs, args.rounds)
    print(f"Propagation of one public envelope on loopback ({args.rounds} rounds each):")
    report("chain", n, n - 1, chain)
    report("mesh", m, 1, mesh)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, default=5, help="nodes in the chain (>= 2)")
    parser.add_argument("--mesh-nodes", type=int, default=5, help="nodes in the mesh (>= 2)")
    parser.add_argument("--rounds", type=int, default=10, help="envelopes measured")
    args: Any = parser.parse_args(argv)
    if min(args.nodes, args.mesh_nodes) < 2 or args.rounds < 1:
        parser.error("need at least 2 nodes and 1 round")
    return args  # type: ignore[no-any-return]


if __name__ == "__main__":
    asyncio.run(main(parse()))
