"""The ``tadamun`` command line, run as a real subprocess: ``init`` creates a node whose
files, keys and rows check out; ``serve`` answers on a real port and stops on SIGTERM;
an unmigrated database is refused until ``db upgrade``. Every wait has a deadline; no sleeps.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import select

from node.config import load_config
from node.identity import KeyFile, read_key_file, write_key_file
from node.storage.db import alembic_config, create_engine, session_factory
from node.storage.models import AuditEntry, Invite, KeyEventRow, Member, Setting
from protocol import KeyState, SignedKeyEvent, SigningKey, commitment, fingerprint

CLI = (sys.executable, "-m", "node.cli")
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()
RUN_DEADLINE = 60.0  # seconds for one command to finish
SERVE_DEADLINE = 30.0  # seconds for `serve` to start listening, or to stop after SIGTERM
SERVING = re.compile(r"serving .* on (http://127\.0\.0\.1:(\d+))$")
NAME = 'Dockworkers\' "union" عمال'  # quotes and Arabic survive the TOML round trip
THRESHOLD_PROBLEM = "need 1 <= --threshold <= --officers <= 16"


def cli_environment() -> dict[str, str]:
    """The test's environment without TADAMUN_* settings that would override the node's."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TADAMUN_")}


@dataclass(frozen=True, slots=True)
class Result:
    code: int
    out: str
    err: str


async def run_cli(cwd: Path, *args: str | Path) -> Result:
    process = await asyncio.create_subprocess_exec(
        *CLI,
        *map(str, args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_environment(),
        cwd=cwd,
    )
    try:
        async with asyncio.timeout(RUN_DEADLINE):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- init -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Printed:
    node_id: str
    fingerprint: str
    invite_url: str
    token: str


def parse_init_output(out: str) -> Printed:
    node_id = re.search(r"^\s*node id:\s+([0-9a-f]{64})$", out, re.MULTILINE)
    finger = re.search(r"^\s*fingerprint:\s+(\d{5}(?: \d{5}){5})$", out, re.MULTILINE)
    invite = re.search(r"^\s*(https?://\S+/join/([A-Za-z0-9_-]{43}))$", out, re.MULTILINE)
    assert node_id, out
    assert finger, out
    assert invite, out
    return Printed(node_id[1], finger[1], invite[1], invite[2])


async def check_initialised_node(
    data_dir: Path, result: Result, officers: int, threshold: int, name: str
) -> Printed:
    """Everything ``init`` promises: files, modes, output, and the rows in the database."""
    assert result.code == 0, result.err
    printed = parse_init_output(result.out)
    assert printed.fingerprint == fingerprint(bytes.fromhex(printed.node_id))
    assert printed.invite_url.startswith("http://127.0.0.1:8470/join/")
    assert "MOVE THEM OFFLINE" in result.out
    assert str(data_dir / "officers") in result.out

    # Files and their modes: keys for the node's user alone.
    assert mode(data_dir) == 0o700
    assert mode(data_dir / "tadamun.toml") == 0o600
    for directory in ("keys", "officers"):
        assert mode(data_dir / directory) == 0o700
    officer_files = [data_dir / "officers" / f"officer-{i}.key" for i in range(1, officers + 1)]
    next_files = [data_dir / "officers" / f"next-officer-{i}.key" for i in range(1, officers + 1)]
    key_files = [
        data_dir / "keys" / "operational.key",
        data_dir / "keys" / "secret.key",
        *officer_files,
        *next_files,
    ]
    assert sorted((data_dir / "officers").iterdir()) == sorted(officer_files + next_files)
    assert sorted((data_dir / "keys").iterdir()) == sorted(key_files[:2])
    for path in key_files:
        assert mode(path) == 0o600, path
    parsed = {path: read_key_file(path) for path in key_files}
    for path, key in parsed.items():
        assert key.node == printed.node_id, path
        assert len(key.seed) == 32
    assert [parsed[p].kind for p in officer_files] == ["officer"] * officers
    assert [parsed[p].kind for p in next_files] == ["next-officer"] * officers
    assert parsed[key_files[0]].kind == "operational"
    assert parsed[key_files[1]].kind == "secret"
    assert len({key.seed for key in parsed.values()}) == len(key_files)  # all distinct

    # The database, found through the configuration init wrote.
    config = load_config(data_dir, {})
    engine = create_engine(config.database.url)
    try:
        async with session_factory(engine)() as session:
            events = (await session.scalars(select(KeyEventRow))).all()
            invites = (await session.scalars(select(Invite))).all()
            audit = (await session.scalars(select(AuditEntry))).all()
            settings = {s.key: s.value for s in await session.scalars(select(Setting))}
            members = (await session.scalars(select(Member))).all()
    finally:
        await engine.dispose()

    assert len(events) == 1
    signed = SignedKeyEvent.from_bytes(events[0].wire)
    state = KeyState.from_log([signed])  # verifies the officers' signatures
    assert state.node_id.hex() == printed.node_id
    assert events[0].node_id == state.node_id
    assert events[0].pos == 0
    assert events[0].digest == signed.event.digest
    assert state.threshold == threshold
    assert len(signed.sigs) == threshold
    assert state.officers == tuple(SigningKey(parsed[p].seed).public for p in officer_files)
    assert state.next == tuple(commitment(SigningKey(parsed[p].seed).public) for p in next_files)
    assert state.op == SigningKey(parsed[key_files[0]].seed).public

    assert settings == {"node_id": printed.node_id, "name": name}
    assert members == []

    assert len(invites) == 1
    invite = invites[0]
    assert invite.token_hash == hashlib.sha256(printed.token.encode()).digest()
    assert invite.role == "admin"
    assert invite.uses_left == 1
    assert invite.expires_at == invite.created_at + 7 * 86_400
    stored = [
        value
        for row in (*events, *invites, *audit)
        for value in vars(row).values()
        if isinstance(value, str | bytes)
    ] + list(settings.values())
    token = printed.token.encode()
    assert not [v for v in stored if token in (v if isinstance(v, bytes) else v.encode())]

    assert [(a.actor, a.action, a.actor_id) for a in audit] == [("cli", "node.init", None)]
    assert json.loads(audit[0].detail) == {
        "name": name,
        "officers": officers,
        "threshold": threshold,
    }
    return printed


async def test_init_creates_a_node_on_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    result = await run_cli(
        tmp_path, "init", "--data-dir", data_dir, "--officers", "3", "--threshold", "2",
        "--name", NAME,
    )  # fmt: skip
    printed = await check_initialised_node(data_dir, result, officers=3, threshold=2, name=NAME)
    database = data_dir / "tadamun.db"
    assert database.is_file()
    db_files = list(data_dir.glob("tadamun.db*"))  # with any -wal and -shm left behind
    assert {p: mode(p) for p in db_files} == dict.fromkeys(db_files, 0o600)
    # The token appears nowhere in the database files, not even in free pages or the WAL.
    assert not [p for p in db_files if printed.token.encode() in p.read_bytes()]
    assert "tadamun serve --data-dir" in result.out


async def test_init_with_a_database_url(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "node"
    result = await run_cli(tmp_path, "init", "--data-dir", data_dir, "--database-url", database_url)
    await check_initialised_node(data_dir, result, officers=1, threshold=1, name="Tadamun node")
    assert load_config(data_dir, {}).database.url == database_url
    assert not (data_dir / "tadamun.db").exists()


async def test_init_refuses_an_existing_node(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    assert (await run_cli(tmp_path, "init", "--data-dir", data_dir)).code == 0
    before = {p: p.read_bytes() for p in data_dir.rglob("*.key")}
    before[data_dir / "tadamun.toml"] = (data_dir / "tadamun.toml").read_bytes()

    again = await run_cli(tmp_path, "init", "--data-dir", data_dir, "--name", "Other")
    assert again.code == 2
    assert "already holds a node" in again.err
    assert again.out == ""
    assert {p: p.read_bytes() for p in before} == before


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param(["--threshold", "0"], id="threshold-0"),
        pytest.param(["--officers", "2", "--threshold", "3"], id="threshold-above-officers"),
        pytest.param(["--officers", "17"], id="officers-17"),
    ],
)
async def test_init_refuses_impossible_thresholds(tmp_path: Path, flags: list[str]) -> None:
    data_dir = tmp_path / "node"
    result = await run_cli(tmp_path, "init", "--data-dir", data_dir, *flags)
    assert result.code == 2
    assert THRESHOLD_PROBLEM in result.err
    assert not data_dir.exists()  # refused before anything was written


async def test_a_refused_init_can_be_retried(tmp_path: Path) -> None:
    """A typo in --database-url is refused before anything is written, so the operator
    can simply run init again."""
    data_dir = tmp_path / "node"
    bad = await run_cli(
        tmp_path, "init", "--data-dir", data_dir, "--database-url", "mysql://u@db/tadamun"
    )
    assert bad.code == 2
    assert "database.url: must be sqlite:///PATH or postgresql://USER@HOST/DB" in bad.err
    retry = await run_cli(tmp_path, "init", "--data-dir", data_dir)
    assert retry.code == 0, retry.err


async def test_init_with_a_multi_line_name(tmp_path: Path) -> None:
    """A name with a line break is refused, and nothing is written."""
    data_dir = tmp_path / "node"
    result = await run_cli(tmp_path, "init", "--data-dir", data_dir, "--name", "Union\nBranch")
    assert result.code == 2, result.err
    assert "control characters" in result.err
    assert not data_dir.exists()


async def test_init_keeps_any_printable_name(tmp_path: Path) -> None:
    """Quotes, backslashes and Arabic script survive the trip through tadamun.toml."""
    data_dir = tmp_path / "node"
    name = 'نقابة "المعلمين" \\ Sulaymaniyah'
    result = await run_cli(tmp_path, "init", "--data-dir", data_dir, "--name", name)
    assert result.code == 0, result.err
    assert load_config(data_dir, {}).node.name == name


# --- serve ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Server:
    process: asyncio.subprocess.Process
    url: str
    output: list[str]

    async def stop(self) -> tuple[int, str]:
        """SIGTERM, then wait (bounded) for the exit status and the rest of the output."""
        assert self.process.stdout is not None
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(SERVE_DEADLINE):
            rest = (await self.process.stdout.read()).decode()
            code = await self.process.wait()
        self.output.append(rest)
        return code, "".join(self.output)


@asynccontextmanager
async def serving(cwd: Path, data_dir: Path) -> AsyncIterator[Server]:
    """Start ``tadamun serve --port 0`` and yield once it prints the address it listens on."""
    process = await asyncio.create_subprocess_exec(
        *CLI, "serve", "--data-dir", str(data_dir), "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=cli_environment(), cwd=cwd,
    )  # fmt: skip
    assert process.stdout is not None
    output: list[str] = []
    try:
        async with asyncio.timeout(SERVE_DEADLINE):
            while True:
                line = (await process.stdout.readline()).decode()
                if not line:
                    code = await process.wait()
                    pytest.fail(f"serve exited with {code} before serving:\n{''.join(output)}")
                output.append(line)
                if match := SERVING.search(line.rstrip("\n")):
                    break
        yield Server(process, match[1], output)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def check_health(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/healthz") as response:
            assert response.status == 200
            assert response.content_type == "application/json"
            body = await response.json()
        assert body["status"] == "ok"
        assert body["database"] == "reachable"
        assert body["migrations"] == {"current": HEAD, "head": HEAD, "up_to_date": True}

        async with http.get(f"{url}/no-such-path") as response:
            assert response.status == 404
            body = await response.json()
        assert body["error"]["code"] == "not_found"
        assert isinstance(body["error"]["message"], str)


async def serve_and_stop(cwd: Path, data_dir: Path) -> None:
    async with serving(cwd, data_dir) as server:
        await check_health(server.url)
        code, output = await server.stop()
    assert code == 0, output
    assert "shutting down" in output


async def test_serve_answers_and_stops_on_sigterm(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "node"
    init = await run_cli(tmp_path, "init", "--data-dir", data_dir, "--database-url", database_url)
    assert init.code == 0, init.err
    await serve_and_stop(tmp_path, data_dir)


async def test_serve_refuses_an_unmigrated_database(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "node"
    data_dir.mkdir(mode=0o700)
    (data_dir / "tadamun.toml").write_text(f'[database]\nurl = "{database_url}"\n')
    (data_dir / "keys").mkdir(mode=0o700)
    write_key_file(data_dir / "keys" / "secret.key", KeyFile("secret", "00" * 32, bytes(32)))
    operational = KeyFile("operational", "00" * 32, bytes(range(32)))
    write_key_file(data_dir / "keys" / "operational.key", operational)

    refused = await run_cli(tmp_path, "serve", "--data-dir", data_dir, "--port", "0")
    assert refused.code == 2
    assert "tadamun db upgrade" in refused.err
    assert "serving" not in refused.out

    upgraded = await run_cli(tmp_path, "db", "upgrade", "--data-dir", data_dir)
    assert upgraded.code == 0, upgraded.err
    assert f"database schema at revision {HEAD} (head {HEAD})" in upgraded.out

    await serve_and_stop(tmp_path, data_dir)


async def test_serve_refuses_a_node_without_its_local_secret(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    assert (await run_cli(tmp_path, "init", "--data-dir", data_dir)).code == 0
    (data_dir / "keys" / "secret.key").unlink()
    refused = await run_cli(tmp_path, "serve", "--data-dir", data_dir, "--port", "0")
    assert refused.code == 2
    assert "secret.key is missing: restore it" in refused.err
    assert "Traceback" not in refused.err


# --- config check, help, selfcheck ----------------------------------------------------------


async def test_config_check_reports_every_problem(tmp_path: Path) -> None:
    (tmp_path / "tadamun.toml").write_text('[server]\nport = 99999\ncolour = "red"\n')
    result = await run_cli(tmp_path, "config", "check", "--data-dir", tmp_path)
    assert result.code == 2
    assert "the configuration has problems" in result.err
    assert "server.port: must be between 0 and 65535" in result.err
    assert "unknown setting server.colour" in result.err
    assert result.out == ""


async def test_config_check_accepts_a_valid_configuration(tmp_path: Path) -> None:
    (tmp_path / "tadamun.toml").write_text('[node]\nname = "Union"\n[server]\nport = 9000\n')
    result = await run_cli(tmp_path, "config", "check", "--data-dir", tmp_path, "--port", "9001")
    assert result.code == 0, result.err
    assert "is valid" in result.out
    assert "127.0.0.1:9001" in result.out
    assert "Union" in result.out


async def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = await run_cli(tmp_path, "--help")
    assert result.code == 0
    for command in ("init", "serve", "db", "config", "selfcheck"):
        assert re.search(rf"^\s+{command}\b", result.out, re.MULTILINE), command


async def test_selfcheck_passes(tmp_path: Path) -> None:
    result = await run_cli(tmp_path, "selfcheck")
    assert result.code == 0, result.out + result.err
