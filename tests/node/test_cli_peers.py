"""``tadamun peer invite|invites|revoke|join|list|block|unblock|remove`` as real subprocesses,
on SQLite and PostgreSQL: one node serves, the other joins its invite from the command line
without running its own server; both see each other allied, with fingerprints; the admin
actions go to the audit log."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from peering_support import MakeDatabase, make_database
from sqlalchemy import select
from test_cli import CLI, SERVE_DEADLINE, cli_environment, run_cli

from node.config import load_config
from node.storage.db import create_engine, session_factory
from node.storage.models import AuditEntry
from protocol import fingerprint

INVITE = re.compile(r"^\s+(tadamun-peer:[A-Za-z0-9_-]+)$", re.MULTILINE)
FINGERPRINT = re.compile(r"fingerprint: (\d{5}(?: \d{5}){5})$", re.MULTILINE)
NODE_ID = re.compile(r"node id:\s+([0-9a-f]{64})$", re.MULTILINE)
__all__ = ["make_database"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def make_node(tmp_path: Path, name: str, database_url: str) -> Path:
    data_dir = tmp_path / name
    made = await run_cli(tmp_path, "init", "--data-dir", data_dir, "--name", name,
                         "--database-url", database_url)  # fmt: skip
    assert made.code == 0, made.err
    with (data_dir / "tadamun.toml").open("a") as config:
        config.write(f'\n[server]\nport = {free_port()}\n\n[federation]\n'
                     'allow_networks = ["127.0.0.0/8"]\n')  # fmt: skip
    return data_dir


@asynccontextmanager
async def serving(cwd: Path, data_dir: Path) -> AsyncIterator[None]:
    """``tadamun serve`` on the node's configured port, until the context ends."""
    process = await asyncio.create_subprocess_exec(
        *CLI, "serve", "--data-dir", str(data_dir), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env=cli_environment(), cwd=cwd,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        async with asyncio.timeout(SERVE_DEADLINE):
            while b"serving" not in (line := await process.stdout.readline()):
                if not line:
                    pytest.fail(f"serve exited with {await process.wait()}")
        yield
    finally:
        process.terminate()
        await process.wait()


async def audit(data_dir: Path) -> list[tuple[str, str]]:
    engine = create_engine(load_config(data_dir, {}).database.url)
    try:
        async with session_factory(engine)() as session:
            rows = await session.scalars(select(AuditEntry).order_by(AuditEntry.id))
            return [(row.actor, row.action) for row in rows]
    finally:
        await engine.dispose()


async def peer(tmp_path: Path, data_dir: Path, *args: str) -> tuple[int, str, str]:
    result = await run_cli(tmp_path, "peer", args[0], "--data-dir", data_dir, *args[1:])
    return result.code, result.out, result.err


async def test_peer_commands(tmp_path: Path, make_database: MakeDatabase) -> None:
    alpha = await make_node(tmp_path, "alpha", await make_database("alpha"))
    beta = await make_node(tmp_path, "beta", await make_database("beta"))
    code, out, err = await peer(tmp_path, alpha, "invite", "--expires-hours", "2")
    assert code == 0, err
    invite = INVITE.search(out)
    shown = FINGERPRINT.search(out)
    assert invite, out
    assert shown, out
    assert "▀" in out or "▄" in out  # the QR code, drawn with half blocks

    async with serving(tmp_path, alpha):  # beta's server is not running: it need not be
        code, out, err = await peer(tmp_path, beta, "join", invite[1])
        assert code == 0, err
        joined = FINGERPRINT.search(out)
        assert joined, out
        assert joined[1] == shown[1]  # what the two admins compare
        assert "Allied with alpha" in out
        alpha_id = NODE_ID.search(out)
        assert alpha_id, out
        assert fingerprint(bytes.fromhex(alpha_id[1])) == shown[1]
        code, out, err = await peer(tmp_path, beta, "join", invite[1])
        assert code == 1
        assert "invite_used" in err
        assert "(peering_refused)" in err

    code, out, err = await peer(tmp_path, alpha, "list")
    assert code == 0, err
    assert re.search(r"^([0-9a-f]{64})  allied  beta$", out, re.MULTILINE), out
    assert "pending" in out
    beta_id = re.search(r"^([0-9a-f]{64})  allied", out, re.MULTILINE)[1]  # type: ignore[index]
    code, out, err = await peer(tmp_path, beta, "list")
    assert f"{alpha_id[1]}  allied  alpha" in out, out

    for action, name, state in (
        ("block", beta_id[:8], "blocked"),
        ("unblock", fingerprint(bytes.fromhex(beta_id)), "allied"),
        ("remove", beta_id, "removed"),
    ):
        code, out, err = await peer(tmp_path, alpha, action, name)
        assert code == 0, err
        assert f"is now {state}" in out
    code, out, err = await peer(tmp_path, alpha, "block", beta_id)
    assert (code, "(invalid_transition)" in err) == (1, True), err

    code, out, err = await peer(tmp_path, alpha, "invite", "--no-qr")
    assert code == 0, err
    fresh = re.search(r"^Peering invite ([0-9a-f]{32})", out, re.MULTILINE)
    assert fresh, out
    code, out, err = await peer(tmp_path, alpha, "revoke", fresh[1])
    assert code == 0, err
    code, out, err = await peer(tmp_path, alpha, "invites")
    assert code == 0, err
    assert re.search(r"^[0-9a-f]{32}  used ", out, re.MULTILINE), out  # the revoked one is gone
    assert fresh[1] not in out
    code, out, err = await peer(tmp_path, alpha, "revoke", fresh[1])
    assert (code, "(not_found)" in err) == (1, True), err
    code, out, err = await peer(tmp_path, beta, "join", "tadamun-peer:garbage")
    assert (code, "(invalid_invite)" in err) == (1, True), err

    actions = await audit(alpha)
    for action in ("peer.invite.create", "peer.block", "peer.unblock", "peer.remove",
                   "peer.invite.revoke"):  # fmt: skip
        assert ("cli", action) in actions, action
    assert ("federation", "peer.accept") in actions
    assert ("cli", "peer.join") in await audit(beta)
