"""Helpers of the browser tests (no tests here): a real node served by aiohttp on 127.0.0.1
(port 0, SQLite in a temporary directory, a FakeClock) from a thread and event loop of its
own, so that Playwright's synchronous API can drive Chromium from the test's thread."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from playwright.sync_api import Page

from node.app import create_app
from node.clock import FakeClock
from node.config import load_config
from node.identity import new_identity, write_identity
from node.services import decisions
from node.services.closing import close_due
from node.services.members import Actor
from node.services.passwords import Argon2Params, PasswordHasher
from node.services.setup import record_identity
from node.storage.db import create_engine, session_factory, upgrade
from node.web.keys import ACCOUNTS, ADMINISTRATION, INVITES, PEERING, SESSIONS, SIGNER

T = TypeVar("T")
HERE = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("TADAMUN_CHROMIUM", "/usr/bin/chromium")
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = HERE / "artifacts"
START = 1_800_000_000
CHEAP = Argon2Params(memory_kib=64, iterations=1, lanes=1)
PASSWORD = "correct horse battery"  # noqa: S105 - the test members' password


def unavailable(reason: str) -> None:
    """Skip locally; in CI, where everything must run, fail."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the browser tests must run)")
    pytest.skip(reason)


class ServedNode:
    """A node set up as ``tadamun init`` does, served on 127.0.0.1 from its own thread and
    event loop; tests reach into it only to set things up and to move its clock."""

    def __init__(self, tmp: Path, name: str = "Union") -> None:
        self.tmp = tmp
        self.name = name
        self.clock = FakeClock(START)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.url = ""
        self.admin_invite = ""
        self.runner: web.AppRunner | None = None
        self.names = 0
        self.proposer: int | None = None  # an admin who puts proposals, made when needed

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def app(self) -> web.Application:
        assert self.runner is not None
        return self.runner.app

    def start(self) -> None:
        self.thread.start()
        self.run(self._start())

    async def _start(self) -> None:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        data_dir = self.tmp / "node"
        data_dir.mkdir(mode=0o700)
        identity = new_identity(1, 1, self.clock.now())
        write_identity(data_dir, identity)
        database = f"sqlite+aiosqlite:///{self.tmp / 'tadamun.db'}"
        engine = create_engine(database)
        await upgrade(engine)
        self.admin_invite = await record_identity(
            session_factory(engine), identity, "Test union", self.clock.now()
        )
        await engine.dispose()
        flags = {"database.url": database, "server.public_url": self.url, "node.name": self.name,
                 "federation.allow_networks": "127.0.0.0/8"}  # fmt: skip
        config = load_config(data_dir, {}, flags)
        app = create_app(config, self.clock, hasher=PasswordHasher(CHEAP))
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.SockSite(self.runner, listener).start()

    def stop(self) -> None:
        if self.runner is not None:
            self.run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    # --- setting things up through the services --------------------------------------------

    def pseudonym(self, prefix: str) -> str:
        self.names += 1
        return f"{prefix}{self.names:03d}"

    def member(self, role: str = "member", language: str = "en", status: str = "active") -> str:
        """A new member (made through the services, as the join page would), their pseudonym."""
        pseudonym = self.pseudonym(role[:3])
        self.run(self._member(pseudonym, role, language, status))
        return pseudonym

    async def _member(self, pseudonym: str, role: str, language: str, status: str) -> int:
        invite = await self.app[INVITES].create(_cli(), role, 1)
        body = {"invite": invite["token"], "pseudonym": pseudonym, "password": PASSWORD,
                "language": language}  # fmt: skip
        member = await self.app[ACCOUNTS].register(body)
        if status == "suspended":
            await self.app[ADMINISTRATION].transition(_cli(), member["id"], "suspend")
        return int(member["id"])

    def invite_link(self, role: str = "member", uses: int = 1) -> str:
        created = self.run(self.app[INVITES].create(_cli(), role, uses))
        return str(created["link"])

    def proposal(self, title: str, options: tuple[str, ...], *, ballot: str = "secret",
                 method: str = "majority", hours: int = 48) -> str:  # fmt: skip
        """A proposal opening now, put by an admin; its page."""
        if self.proposer is None:
            self.proposer = self.run(self._member(self.pseudonym("pro"), "admin", "en", "active"))
        by, now = self.proposer, self.clock.now()
        draft = decisions.Draft(
            title=title, body="", options=options, method=method, quorum=(1, 4), ballot=ballot,
            opens_at=now, closes_at=now + hours * 3600,
        )  # fmt: skip
        view = self.run(decisions.create_proposal(self.app[SESSIONS], draft, by=by, now=now))
        return f"/proposals/{view.public_id.hex()}"

    def peer_with(self, joiner: ServedNode) -> None:
        """Ally with ``joiner`` as ``tadamun peer invite`` and ``peer join`` do: this node
        makes an invite, ``joiner`` answers it (and fetches this node's documents)."""
        made = self.run(self.app[PEERING].create_invite(_cli()))
        joiner.run(joiner.app[PEERING].join(_cli(), made["invite"]))

    def advance(self, seconds: int) -> None:
        """Move the clock on, and close what is due (as the scheduler does on its next pass)."""
        self.run(self._advance(seconds))

    async def _advance(self, seconds: int) -> None:
        self.clock.advance(seconds)
        await close_due(self.app[SESSIONS], self.app[SIGNER], self.clock.now())


def _cli() -> Actor:
    return Actor.cli()


def log_in(page: Page, pseudonym: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.fill("#f-pseudonym", pseudonym)
    page.fill("#f-password", password)
    page.click("main form button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
