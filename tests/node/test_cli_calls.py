"""``tadamun call issue`` and ``tadamun call list`` as real subprocesses, on SQLite and
PostgreSQL: the call is signed and stored as the API would, its meeting point stays local,
and bad input is refused with a message and nothing stored."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from test_cli import run_cli

from node.config import load_config
from node.storage.db import create_engine, session_factory
from node.storage.models import AuditEntry, CallRow, EnvelopeRow
from protocol import CallIssue, SignedEnvelope

ISSUED = re.compile(r"^Call (\d+) issued \(strike, to allies\): ([0-9a-f]{64})$", re.MULTILINE)


async def rows(data_dir: Path) -> tuple[list[CallRow], list[bytes], list[str]]:
    engine = create_engine(load_config(data_dir, {}).database.url)
    try:
        async with session_factory(engine)() as session:
            calls = list(await session.scalars(select(CallRow)))
            wires = list(
                await session.scalars(
                    select(EnvelopeRow.wire).where(EnvelopeRow.type == "call.issue")
                )
            )
            actions = list(await session.scalars(select(AuditEntry.action)))
    finally:
        await engine.dispose()
    return calls, [w for w in wires if w is not None], actions


async def test_call_issue_and_list(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "node"
    init = await run_cli(tmp_path, "init", "--data-dir", data_dir, "--database-url", database_url)
    assert init.code == 0, init.err
    year = datetime.now(UTC).year + 1
    issued = await run_cli(
        tmp_path, "call", "issue", "--data-dir", data_dir, "--kind", "strike",
        "--title-en", "General strike", "--title-ar", "إضراب عام",
        "--title-ckb", "مانگرتنی گشتی", "--text-en", "Stop work.", "--text-ar", "أوقفوا العمل.",
        "--threshold-pledges", "500", "--threshold-orgs", "3",
        "--deadline", f"{year}-04-25T12:00", "--starts", f"{year}-05-01",
        "--region", "IQ-BA", "--place", "Basra", "--meeting-point", "Gate 4",
        "--sector", "oil", "--sector", "ports", "--region-tag", "IQ-BA", "--audience", "allies",
    )  # fmt: skip
    assert issued.code == 0, issued.err
    found = ISSUED.search(issued.out)
    assert found, issued.out
    assert "500 pledges across 3 organisations" in issued.out
    (call,), (wire,), actions = await rows(data_dir)
    signed = SignedEnvelope.from_bytes(wire)
    body = CallIssue.from_body(signed.envelope.body)
    assert (call.id, call.call_id.hex()) == (int(found[1]), found[2]) == (1, signed.id.hex())
    assert body.title == {"en": "General strike", "ar": "إضراب عام", "ckb": "مانگرتنی گشتی"}
    assert body.sectors == ("oil", "ports")
    assert body.threshold is not None
    assert body.threshold.deadline == int(datetime(year, 4, 25, 12, tzinfo=UTC).timestamp())
    assert call.meeting_point == "Gate 4"
    assert b"Gate 4" not in wire
    assert "call.issue" in actions

    listed = await run_cli(tmp_path, "call", "list", "--data-dir", data_dir)
    assert listed.code == 0, listed.err
    assert re.search(r"^\s+1\s+open\s+own\s+strike\s+إضراب عام$", listed.out, re.MULTILINE)


async def test_bad_calls_are_refused(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "node"
    init = await run_cli(tmp_path, "init", "--data-dir", data_dir, "--database-url", database_url)
    assert init.code == 0, init.err
    base = ("call", "issue", "--data-dir", data_dir, "--kind", "strike")
    for extra, message in (
        (("--text-en", "x"), "invalid_field"),  # no title
        (("--title-en", "x", "--text-en", "x", "--threshold-pledges", "5"), "threshold"),
        (("--title-en", "x", "--text-en", "x", "--audience", "coalition:" + "ab" * 32),
         "audience_unsupported"),
        (("--title-en", "x", "--text-en", "x", "--deadline", "yesterday"), "ISO 8601"),
    ):  # fmt: skip
        refused = await run_cli(tmp_path, *base, *extra)
        assert refused.code != 0
        assert message in refused.err, refused.err
    assert await rows(data_dir) == ([], [], ["node.init"])
    missing = await run_cli(tmp_path, "call", "list", "--data-dir", tmp_path / "nothing")
    assert missing.code == 2
