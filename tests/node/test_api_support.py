"""Helpers shared by the JSON API tests (no tests here): a real node app served by aiohttp's
TestServer on 127.0.0.1 over a migrated database, with a FakeClock and cheap Argon2
parameters, its first admin registered through the API, and clients acting as members."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from database_support import table_rows
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from node.app import api_routes, create_app
from node.clock import FakeClock
from node.config import Config, load_config
from node.identity import new_identity, write_identity
from node.services.closing import close_due
from node.services.passwords import Argon2Params, PasswordHasher
from node.services.setup import record_identity
from node.storage.db import create_engine, session_factory, upgrade
from node.storage.models import Member
from node.web.api import Route, page_schema
from node.web.keys import SIGNER
from node.web.schema import validate

START = 1_800_000_000
HOUR = 3_600
CHEAP = Argon2Params(memory_kib=64, iterations=1, lanes=1)
PASSWORD = "correct horse battery"  # noqa: S105 - the test members' password
COOKIE = "tadamun_session"


@dataclass
class Who:
    """Someone calling the API: the headers that carry their credential (if any)."""

    name: str
    headers: dict[str, str] = field(default_factory=dict)
    member_id: int | None = None
    token: str | None = None  # API token
    session: str | None = None  # session cookie value


@dataclass
class Answer:
    status: int
    body: Any
    headers: Mapping[str, str]
    cookies: Mapping[str, Any]

    @property
    def code(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return str(self.body["error"].get("code"))
        return None


@dataclass
class ApiNode:
    client: TestClient[web.Request, web.Application]
    clock: FakeClock
    engine: AsyncEngine
    sessions: async_sessionmaker[Any]
    config: Config
    admin: Who
    names: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def origin(self) -> str:
        return self.config.server.base_url

    async def call(
        self,
        method: str,
        path: str,
        who: Who | None = None,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """One request to /api/v1``path``; ``body`` is sent as JSON, ``raw`` as it is."""
        sent = dict(who.headers if who else {})
        sent |= headers or {}
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        async with self.client.request(
            method, "/api/v1" + path, data=data, headers=sent
        ) as response:
            text_body = await response.text()
            parsed = json.loads(text_body) if text_body else None
            return Answer(response.status, parsed, response.headers, response.cookies)

    def pseudonym(self, prefix: str = "m") -> str:
        return f"{prefix}{next(self.names):04d}"

    async def invite(self, role: str = "member", uses: int = 1, hours: int = 24) -> str:
        answer = await self.call(
            "POST", "/invites", self.admin, {"role": role, "uses": uses, "expires_hours": hours}
        )
        assert answer.status == 201, answer.body
        return str(answer.body["token"])

    async def register(self, role: str = "member", **extra: Any) -> tuple[str, int]:
        pseudonym = extra.pop("pseudonym", None) or self.pseudonym(role[0])
        body = {"invite": await self.invite(role), "pseudonym": pseudonym, "password": PASSWORD}
        answer = await self.call("POST", "/register", None, body | extra)
        assert answer.status == 201, answer.body
        return pseudonym, int(answer.body["id"])

    async def login(self, pseudonym: str, password: str = PASSWORD) -> Answer:
        return await self.call(
            "POST", "/login", None, {"pseudonym": pseudonym, "password": password}
        )

    async def by_cookie(self, pseudonym: str, member_id: int, name: str = "") -> Who:
        answer = await self.login(pseudonym)
        assert answer.status == 200, answer.body
        session = answer.cookies[COOKIE].value
        headers = {"Cookie": f"{COOKIE}={session}", "Origin": self.origin}
        return Who(name or pseudonym, headers, member_id, session=session)

    async def by_token(self, who: Who, name: str = "") -> Who:
        answer = await self.call("POST", "/me/tokens", who, {"name": "test"})
        assert answer.status == 201, answer.body
        token = str(answer.body["token"])
        headers = {"Authorization": f"Bearer {token}"}
        return Who(name or who.name, headers, who.member_id, token=token)

    async def member(self, role: str = "member", via: str = "cookie", name: str = "") -> Who:
        """A new active member with ``role``, calling with a session cookie or a token."""
        pseudonym, member_id = await self.register(role)
        who = await self.by_cookie(pseudonym, member_id, name)
        return await self.by_token(who, name) if via == "token" else who

    async def set_status(self, member_id: int, status: str) -> None:
        """Put a member in a state the API cannot (e.g. back to pending), for setting up."""
        async with self.sessions.begin() as session:
            await session.execute(
                update(Member).where(Member.id == member_id).values(status=status)
            )

    async def row(self, member_id: int) -> Member:
        async with self.sessions() as session:
            member: Member | None = await session.get(Member, member_id)
            assert member is not None
            return member

    async def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, to show that a refused request changed nothing."""
        return await table_rows(self.engine)


def sqlite_url(tmp_path: Path) -> str:
    """For tests of the HTTP layer alone (cookies, origins, parameters), where the database
    makes no difference: they run on SQLite only, to keep the suite fast."""
    return f"sqlite+aiosqlite:///{tmp_path / 'tadamun.db'}"


@asynccontextmanager
async def api_node(
    tmp_path: Path, database_url: str, public_url: str = ""
) -> AsyncIterator[ApiNode]:
    """A node set up as ``tadamun init`` does, its admin registered, served on 127.0.0.1."""
    clock = FakeClock(START)
    data_dir = tmp_path / "node"
    data_dir.mkdir(mode=0o700)
    identity = new_identity(1, 1, clock.now())
    write_identity(data_dir, identity)
    engine = create_engine(database_url)
    await upgrade(engine)
    sessions = session_factory(engine)
    invite = await record_identity(sessions, identity, "Test union", clock.now())
    flags = {"database.url": database_url, "server.public_url": public_url or None}
    config = load_config(data_dir, {}, flags)
    app = create_app(config, clock, hasher=PasswordHasher(CHEAP))
    client = TestClient(TestServer(app, host="127.0.0.1"), cookie_jar=aiohttp.DummyCookieJar())
    await client.start_server()
    try:
        node = ApiNode(client, clock, engine, sessions, config, Who("nobody"))
        body = {"invite": invite, "pseudonym": "founder", "password": PASSWORD}
        answer = await node.call("POST", "/register", None, body)
        assert answer.status == 201, answer.body
        founder = await node.by_cookie("founder", int(answer.body["id"]), "admin")
        node.admin = await node.by_token(founder, "admin")
        yield node
    finally:
        await client.close()
        await engine.dispose()


# --- internal decisions ---------------------------------------------------------------------


def draft(node: ApiNode, **changes: Any) -> dict[str, Any]:
    """A valid proposal draft (secret, majority): voting opens now and ends in an hour."""
    base = {
        "title": "Strike on 1 May?", "body": "The committee proposes\na one-day strike.",
        "options": ["yes", "no"], "method": "majority", "quorum": {"num": 1, "den": 4},
        "ballot": "secret", "closes_at": node.clock.now() + HOUR,
    }  # fmt: skip
    return base | changes


async def propose(node: ApiNode, who: Who | None = None, **changes: Any) -> str:
    """A new proposal (by the admin unless ``who`` is given); its public id in hex."""
    answer = await node.call("POST", "/proposals", who or node.admin, draft(node, **changes))
    assert answer.status == 201, answer.body
    return str(answer.body["id"])


async def close_now(node: ApiNode) -> None:
    """Count what is due at the clock's time at once, as the scheduler would on its next pass
    (for setting up; the decision tests also let the app's own scheduler do it)."""
    await close_due(node.sessions, node.client.app[SIGNER], node.clock.now())


# --- the OpenAPI document as the oracle --------------------------------------------------------


def route_for(method: str, path: str) -> Route:
    """The route that serves ``method`` ``path`` (a concrete path, ids filled in)."""
    parts = path.split("?", maxsplit=1)[0].strip("/").split("/")
    for route in api_routes():
        pattern = route.path.strip("/").split("/")
        if route.method != method or len(pattern) != len(parts):
            continue
        if all(p.startswith("{") or p == q for p, q in zip(pattern, parts, strict=True)):
            return route
    raise LookupError(f"no route for {method} {path}")


def check_documented(document: dict[str, Any], method: str, path: str, answer: Answer) -> None:
    """The answer is one the OpenAPI document promises: its status is listed, an error's
    code is among those listed for that status, and a success body matches its schema."""
    route = route_for(method, path)
    operation = document["paths"][route.full_path][method.lower()]
    documented = operation["responses"]
    assert str(answer.status) in documented, (method, path, answer.status, answer.body)
    if answer.status >= 400:
        assert answer.code in documented[str(answer.status)]["x-error-codes"], (
            method, path, answer.status, answer.body,
        )  # fmt: skip
        return
    returns = route.returns
    if route.paginated and returns is not None:
        returns = page_schema(returns)
    if returns is None:
        assert answer.body is None, (method, path, answer.body)
    else:
        validate(returns, answer.body)  # raises, naming the field, if it does not match
