"""Registration, invites, login, sessions and API tokens through the real JSON API, on
SQLite and PostgreSQL: used, expired and unknown invites; multi-use invites under
concurrent registrations; login throttling on the FakeClock; cookie flags and the
same-origin rule; contact fields sealed at rest; only hashes of secrets stored."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

from sqlalchemy import func, select, update
from test_api_support import CHEAP, COOKIE, PASSWORD, ApiNode, Who, api_node, sqlite_url

from node.services.accounts import THROTTLE_LIMIT, THROTTLE_LOCK, THROTTLE_WINDOW
from node.services.passwords import Argon2Params, PasswordHasher
from node.storage.models import ApiToken, Invite, LoginSession, LoginThrottle, Member


async def count(node: ApiNode, model: type) -> int:
    async with node.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def invite_row(node: ApiNode, token: str) -> Invite:
    async with node.sessions() as session:
        digest = hashlib.sha256(token.encode()).digest()
        row: Invite | None = await session.scalar(select(Invite).where(Invite.token_hash == digest))
        assert row is not None
        return row


def registration(invite: str, pseudonym: str, **extra: object) -> dict[str, object]:
    return {"invite": invite, "pseudonym": pseudonym, "password": PASSWORD, **extra}


# --- registration and invites ---------------------------------------------------------------


async def test_register_with_everything(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        invite = await node.invite("organiser")
        contact = {"phone": "+964 750 123 4567", "email": "worker@example.org"}
        body = registration(invite, "عامل النفط", real_name="Kawa", language="ckb",
                            contact=contact)  # fmt: skip
        answer = await node.call("POST", "/register", None, body)
        assert answer.status == 201, answer.body
        profile = answer.body
        assert profile | {"id": 0} == {
            "id": 0, "pseudonym": "عامل النفط", "real_name": "Kawa", "role": "organiser",
            "status": "active", "language": "ckb", "created_at": node.clock.now(),
            "contact": contact,
        }  # fmt: skip
        assert answer.headers["Cache-Control"] == "no-store"

        row = await node.row(profile["id"])
        assert row.password_hash.startswith("$argon2id$v=19$")
        assert PASSWORD not in row.password_hash
        sealed = row.contact_sealed or b""
        for secret in (*contact.values(), "worker", "4567"):
            assert secret.encode() not in sealed
        snapshot = json.dumps(await node.snapshot(), default=repr, ensure_ascii=False)
        for secret in (*contact.values(), PASSWORD, invite):
            assert secret not in snapshot
        assert (await invite_row(node, invite)).uses_left == 0

        who = await node.by_cookie("عامل النفط", profile["id"])
        assert (await node.call("GET", "/me", who)).body == profile


async def test_pseudonyms(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        invite = await node.invite(uses=10)
        for good in ("Zagros-Teachers", "کرێکار\u200cی نەوت", "a.b_c 9"):
            answer = await node.call("POST", "/register", None, registration(invite, good))
            assert answer.status == 201, (good, answer.body)
        before = await node.snapshot()
        for bad in ("~deleted-1", " lead", "two  spaces", "right\u202eleft", "ab", "a/b",
                    "zero\u200bwidth", "_under"):  # fmt: skip
            answer = await node.call("POST", "/register", None, registration(invite, bad))
            assert (answer.status, answer.code) == (400, "invalid_field"), (bad, answer.body)
            assert "'pseudonym'" in answer.body["error"]["message"]
        for taken in ("zagros-teachers", "ZAGROS-TEACHERS", "Founder"):
            answer = await node.call("POST", "/register", None, registration(invite, taken))
            assert (answer.status, answer.code) == (409, "pseudonym_taken"), taken
        assert await node.snapshot() == before  # the invite's uses were not spent either


async def test_used_expired_and_unknown_invites(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        used = await node.invite()
        assert (
            await node.call("POST", "/register", None, registration(used, "first"))
        ).status == 201
        expiring = await node.invite(hours=2)
        withdrawn = await node.call("POST", "/invites", node.admin, {})
        gone = await node.call("DELETE", f"/invites/{withdrawn.body['id']}", node.admin)
        assert gone.status == 204
        node.clock.advance(2 * 3600)  # the expiry instant itself is already too late
        before = await node.snapshot()
        for token, status, code in (
            (used, 410, "invite_used_up"),
            (expiring, 410, "invite_expired"),
            (withdrawn.body["token"], 400, "invalid_invite"),
            ("no-such-invite", 400, "invalid_invite"),
        ):
            answer = await node.call("POST", "/register", None, registration(token, "second"))
            assert (answer.status, answer.code) == (status, code), answer.body
        assert await node.snapshot() == before


async def test_a_multi_use_invite_is_counted_exactly_under_concurrency(
    tmp_path: Path, database_url: str
) -> None:
    async with api_node(tmp_path, database_url) as node:
        invite = await node.invite(uses=2)
        members_before = await count(node, Member)
        answers = await asyncio.gather(*(
            node.call("POST", "/register", None, registration(invite, f"rush{i}"))
            for i in range(8)
        ))  # fmt: skip
        statuses = sorted((a.status, a.code) for a in answers)
        assert statuses == [(201, None)] * 2 + [(410, "invite_used_up")] * 6
        assert await count(node, Member) == members_before + 2
        assert (await invite_row(node, invite)).uses_left == 0


async def test_invites_list_and_their_links(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url, public_url="https://union.example") as node:
        made = await node.call("POST", "/invites", node.admin, {"role": "admin", "uses": 3})
        assert made.status == 201
        assert made.body["link"] == f"https://union.example/join/{made.body['token']}"
        assert made.body["expires_at"] == node.clock.now() + 7 * 86_400
        listed = await node.call("GET", "/invites", node.admin)
        assert [i["state"] for i in listed.body["items"]] == ["used_up", "usable"]
        assert all("token" not in i and "link" not in i for i in listed.body["items"])
        node.clock.advance(7 * 86_400)
        listed = await node.call("GET", "/invites?limit=1", node.admin)
        assert [i["state"] for i in listed.body["items"]] == ["used_up"]
        rest = await node.call("GET", f"/invites?cursor={listed.body['next']}", node.admin)
        assert [i["state"] for i in rest.body["items"]] == ["expired"]
        assert rest.body["next"] is None


# --- login, throttling, sessions ------------------------------------------------------------


async def test_login_throttling(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        pseudonym, _ = await node.register()
        for _ in range(THROTTLE_LIMIT):
            answer = await node.login(pseudonym, "wrong password")
            assert (answer.status, answer.code) == (401, "invalid_credentials")
        # Locked: even the right password is refused, without being checked.
        answer = await node.login(pseudonym, PASSWORD)
        assert (answer.status, answer.code) == (429, "too_many_attempts")
        assert COOKIE not in answer.cookies
        node.clock.advance(THROTTLE_LOCK - 1)
        assert (await node.login(pseudonym, PASSWORD)).status == 429
        node.clock.advance(1)
        assert (await node.login(pseudonym.upper(), PASSWORD)).status == 200
        assert await count(node, LoginThrottle) == 0  # a success forgets the failures

        # Failures spread over more than a window do not add up.
        for _ in range(2):
            for _ in range(THROTTLE_LIMIT - 1):
                assert (await node.login(pseudonym, "wrong password")).status == 401
            node.clock.advance(THROTTLE_WINDOW)
        assert (await node.login(pseudonym, PASSWORD)).status == 200

        # An unknown pseudonym is counted and locked just the same, by a keyed hash.
        answers = [await node.login("nobody-here", "a guess") for _ in range(THROTTLE_LIMIT + 1)]
        assert [a.status for a in answers] == [401] * THROTTLE_LIMIT + [429]
        async with node.sessions() as session:
            rows = (await session.scalars(select(LoginThrottle))).all()
        assert len(rows) == 1
        assert rows[0].account_key != hashlib.sha256(b"nobody-here").digest()  # keyed


async def test_a_locked_account_is_told_when_to_retry(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        document = (await node.call("GET", "/openapi.json")).body
        for path, method in (("/api/v1/login", "post"), ("/api/v1/me", "patch")):
            assert "Retry-After" in document["paths"][path][method]["responses"]["429"]["headers"]
        pseudonym, member_id = await node.register()
        for _ in range(THROTTLE_LIMIT):
            assert "Retry-After" not in (await node.login(pseudonym, "wrong password")).headers
        answer = await node.login(pseudonym, PASSWORD)
        assert (answer.status, answer.headers["Retry-After"]) == (429, str(THROTTLE_LOCK))
        node.clock.advance(100)
        answer = await node.login(pseudonym, PASSWORD)
        assert (answer.status, answer.headers["Retry-After"]) == (429, str(THROTTLE_LOCK - 100))
        node.clock.advance(THROTTLE_LOCK - 101)
        assert (await node.login(pseudonym, PASSWORD)).headers["Retry-After"] == "1"
        node.clock.advance(1)
        who = await node.by_cookie(pseudonym, member_id)
        # The current password of a password change is throttled the same way.
        change = {"password": "a new long password", "current_password": "wrong password"}
        for _ in range(THROTTLE_LIMIT):
            answer = await node.call("PATCH", "/me", who, change)
            assert (answer.status, answer.code) == (403, "wrong_password")
        answer = await node.call("PATCH", "/me", who, change)
        assert (answer.status, answer.code) == (429, "too_many_attempts")
        assert answer.headers["Retry-After"] == str(THROTTLE_LOCK)


async def test_concurrent_guesses_all_count(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        pseudonym, _ = await node.register()
        answers = await asyncio.gather(
            *(node.login(pseudonym, f"guess {i}") for i in range(3 * THROTTLE_LIMIT))
        )
        checked = [a for a in answers if a.status == 401]
        assert len(checked) <= THROTTLE_LIMIT
        assert {a.status for a in answers} <= {401, 429}
        assert all(int(a.headers["Retry-After"]) > 0 for a in answers if a.status == 429)
        assert (await node.login(pseudonym, PASSWORD)).status == 429


async def test_session_cookie_flags_and_lifetime(tmp_path: Path) -> None:
    async with api_node(tmp_path, sqlite_url(tmp_path)) as node:
        pseudonym, member_id = await node.register()
        answer = await node.login(pseudonym)
        header = answer.headers["Set-Cookie"]
        assert header.startswith(f"{COOKIE}=")
        flags = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
        assert flags == {"httponly", "max-age", "path", "samesite"}  # no Secure over http
        assert "SameSite=Strict" in header
        assert "Path=/" in header
        assert f"Max-Age={14 * 86_400}" in header
        who = await node.by_cookie(pseudonym, member_id)
        assert (await node.call("GET", "/me", who)).status == 200
        node.clock.advance(14 * 86_400)
        answer = await node.call("GET", "/me", who)
        assert (answer.status, answer.code) == (401, "unauthenticated")


async def test_the_session_cookie_is_secure_behind_tls(tmp_path: Path) -> None:
    async with api_node(tmp_path, sqlite_url(tmp_path), public_url="https://union.example") as node:
        pseudonym, _ = await node.register()
        header = (await node.login(pseudonym)).headers["Set-Cookie"]
        assert "Secure" in header.split("; ")


async def test_logout_ends_the_session(tmp_path: Path) -> None:
    async with api_node(tmp_path, sqlite_url(tmp_path)) as node:
        pseudonym, member_id = await node.register()
        who = await node.by_cookie(pseudonym, member_id)
        sessions_before = await count(node, LoginSession)
        answer = await node.call("POST", "/logout", who)
        assert answer.status == 204
        assert answer.cookies[COOKIE].value == ""
        assert await count(node, LoginSession) == sessions_before - 1
        answer = await node.call("GET", "/me", who)
        assert (answer.status, answer.code) == (401, "unauthenticated")
        assert (await node.call("POST", "/logout")).status == 204  # without a cookie too


async def test_cookies_need_our_origin(tmp_path: Path) -> None:
    async with api_node(tmp_path, sqlite_url(tmp_path)) as node:
        pseudonym, member_id = await node.register()
        who = await node.by_cookie(pseudonym, member_id)
        cookie_only = Who("no origin", {"Cookie": who.headers["Cookie"]})
        foreign = Who("foreign", {**who.headers, "Origin": "https://evil.example"})
        before = await node.snapshot()
        for caller in (cookie_only, foreign):
            for method, path, body in (
                ("PATCH", "/me", {"language": "en"}),
                ("POST", "/me/tokens", {"name": "x"}),
                ("POST", "/me/leave", None),
                ("POST", "/logout", None),
            ):
                answer = await node.call(method, path, caller, body)
                assert (answer.status, answer.code) == (403, "csrf"), (caller.name, path)
        answer = await node.call("POST", "/login", foreign,
                                 {"pseudonym": pseudonym, "password": PASSWORD})  # fmt: skip
        assert (answer.status, answer.code) == (403, "csrf")
        assert await node.snapshot() == before
        assert (await node.call("GET", "/me", cookie_only)).status == 200  # reading is safe
        answer = await node.call("PATCH", "/me", who, {"language": "en"})
        assert answer.status == 200
        # A bearer token needs no Origin: browsers never add one by themselves.
        assert (await node.call("PATCH", "/me", node.admin, {"language": "en"})).status == 200


async def test_suspended_members_credentials_are_refused(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        pseudonym, member_id = await node.register()
        cookie = await node.by_cookie(pseudonym, member_id)
        token = await node.by_token(cookie)
        assert (await node.call("POST", f"/members/{member_id}/suspend", node.admin)).status == 200
        for who in (cookie, token):
            for method, path in (("GET", "/me"), ("GET", "/policy"), ("GET", "/me/export")):
                answer = await node.call(method, path, who)
                assert (answer.status, answer.code) == (403, "account_suspended")
        answer = await node.login(pseudonym)
        assert (answer.status, answer.code) == (403, "account_suspended")
        assert (
            await node.call("POST", f"/members/{member_id}/reinstate", node.admin)
        ).status == 200
        for who in (cookie, token):
            assert (await node.call("GET", "/me", who)).status == 200


# --- tokens and password --------------------------------------------------------------------


async def test_api_tokens(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        member = await node.member()
        made = await node.call("POST", "/me/tokens", member, {"name": "phone"})
        assert made.status == 201
        token = made.body["token"]
        assert token.startswith("tdm_")
        listed = await node.call("GET", "/me/tokens", member)
        assert listed.body == {"items": [{k: made.body[k] for k in ("id", "name", "created_at")}]}
        assert token not in json.dumps(await node.snapshot(), default=repr)
        async with node.sessions() as session:
            stored = await session.scalar(
                select(ApiToken.token_hash).where(ApiToken.member_id == member.member_id)
            )
        assert stored == hashlib.sha256(token.encode()).digest()
        bearer = Who("bearer", {"Authorization": f"Bearer {token}"})
        assert (await node.call("GET", "/me", bearer)).body["id"] == member.member_id
        # someone else's token cannot be revoked by id
        answer = await node.call("DELETE", f"/me/tokens/{made.body['id']}", node.admin)
        assert (answer.status, answer.code) == (404, "not_found")
        assert (await node.call("DELETE", f"/me/tokens/{made.body['id']}", member)).status == 204
        answer = await node.call("GET", "/me", bearer)
        assert (answer.status, answer.code) == (401, "unauthenticated")
        for header in ("Basic abc", "Bearer", "Bearer  ", "token"):
            answer = await node.call("GET", "/me", Who("odd", {"Authorization": header}))
            assert (answer.status, answer.code) == (401, "unauthenticated"), header


async def test_password_change(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        pseudonym, member_id = await node.register()
        here = await node.by_cookie(pseudonym, member_id)
        elsewhere = await node.by_cookie(pseudonym, member_id)
        token = await node.by_token(here)
        before = await node.snapshot()
        answer = await node.call("PATCH", "/me", here, {"password": "a brand new one"})
        assert (answer.status, answer.code) == (400, "missing_field")
        change = {"password": "a brand new one", "current_password": "not it at all"}
        answer = await node.call("PATCH", "/me", here, change)
        assert (answer.status, answer.code) == (403, "wrong_password")
        after_failure = await node.snapshot()
        assert {k: v for k, v in after_failure.items() if k != "login_throttle"} == {
            k: v for k, v in before.items() if k != "login_throttle"
        }  # only the failed attempt was counted
        change["current_password"] = PASSWORD
        assert (await node.call("PATCH", "/me", here, change)).status == 200
        assert (await node.call("GET", "/me", here)).status == 200  # this session stays
        assert (await node.call("GET", "/me", elsewhere)).status == 401  # others end
        assert (await node.call("GET", "/me", token)).status == 200  # tokens stay
        assert (await node.login(pseudonym)).status == 401
        assert (await node.login(pseudonym, "a brand new one")).status == 200


async def test_an_old_hash_is_raised_to_the_current_parameters_at_login(
    tmp_path: Path, database_url: str
) -> None:
    async with api_node(tmp_path, database_url) as node:
        pseudonym, member_id = await node.register()
        old = PasswordHasher(Argon2Params(memory_kib=32, iterations=1)).hash(PASSWORD)
        async with node.sessions.begin() as session:
            await session.execute(
                update(Member).where(Member.id == member_id).values(password_hash=old)
            )
        assert (await node.login(pseudonym)).status == 200
        current = (await node.row(member_id)).password_hash
        assert current.startswith(f"$argon2id$v=19$m={CHEAP.memory_kib},t={CHEAP.iterations},")
        assert (await node.login(pseudonym)).status == 200
