"""``tadamun invite create`` and ``tadamun member list|approve|suspend|reinstate|role`` as
real subprocesses, beside a real ``tadamun serve`` that members register and log in to,
on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select
from test_api_support import PASSWORD
from test_cli import parse_init_output, run_cli, serving

from node.cli import build_parser
from node.config import load_config
from node.storage.db import create_engine, session_factory
from node.storage.models import AuditEntry

LINK = re.compile(r"^\s+(https?://\S+/join/([A-Za-z0-9_-]{43}))$", re.MULTILINE)


async def post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with http.post(url, json=body) as response:
        return response.status, await response.json()


async def audit(data_dir: Path) -> list[tuple[str, str, dict[str, Any]]]:
    engine = create_engine(load_config(data_dir, {}).database.url)
    try:
        async with session_factory(engine)() as session:
            rows = (await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
    finally:
        await engine.dispose()
    return [(r.actor, r.action, json.loads(r.detail)) for r in rows]


def member_lines(out: str) -> dict[int, tuple[str, str, str]]:
    rows = {}
    for line in out.splitlines()[1:]:
        member_id, role, status, pseudonym = line.split(maxsplit=3)
        rows[int(member_id)] = (role, status, pseudonym)
    return rows


async def test_member_commands(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "node"
    init = await run_cli(tmp_path, "init", "--data-dir", data_dir, "--database-url", database_url)
    assert init.code == 0, init.err
    founder_invite = parse_init_output(init.out).token

    made = await run_cli(
        tmp_path,
        "invite",
        "create",
        "--data-dir",
        data_dir,
        "--role",
        "organiser",
        "--uses",
        "2",
        "--expires-hours",
        "3",
    )
    assert made.code == 0, made.err
    link = LINK.search(made.out)
    assert link, made.out
    assert "role organiser, 2 use(s)" in made.out

    async with serving(tmp_path, data_dir) as server, aiohttp.ClientSession() as http:
        api = f"{server.url}/api/v1"
        for invite, name in (
            (founder_invite, "founder"),
            (link[2], "org-one"),
            (link[2], "org-two"),
        ):
            status, body = await post(
                http, f"{api}/register", {"invite": invite, "pseudonym": name, "password": PASSWORD}
            )
            assert status == 201, body
        status, body = await post(
            http, f"{api}/register", {"invite": link[2], "pseudonym": "late", "password": PASSWORD}
        )
        assert (status, body["error"]["code"]) == (410, "invite_used_up")

        listing = await run_cli(tmp_path, "member", "list", "--data-dir", data_dir)
        assert listing.code == 0, listing.err
        assert member_lines(listing.out) == {
            1: ("admin", "active", "founder"),
            2: ("organiser", "active", "org-one"),
            3: ("organiser", "active", "org-two"),
        }

        suspend = await run_cli(tmp_path, "member", "suspend", "--data-dir", data_dir, "2")
        assert suspend.code == 0, suspend.err
        assert "member 2 (org-one) is now suspended" in suspend.out
        status, body = await post(
            http, f"{api}/login", {"pseudonym": "org-one", "password": PASSWORD}
        )
        assert (status, body["error"]["code"]) == (403, "account_suspended")

        role = await run_cli(tmp_path, "member", "role", "--data-dir", data_dir, "3", "admin")
        assert role.code == 0, role.err
        assert "member 3 (org-two) is now admin" in role.out
        again = await run_cli(tmp_path, "member", "approve", "--data-dir", data_dir, "3")
        assert again.code == 1
        assert "(invalid_transition)" in again.err

        await server.stop()

    cli_rows = [
        (action, detail) for actor, action, detail in await audit(data_dir) if actor == "cli"
    ]
    assert [action for action, _ in cli_rows] == [
        "node.init",
        "invite.create",
        "member.suspend",
        "member.role",
    ]
    assert cli_rows[2][1] == {"member": 2, "before": "active", "after": "suspended"}
    assert link[2] not in json.dumps(cli_rows)


@pytest.mark.parametrize(
    "args",
    [
        ["invite", "create", "--role", "king"],
        ["invite", "create", "--uses", "0"],
        ["invite", "create", "--expires-hours", "100000"],
        ["member", "role", "1", "king"],
        ["member", "approve", "one"],
        ["member", "list", "--status", "asleep"],
    ],
)
def test_member_commands_refuse_bad_arguments(args: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*args[:2], "--data-dir", "somewhere", *args[2:]])
    assert exit_.value.code == 2


def test_member_commands_need_a_migrated_node(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run in this process (not a subprocess): the refusals need no server."""
    args = build_parser().parse_args(["member", "approve", "--data-dir", str(tmp_path), "1"])
    assert args.handler(args) == 2
    assert "holds no node; run `tadamun init`" in capsys.readouterr().err
    (tmp_path / "tadamun.toml").write_text('[node]\nname = "Empty"\n')
    assert args.handler(args) == 2
    assert "tadamun db upgrade" in capsys.readouterr().err
    assert args.handler(build_parser().parse_args(["member", "list", "--data-dir", "/"])) == 2
