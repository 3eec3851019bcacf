"""Inbox ingest end to end over HTTP (issue 4): envelopes per second that one node process
verifies, de-duplicates, stores and acknowledges, beside the raw single-core Ed25519 verify
rate measured in the same run on the same machine.

A real node (``tadamun init``, then ``tadamun serve`` as a child process, SQLite in a
temporary directory, or PostgreSQL with ``--postgres``) has one allied peer: this process,
which signs ~1 KiB envelopes in advance, then posts them in signed batches of 256, each with
its key log as delivery sends it, to ``POST /federation/v1/inbox`` on 127.0.0.1 with four
requests in flight, and checks that every item is answered ``ok`` (or ``held``, when a batch
overtakes the one before it) and that all are stored. The raw verify rate is measured in
this process while the node is idle, before and after the ingest; the ratio uses their
median. The node's CPU time (all threads, and its event loop's alone) is printed too: on a
shared machine it says more than the wall clock does.

Run: ``python bench/bench_ingest.py [--envelopes N] [--postgres [URL]]``. Bounded: at most
``--envelopes`` envelopes and ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg  # type: ignore[import-untyped]
from bench_protocol import typical_call
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.federation.keylogs import KeyLogs
from node.federation.wire import decode_batch_result, encode_inbox_request
from node.identity import KEYS_DIR, OPERATIONAL_KEY, Identity, new_identity, read_key_file
from node.storage import envelopes
from node.storage.db import create_engine, session_factory
from node.storage.models import Peer
from protocol import build_envelope, sign
from protocol.httpsig import sign_request

BATCH: Final = 256
IN_FLIGHT: Final = 4
PATH: Final = "/federation/v1/inbox"
# The body of a typical strike call (~1 KiB) under an extension type: stored and relayed but
# applied by no handler, so the figure is ingest itself (what applying calls to action
# costs is issue 5's, measured with --type call.issue).
TYPE: Final = "org.example.bench"


@dataclass(frozen=True, slots=True)
class Verify:
    rate: float  # verifications per second of wall-clock time
    cpu: float  # seconds of CPU per verification


def raw_verify(operations: int = 3_072) -> Verify:
    """Ed25519 verifications of 56-byte inputs (an envelope's signing input), one core: 256
    different signatures by one key, in turn, as ingest sees them (one input verified over
    and over is a little faster than any real stream of them)."""
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    messages = [b"TADAMUN-ENVELOPE-SIG-V1\x00" + secrets.token_bytes(32) for _ in range(256)]
    signed = [(key.sign(message), message) for message in messages]
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(operations):
        public.verify(*signed[i & 255])
    cpu = time.process_time() - cpu
    return Verify(operations / (time.perf_counter() - start), cpu / operations)


def sign_envelopes(sender: Identity, count: int, now: int) -> list[bytes]:
    body = typical_call().to_body()
    wires, prev = [], None
    for seq in range(1, count + 1):
        envelope = build_envelope(
            type=TYPE, origin=sender.state.node_id, kpos=0, seq=seq, prev=prev,
            created=now, body=body, audience="public",
        )  # fmt: skip
        signed = sign(envelope, sender.operational)
        wires.append(signed.to_bytes())
        prev = signed.id
    return wires


async def allow_peer(database_url: str, sender: Identity, now: int) -> None:
    """Make the sender a peer of the node, with its key log, as peering would. Introduced,
    not allied: the node then queues none of its own public envelopes for it, whose
    delivery to a port where nobody listens would run beside the measurement."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine).begin() as session:
            session.add(Peer(node_id=sender.state.node_id, endpoint="http://127.0.0.1:9",
                             state="introduced", created_at=now, updated_at=now))  # fmt: skip
            await KeyLogs().accept(session, sender.state.node_id, [sender.inception], now=now)
    finally:
        await engine.dispose()


async def count_stored(database_url: str, sender: Identity) -> int:
    engine = create_engine(database_url.replace("postgresql://", "postgresql+asyncpg://", 1))
    try:
        async with session_factory(engine)() as session:
            return await envelopes.count_envelopes(session, sender.state.node_id)
    finally:
        await engine.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(data_dir: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    tadamun = Path(sys.executable).with_name("tadamun")
    process = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
        [str(tadamun), "serve", "--data-dir", str(data_dir), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


async def wait_ready(url: str, budget: float) -> None:
    deadline = time.monotonic() + budget
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(url + "/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the node did not start")
            await asyncio.sleep(0.1)


async def post_all(
    url: str, node_id: bytes, sender: Identity, batches: list[bytes], budget: float
) -> float:
    """Post every batch (``IN_FLIGHT`` at a time); seconds from the first to the last answer."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in batches:
        queue.put_nowait(body)
    key = sender.operational.private_key()

    async def worker(http: aiohttp.ClientSession) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            now = int(time.time())
            headers = sign_request(
                method="POST", url=url + PATH, body=body, key=key,
                keyid=sender.state.node_id.hex(), destination=node_id.hex(), created=now,
                expires=now + 60, nonce=secrets.token_urlsafe(16),
                extra_headers={"Content-Type": "application/msgpack"},
            )  # fmt: skip
            async with http.post(url + PATH, data=body, headers=headers) as response:
                answer = await response.read()
                assert response.status == 200, answer[:200]
            results = decode_batch_result(answer, 1 << 22).results
            assert set(results) <= {"ok", "held"}, set(results)  # held: ahead of the other

    async with aiohttp.ClientSession() as http:
        start = time.perf_counter()
        async with asyncio.timeout(budget):
            await asyncio.gather(*(worker(http) for _ in range(IN_FLIGHT)))
        return time.perf_counter() - start


@dataclass(frozen=True, slots=True)
class Result:
    rate: float  # envelopes per second, wall clock, end to end
    cpu: float  # seconds of the node process's CPU per envelope, all threads
    main_cpu: float  # the same, of its main thread (the event loop) only
    size: int  # bytes of one envelope


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User + system CPU time of a process (or of one of its threads) so far, from Linux's
    ``/proc``; 0 elsewhere."""
    path = Path(f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat")
    if not path.exists():
        return 0.0
    fields = path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(database_url: str | None, count: int, budget: float) -> Result:
    """Envelopes per second ingested by one node on ``database_url`` (None: SQLite)."""
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "node"
        init = ["init", "--data-dir", str(data_dir), "--name", "Bench union"]
        if database_url:
            init += ["--database-url", database_url]
        tadamun = Path(sys.executable).with_name("tadamun")
        command = [str(tadamun), *init]
        await asyncio.to_thread(subprocess.run, command, check=True, capture_output=True)
        node_id = bytes.fromhex(read_key_file(data_dir / KEYS_DIR / OPERATIONAL_KEY).node)
        now = int(time.time())
        sender = new_identity(1, 1, now)
        url_db = database_url or f"sqlite+aiosqlite:///{data_dir / 'tadamun.db'}"
        await allow_peer(url_db.replace("postgresql://", "postgresql+asyncpg://", 1),
                         sender, now)  # fmt: skip
        wires = sign_envelopes(sender, count + BATCH, now)
        keys = [sender.inception.to_bytes()]  # its whole key log, as delivery sends it
        batches = [
            encode_inbox_request(wires[i : i + BATCH], keys) for i in range(0, len(wires), BATCH)
        ]
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with serving(data_dir, port) as node:
            await wait_ready(url, 30)
            await post_all(url, node_id, sender, batches[:1], budget)  # warm-up, not counted
            cpu, main_cpu = cpu_seconds(node.pid), cpu_seconds(node.pid, node.pid)
            seconds = await post_all(url, node_id, sender, batches[1:], budget)
            cpu, main_cpu = cpu_seconds(node.pid) - cpu, cpu_seconds(node.pid, node.pid) - main_cpu
        stored = await count_stored(url_db, sender)
        assert stored == len(wires), f"{stored} of {len(wires)} envelopes stored"
        return Result(count / seconds, cpu / count, main_cpu / count, len(wires[0]))


@contextmanager
def postgres_database(server: str) -> Iterator[str]:
    """A fresh database on ``server``, dropped afterwards."""
    name = f"tadamun_bench_{secrets.token_hex(6)}"
    parts = urlsplit(server)
    admin = urlunsplit(parts._replace(scheme="postgresql"))

    async def execute(statement: str) -> None:
        connection = await asyncpg.connect(admin)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        yield urlunsplit(("postgresql", parts.netloc, f"/{name}", "", ""))
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def report(label: str, result: Result, verify: Verify) -> None:
    print(f"  {label:<34}{result.rate:>10,.0f} envelopes/s   ({result.size} bytes each)")
    print(f"  {'  ingest / raw verify':<34}{result.rate / verify.rate:>10.1%}   (target >= 60%)")
    if result.main_cpu:
        print(f"  {'  node CPU per envelope':<34}{result.cpu * 1e6:>10.1f} µs, of which "
              f"{result.main_cpu * 1e6:.1f} µs on its event loop: raw verify CPU / loop "
              f"CPU {verify.cpu / result.main_cpu:.1%}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envelopes", type=int, default=BATCH * 60)
    parser.add_argument("--timeout", type=float, default=120.0)
    server = os.environ.get("TADAMUN_TEST_POSTGRES_URL")
    parser.add_argument(
        "--postgres",
        nargs="?",
        const=server,
        default=server,
        help="also on PostgreSQL, a server URL ($TADAMUN_TEST_POSTGRES_URL)",
    )
    args = parser.parse_args()
    count = max(BATCH, args.envelopes // BATCH * BATCH)
    verify = [raw_verify()]
    sqlite = asyncio.run(run(None, count, args.timeout))
    verify.append(raw_verify())
    postgres = None
    if args.postgres:
        with postgres_database(args.postgres) as url:
            postgres = asyncio.run(run(url, count, args.timeout))
        verify.append(raw_verify())
    rate = Verify(
        statistics.median(v.rate for v in verify), statistics.median(v.cpu for v in verify)
    )
    print(f"inbox ingest over HTTP, {count} envelopes in batches of {BATCH}, {IN_FLIGHT} in flight")
    print(f"  {'raw Ed25519 verify, one core':<34}{rate.rate:>10,.0f} /s   "
          f"({1e6 / rate.rate:.1f} µs; {rate.cpu * 1e6:.1f} µs of CPU)")  # fmt: skip
    report("ingest, SQLite", sqlite, rate)
    if postgres is not None:
        report("ingest, PostgreSQL", postgres, rate)


if __name__ == "__main__":
    main()
