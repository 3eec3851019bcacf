"""``tadamun coalition found|invite|join|leave|list`` as real subprocesses, on SQLite and
PostgreSQL: the envelopes are signed and stored as the API's would be, the audit log names
the operator, and refusals print a message and exit 1 with nothing stored."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from sqlalchemy import select
from test_cli import run_cli

from node.config import load_config
from node.storage.db import create_engine, session_factory
from node.storage.models import AuditEntry, EnvelopeRow

FOUNDED = re.compile(r"^Coalition (\d+) founded: ([0-9a-f]{64})$", re.MULTILINE)


async def signed_types(data_dir: Path) -> tuple[list[str], list[str]]:
    engine = create_engine(load_config(data_dir, {}).database.url)
    try:
        async with session_factory(engine)() as session:
            types = list(await session.scalars(
                select(EnvelopeRow.type).where(EnvelopeRow.type.like("coalition.%"))
                .order_by(EnvelopeRow.seq)
            ))  # fmt: skip
            actions = list(await session.scalars(
                select(AuditEntry.action).where(AuditEntry.actor == "cli")
                .order_by(AuditEntry.id)
            ))  # fmt: skip
    finally:
        await engine.dispose()
    return types, [a for a in actions if a.startswith("coalition.")]


async def test_coalition_commands(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "node"
    init = await run_cli(tmp_path, "init", "--data-dir", data_dir, "--database-url", database_url)
    assert init.code == 0, init.err
    empty = await run_cli(tmp_path, "coalition", "list", "--data-dir", data_dir)
    assert "no coalitions yet" in empty.out
    nameless = await run_cli(tmp_path, "coalition", "found", "--data-dir", data_dir)
    assert (nameless.code, "give a name" in nameless.err) == (1, True)
    found = await run_cli(
        tmp_path, "coalition", "found", "--data-dir", data_dir, "--name-en", "Southern unions",
        "--name-ar", "نقابات الجنوب", "--purpose-en", "Strike together.",
    )  # fmt: skip
    assert found.code == 0, found.err
    match = FOUNDED.search(found.out)
    assert match, found.out
    number, coalition = match[1], match[2]
    assert f"--audience coalition:{coalition}" in found.out
    invitee = secrets.token_bytes(32).hex()
    invited = await run_cli(
        tmp_path, "coalition", "invite", "--data-dir", data_dir, coalition[:10], invitee
    )
    assert invited.code == 0, invited.err
    assert f"invited  {invitee[:16]}" in invited.out
    listed = await run_cli(tmp_path, "coalition", "list", "--data-dir", data_dir)
    assert "Southern unions  (member)" in listed.out
    again = await run_cli(tmp_path, "coalition", "invite", "--data-dir", data_dir, number, invitee)
    assert (again.code, "(already_invited)" in again.err) == (1, True)
    join = await run_cli(tmp_path, "coalition", "join", "--data-dir", data_dir, number)
    assert (join.code, "(already_member)" in join.err) == (1, True)
    chosen = await run_cli(tmp_path, "coalition", "join", "--data-dir", data_dir, number,
                           "--invite", "abcd")  # fmt: skip
    assert (chosen.code, "(already_member)" in chosen.err) == (1, True)
    missing = await run_cli(tmp_path, "coalition", "leave", "--data-dir", data_dir, "42")
    assert (missing.code, "(not_found)" in missing.err) == (1, True)
    left = await run_cli(tmp_path, "coalition", "leave", "--data-dir", data_dir, number)
    assert left.code == 0, left.err
    assert "(left)" in left.out
    types, actions = await signed_types(data_dir)
    assert types == ["coalition.found", "coalition.invite", "coalition.leave"]
    assert actions == ["coalition.found", "coalition.invite", "coalition.leave"]
