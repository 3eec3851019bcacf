"""The web pages' security over HTTP, on SQLite and PostgreSQL: headers, cookies, CSRF tokens
(missing, wrong, forged from another session, replayed with another form cookie, cross-site),
form bodies our pages never send, login throttling, redirects that stay on the node,
escaping, who may see which page, and the size of each page."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import pytest
from pages_support import Visitor, admin_visitor, member_visitor
from test_api_support import PASSWORD, ApiNode, api_node, sqlite_url

from node.services.accounts import THROTTLE_LIMIT
from node.web.pages.security import CSP

MAIN_PAGES = (
    "/", "/proposals", "/proposals/new", "/profile", "/admin/members", "/admin/invites",
    "/admin/policy", "/admin/audit", "/admin/peers", "/admin/coalitions",
)  # fmt: skip


async def test_page_headers_and_size(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        admin = await admin_visitor(node)
        for path in (*MAIN_PAGES, "/login"):
            page = await (Visitor(node) if path == "/login" else admin).get(path)
            assert page.status == 200, (path, page.text)
            assert page.headers["Content-Security-Policy"] == CSP
            assert "'unsafe-inline'" not in CSP
            assert "frame-ancestors 'none'" in CSP
            assert page.headers["X-Content-Type-Options"] == "nosniff"
            assert page.headers["Referrer-Policy"] == "no-referrer"
            assert page.headers["Cache-Control"] == "no-store"
            assert page.headers["Content-Type"] == "text/html; charset=utf-8"
            assert "<script" not in page.text
            assert "style=" not in page.text
            size = len(page.text.encode())
            print(f"page size {path}: {size} bytes")
            assert size < 20_000, path


async def test_static_files_are_cached(tmp_path: Path) -> None:
    async with api_node(tmp_path, sqlite_url(tmp_path)) as node:
        page = await Visitor(node).get("/login")
        link = page.text.split('rel="stylesheet" href="')[1].split('"')[0]
        assert link.startswith("/static/style.css?v=")
        async with node.client.get(link, headers={"Accept-Encoding": "gzip"}) as response:
            assert response.status == 200
            assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
            assert response.headers["Content-Type"].startswith("text/css")
            etag = response.headers["ETag"]
            assert "margin-inline" in await response.text()
        async with node.client.get(link, headers={"If-None-Match": etag}) as response:
            assert response.status == 304
        async with node.client.get("/static/missing.css") as response:
            assert response.status == 404


async def test_cookie_flags(tmp_path: Path) -> None:
    async with api_node(tmp_path, sqlite_url(tmp_path)) as node:
        visitor = Visitor(node)
        page = await visitor.get("/login")
        form = page.cookies["tadamun_form"]
        assert form["httponly"]
        assert form["samesite"] == "Lax"
        assert not form["secure"]
        page = await visitor.post("/login", {"pseudonym": "founder", "password": PASSWORD})
        session = page.cookies["tadamun_session"]
        assert session["httponly"]
        assert session["samesite"] == "Strict"
        assert page.cookies["tadamun_lang"].value == "ar"
    (tmp_path / "https").mkdir()
    https = tmp_path / "https"
    async with api_node(https, sqlite_url(https), "https://union.example") as node:
        visitor = Visitor(node)
        page = await visitor.get("/login")
        assert page.cookies["tadamun_form"]["secure"]
        page = await visitor.post("/login", {"pseudonym": "founder", "password": PASSWORD})
        assert page.cookies["tadamun_session"]["secure"]


async def _policy_rows(node: ApiNode) -> object:
    return (await node.snapshot())["governance_policy"]


async def test_csrf(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        admin = await admin_visitor(node)
        other = await member_visitor(node, "admin")
        change = {
            "approval_required": "yes", "call_issuers": "admins", "endorsement_by": "vote",
            "method": "majority", "quorum_num": "1", "quorum_den": "2", "hours": "24",
        }  # fmt: skip
        before = await node.snapshot()
        refused = [
            await admin.post("/admin/policy", change, csrf=""),  # missing
            await admin.post("/admin/policy", change, csrf="x" * 43),  # wrong
            await admin.post("/admin/policy", change, csrf=other.token),  # another session's
            await admin.post("/admin/policy", change, headers={"Sec-Fetch-Site": "cross-site"}),
        ]
        for page in refused:
            assert page.status == 403, page.text
            assert "This form has expired or came from another site" in (page.alert or "")
        assert await node.snapshot() == before
        ok = await admin.post("/admin/policy", change)
        assert ok.status == 303, ok.text

        # A visitor's token is bound to their form cookie: replayed with another, refused.
        first, second = Visitor(node), Visitor(node)
        await first.get("/login")
        await second.get("/login")
        login = {"pseudonym": "founder", "password": PASSWORD}
        page = await second.post("/login", login, csrf=first.token)
        assert page.status == 403
        second.cookies.pop("tadamun_form")
        page = await second.post("/login", login)
        assert page.status == 403


async def test_forms_our_pages_never_send(tmp_path: Path) -> None:
    async with api_node(tmp_path, sqlite_url(tmp_path)) as node:
        admin = await admin_visitor(node)
        before = await node.snapshot()
        token = admin.token
        cases = [
            ("application/json", b'{"uses": "1"}', 415),
            ("application/x-www-form-urlencoded", f"csrf={token}&x=".encode() + b"a" * 70_000, 413),
            ("application/x-www-form-urlencoded",
             f"csrf={token}&role=member&role=admin&uses=1&expires_hours=1".encode(), 400),
            ("application/x-www-form-urlencoded",
             f"csrf={token}&role=member&uses=1&expires_hours=1&admin=yes".encode(), 400),
            ("application/x-www-form-urlencoded", b"csrf=" + token.encode() + b"&role=\xff", 400),
        ]  # fmt: skip
        for content_type, body, status in cases:
            page = await admin.request(
                "POST", "/admin/invites", body, {"Content-Type": content_type}
            )
            assert page.status == status, (body[:60], page.status)
            assert page.alert, page.text
        for path in ("/proposals?page=abc", "/proposals?show=secret", "/admin/audit?before=-1",
                     "/admin/members?status=king", "/admin/members?unknown=1",
                     "/proposals?page=1&page=2"):  # fmt: skip
            page = await admin.get(path)
            assert page.status == 400, path
        page = await admin.get("/no/such/page")
        assert page.status == 404
        assert page.alert == "There is nothing here."
        async with node.client.get("/api/v1/no/such") as response:  # the API stays JSON
            assert response.status == 404
            assert response.content_type == "application/json"
        for path in ("/proposals/zz", "/proposals/" + "0" * 32, "/admin/members/0/approve"):
            page = await admin.get(path) if "approve" not in path else await admin.post(path)
            assert page.status in (404, 405), path
        assert await node.snapshot() == before


async def test_login_throttled_and_redirects_stay_here(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        visitor = Visitor(node)
        await visitor.get("/login")
        for _ in range(THROTTLE_LIMIT):
            page = await visitor.post("/login", {"pseudonym": "founder", "password": "wrong"})
            assert page.status == 401
            assert page.alert == "Wrong pseudonym or password."
            assert page.value_of("pseudonym") == "founder"
        page = await visitor.post("/login", {"pseudonym": "founder", "password": PASSWORD})
        assert page.status == 429
        assert page.alert == "Too many login attempts. Try again in 15 minutes."
        node.clock.advance(16 * 60)
        targets = (
            ("//evil.example/x", "/"), ("https://evil.example", "/"), ("/\\evil.example", "/"),
            ("/proposals?show=all", "/proposals?show=all"),
        )  # fmt: skip
        for target, expected in targets:
            fresh = Visitor(node)
            await fresh.get("/login?" + urlencode({"next": target}))
            page = await fresh.post(
                "/login", {"pseudonym": "founder", "password": PASSWORD, "next": target}
            )
            assert page.status == 303, target
            assert page.location == expected, target


async def test_who_sees_which_page(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        anonymous = Visitor(node)
        for path in MAIN_PAGES:
            page = await anonymous.get(path)
            assert page.status == 303, path
            assert page.location.startswith("/login?next="), path
        member = await member_visitor(node)
        organiser = await member_visitor(node, "organiser")
        for path in MAIN_PAGES:
            page = await member.get(path)
            assert page.status == (403 if path.startswith(("/admin", "/proposals/new")) else 200)
            if page.status == 403:
                assert page.alert == "You do not have the role this page needs."
                assert 'href="/admin/members"' not in page.text  # no admin menu
        assert (await organiser.get("/proposals/new")).status == 200
        assert (await organiser.get("/admin/members")).status == 403

        # A suspended member's session no longer counts.
        assert member.pseudonym
        row = await node.call("GET", "/members?status=active&limit=100", node.admin)
        member_id = next(m["id"] for m in row.body["items"] if m["pseudonym"] == member.pseudonym)
        await node.call("POST", f"/members/{member_id}/suspend", node.admin)
        page = await member.get("/")
        assert page.status == 303
        assert page.location.startswith("/login")


@pytest.mark.parametrize("title", ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>'])
async def test_everything_is_escaped(tmp_path: Path, title: str) -> None:
    async with api_node(tmp_path, sqlite_url(tmp_path)) as node:
        admin = await admin_visitor(node)
        fields = {"title": title, "body": title, "options": f"{title}\nNo", "method": "majority",
                  "quorum": "25", "ballot": "open", "opens": "", "hours": "24"}  # fmt: skip
        page = await admin.post("/proposals/new", fields)
        assert page.status == 303, page.text
        page = await admin.get(page.location)
        assert title not in page.text
        assert "&lt;" in page.text or "&#34;&gt;" in page.text
        dashboard = await admin.get("/")
        assert title not in dashboard.text
