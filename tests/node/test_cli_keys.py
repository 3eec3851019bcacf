"""``tadamun keys show|delegate|rotate`` as real subprocesses, on SQLite and PostgreSQL: the
refusals (too few officers, another node's key, a key that is not an officer's, a seal out
of range, a key that was never committed) change nothing; a delegation puts a new operational
key in force and signs a descriptor with it; a rotation hands over to the committed keys
and writes new next-officer keys."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select
from test_cli import mode, run_cli

from node.config import load_config
from node.federation.descriptors import check_descriptor
from node.identity import read_key_file
from node.services.signer import load_signer
from node.storage.db import create_engine, session_factory
from node.storage.models import EnvelopeRow, KeyEventRow
from protocol import KeyState, SignedEnvelope, SignedKeyEvent, SigningKey, commitment, fingerprint

FINGERPRINT = re.compile(r"^fingerprint: (\d{5}(?: \d{5}){5})$", re.MULTILINE)


async def stored(data_dir: Path) -> tuple[KeyState, list[SignedEnvelope]]:
    engine = create_engine(load_config(data_dir, {}).database.url)
    try:
        async with session_factory(engine)() as session:
            events = await session.scalars(select(KeyEventRow.wire).order_by(KeyEventRow.pos))
            state = KeyState.from_log([SignedKeyEvent.from_bytes(w) for w in events])
            wires = await session.scalars(select(EnvelopeRow.wire).order_by(EnvelopeRow.seq))
            return state, [SignedEnvelope.from_bytes(w) for w in wires if w is not None]
    finally:
        await engine.dispose()


def files(data_dir: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(data_dir.rglob("*.key*"))}


async def init(
    tmp_path: Path, database_url: str, officers: int, threshold: int, name: str = "node"
) -> Path:
    data_dir = tmp_path / name
    made = await run_cli(
        tmp_path, "init", "--data-dir", data_dir, "--database-url", database_url,
        "--officers", str(officers), "--threshold", str(threshold), "--name", "Union",
    )  # fmt: skip
    assert made.code == 0, made.err
    return data_dir


async def keys(tmp_path: Path, data_dir: Path, *args: str | Path) -> tuple[int, str, str]:
    result = await run_cli(tmp_path, "keys", args[0], "--data-dir", data_dir, *args[1:])
    return result.code, result.out, result.err


async def test_show_and_delegate(tmp_path: Path, database_url: str) -> None:
    data_dir = await init(tmp_path, database_url, officers=3, threshold=2)
    officers = data_dir / "officers"
    state, _ = await stored(data_dir)
    code, out, err = await keys(tmp_path, data_dir, "show")
    assert code == 0, err
    shown = FINGERPRINT.search(out)
    assert shown, out
    assert shown[1] == fingerprint(state.node_id)
    assert "officers 2 of 3" in out
    assert "holds the operational key in force" in out

    other = await init(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'other.db'}", 1, 1, "other")
    before = files(data_dir)
    refusals: list[tuple[list[str | Path], str]] = [
        (["--officer-key", officers / "officer-1.key"], "too_few_officers"),
        (["--officer-key", officers / "officer-1.key", "--officer-key",
          officers / "officer-1.key"], "duplicate_key_file"),
        (["--officer-key", officers / "officer-1.key", "--officer-key",
          officers / "next-officer-1.key"], "not_an_officer"),
        (["--officer-key", officers / "officer-1.key", "--officer-key",
          data_dir / "keys" / "operational.key"], "key_file_invalid"),
        (["--officer-key", officers / "officer-1.key", "--officer-key",
          officers / "officer-2.key", "--seal", "1"], "bad_seal"),
        (["--officer-key", officers / "officer-1.key", "--officer-key",
          tmp_path / "missing.key"], "key_file_invalid"),
    ]  # fmt: skip
    foreign = other / "officers" / "officer-1.key"
    refusals.append((["--officer-key", officers / "officer-1.key", "--officer-key", foreign],
                     "key_file_wrong_node"))  # fmt: skip
    for args, expected in refusals:
        code, out, err = await keys(tmp_path, data_dir, "delegate", *args)
        assert code == 1, (args, out)
        assert f"({expected})" in err, (args, err)
        assert "Traceback" not in err
    assert files(data_dir) == before
    assert (await stored(data_dir))[0] == state

    old = read_key_file(data_dir / "keys" / "operational.key")
    code, out, err = await keys(tmp_path, data_dir, "delegate", "--officer-key",
                                officers / "officer-3.key", "--officer-key",
                                officers / "officer-1.key")  # fmt: skip
    assert code == 0, err
    assert "Restart the server" in out
    new_state, held = await stored(data_dir)
    assert new_state.position == 1
    assert new_state.events[1].type == "key.delegation"
    assert new_state.events[1].seal == 0  # nothing was signed before
    new = read_key_file(data_dir / "keys" / "operational.key")
    assert SigningKey(new.seed).public == new_state.op != SigningKey(old.seed).public
    kept = data_dir / "keys" / "operational.key.old-0"
    assert read_key_file(kept) == old
    assert mode(kept) == mode(data_dir / "keys" / "operational.key") == 0o600
    [descriptor] = held  # signed with the new key, so peers learn of the change
    assert (descriptor.envelope.kpos, descriptor.envelope.seq) == (1, 1)
    check_descriptor(descriptor.to_bytes(), new_state, descriptor.envelope.created)
    assert load_signer(data_dir).key.public == new_state.op  # a restarted server signs anew

    code, out, _ = await keys(tmp_path, data_dir, "show")
    assert "key.delegation" in out
    assert "holds the operational key in force" in out
    # A seal above the last envelope signed would let the replaced key sign more.
    code, _, err = await keys(tmp_path, data_dir, "delegate", "--officer-key",
                              officers / "officer-2.key", "--officer-key",
                              officers / "officer-3.key", "--seal", "2")  # fmt: skip
    assert (code, "(bad_seal)" in err) == (1, True), err


async def test_rotate(tmp_path: Path, database_url: str) -> None:
    data_dir = await init(tmp_path, database_url, officers=2, threshold=2)
    officers = data_dir / "officers"
    state, _ = await stored(data_dir)
    before = files(data_dir)
    rotations: list[tuple[list[str | Path], str]] = [
        (["--next-officer-key", officers / "officer-1.key", "--next-officer-key",
          officers / "next-officer-1.key"], "not_committed"),
        (["--next-officer-key", officers / "next-officer-1.key"], "bad_threshold"),
        (["--next-officer-key", officers / "next-officer-1.key", "--threshold", "1"],
         "too_few_officers"),  # the current threshold (2) must sign too
        (["--next-officer-key", officers / "next-officer-1.key", "--next-officer-key",
          officers / "next-officer-2.key", "--next-officers", "1"], "bad_threshold"),
    ]  # fmt: skip
    for args, expected in rotations:
        code, out, err = await keys(tmp_path, data_dir, "rotate", *args)
        assert code == 1, (args, out)
        assert f"({expected})" in err, (args, err)
    assert files(data_dir) == before
    assert not list(data_dir.glob("officers-next-*"))

    revealed = [officers / "next-officer-1.key", officers / "next-officer-2.key"]
    both: list[str | Path] = ["--next-officer-key", revealed[0], "--next-officer-key", revealed[1]]
    code, out, err = await keys(tmp_path, data_dir, "rotate", *both, "--next-officers", "3")
    assert code == 0, err
    assert "MOVE THEM OFFLINE" in out
    new_state, held = await stored(data_dir)
    assert new_state.events[-1].type == "key.rotation"
    assert new_state.officers == tuple(SigningKey(read_key_file(p).seed).public for p in revealed)
    assert new_state.op == state.op  # the server's key stays
    written = sorted((data_dir / "officers-next-1").iterdir())
    assert [p.name for p in written] == [f"next-officer-{i}.key" for i in (1, 2, 3)]
    assert mode(data_dir / "officers-next-1") == 0o700
    for path in written:
        assert mode(path) == 0o600
        assert "OFFLINE" in path.read_text()
        assert read_key_file(path).node == new_state.node_id.hex()
    assert new_state.next == tuple(
        commitment(SigningKey(read_key_file(p).seed).public) for p in written
    )
    assert [e.envelope.type for e in held] == ["node.descriptor"]

    # The old officers no longer count; the revealed keys do.
    old: list[str | Path] = ["--officer-key", officers / "officer-1.key", "--officer-key",
                             officers / "officer-2.key"]  # fmt: skip
    code, _, err = await keys(tmp_path, data_dir, "delegate", *old)
    assert (code, "(not_an_officer)" in err) == (1, True), err
    code, _, err = await keys(tmp_path, data_dir, "delegate", "--officer-key", revealed[0],
                              "--officer-key", revealed[1])  # fmt: skip
    assert code == 0, err
    # Revealing the same keys again: no longer committed.
    code, _, err = await keys(tmp_path, data_dir, "rotate", "--next-officer-key", revealed[0],
                              "--next-officer-key", revealed[1])  # fmt: skip
    assert (code, "(not_committed)" in err) == (1, True), err
