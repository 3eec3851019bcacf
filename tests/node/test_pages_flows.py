"""The web pages' main paths over HTTP, on SQLite and PostgreSQL: joining through the link
an invite prints, waiting for approval, approval and roles, voting and changing the vote,
the result, the export, logging out, leaving, and the language switcher."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pages_support import Visitor, admin_visitor, member_visitor
from test_api_support import PASSWORD, api_node, sqlite_url

from node.services.invites import invite_link

JOIN = {"password": PASSWORD, "password_again": PASSWORD, "real_name": "", "phone": "",
        "email": ""}  # fmt: skip


async def test_join_wait_for_approval_and_get_a_role(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        admin = await admin_visitor(node)
        policy = await admin.get("/admin/policy")
        assert policy.value_of("hours") == "72"
        page = await admin.post("/admin/policy", {
            "approval_required": "yes", "call_issuers": "organisers", "endorsement_by": "vote",
            "method": "majority", "fraction_num": "", "fraction_den": "", "quorum_num": "1",
            "quorum_den": "4", "hours": "72",
        })  # fmt: skip
        assert page.status == 303
        assert page.location == "/admin/policy?notice=saved"

        page = await admin.post("/admin/invites", {"role": "member", "uses": "1",
                                                   "expires_hours": "24"})  # fmt: skip
        assert page.status == 201
        link = page.value_of("invite-link") or re.findall(r'readonly value="([^"]+)"', page.text)[0]
        token = link.rsplit("/", 1)[1]
        assert link == invite_link(node.origin, token)  # the link the node prints, too
        assert "Copy it now" in page.text
        assert token not in (await admin.get("/admin/invites")).text  # shown once

        newcomer = Visitor(node, language="en")
        path = link.removeprefix(node.origin)
        assert (await newcomer.get(path)).status == 200
        page = await newcomer.post(path, JOIN | {"pseudonym": "کاوە", "language": "ckb"})
        assert page.status == 201
        assert '<html lang="ckb" dir="rtl">' in page.text
        assert "چاوەڕێی پەسەندکردن" in page.text  # status: waiting for approval
        page = await newcomer.post("/login", {"pseudonym": "کاوە", "password": PASSWORD})
        assert page.status == 403
        assert page.alert == "ئەم هەژمارە چاوەڕێی پەسەندکردنی بەڕێوەبەرێکە."

        dashboard = await admin.get("/")
        assert "کاوە" in dashboard.text
        assert "/admin/members?status=pending" in dashboard.text
        page = await admin.get("/admin/members?status=pending")
        member_id = re.findall(r'id="member-(\d+)"', page.text)[0]
        page = await admin.post(f"/admin/members/{member_id}/approve", {"back": "status=pending"})
        assert page.status == 303
        assert page.location == "/admin/members?status=pending&notice=approved"
        page = await admin.post(f"/admin/members/{member_id}/role", {"role": "organiser",
                                                                     "back": ""})  # fmt: skip
        assert page.status == 303
        assert page.location.endswith("notice=role_changed")

        await newcomer.login("کاوە")
        home = await newcomer.get("/")
        assert '<html lang="ckb" dir="rtl">' in home.text
        assert 'href="/proposals/new"' in home.text  # an organiser now
        audit = await admin.get("/admin/audit")
        for action in ("member approved", "role changed", "member joined", "invite made"):
            assert action in audit.text


async def test_vote_change_and_see_the_result(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        organiser = await member_visitor(node, "organiser")
        member = await member_visitor(node)
        await organiser.get("/proposals/new")
        page = await organiser.post("/proposals/new", {
            "title": "Strike on Monday?", "body": "Line one\nLine two", "options": "Yes\nNo",
            "method": "majority", "fraction": "2/3", "quorum": "50", "ballot": "open",
            "opens": "", "hours": "24",
        })  # fmt: skip
        assert page.status == 303
        proposal = page.location.split("?")[0]
        home = await member.get("/")
        assert "Strike on Monday?" in home.text
        assert "You have not voted yet" in home.text
        assert "Time left: 1 day" in home.text

        await member.get(proposal)
        page = await member.post(f"{proposal}/vote", {"choice": "0"})
        assert page.status == 303
        assert page.location == f"{proposal}?notice=vote_saved"
        page = await member.get(page.location)
        assert page.notice == "Your vote is saved. You can change it until voting closes."
        assert re.search(r'value="0" checked', page.text)
        assert "Change my vote" in page.text
        page = await member.post(f"{proposal}/vote", {"choice": "1"})
        page = await member.get(page.location)
        assert re.search(r'value="1" checked', page.text)
        assert not re.search(r'value="0" checked', page.text)
        assert "1 member has voted so far." in page.text
        assert "You have voted" in (await member.get("/")).text

        node.clock.advance(24 * 3600)
        page = await member.get(proposal)
        assert "The result is being counted" in page.text or "Result" in page.text
        from node.services.closing import close_due  # noqa: PLC0415
        from node.web.keys import SESSIONS, SIGNER  # noqa: PLC0415

        app = node.client.app
        assert app is not None
        await close_due(app[SESSIONS], app[SIGNER], node.clock.now())
        page = await member.get(proposal)
        assert '<p class="outcome no_quorum"><strong>no quorum</strong>' in page.text  # 1 of 3
        assert "<td>0</td>" in page.text
        assert "<td>1</td>" in page.text
        assert "1 of 3 members (33%)" in page.text
        assert "not met" in page.text
        listed = await member.get("/proposals?show=closed")
        assert "Strike on Monday?" in listed.text


async def test_profile_export_logout_and_leave(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        member = await member_visitor(node)
        await member.get("/profile")
        details = {"real_name": "Shilan", "language": "ar", "phone": "+964 750 000 0000"}
        page = await member.post("/profile", details | {"email": ""})
        assert page.status == 303
        page = await member.get("/profile")
        assert '<html lang="ar" dir="rtl">' in page.text
        assert page.value_of("phone") == "+964 750 000 0000"
        async with node.client.get(
            "/profile/export",
            headers={"Cookie": f"tadamun_session={member.cookies['tadamun_session']}"},
        ) as response:
            assert response.status == 200
            assert response.headers["Content-Disposition"].startswith("attachment")
            exported = json.loads(await response.text())
        assert exported["member"]["real_name"] == "Shilan"
        assert exported["member"]["contact"] == {"phone": "+964 750 000 0000"}

        page = await member.post("/profile/password", {
            "current_password": PASSWORD, "password": "a brand new password",
            "password_again": "a brand new password",
        })  # fmt: skip
        assert page.status == 303
        page = await member.post("/logout", {})
        assert page.status == 303
        assert page.location == "/login?notice=logged_out"
        assert (await member.get("/")).status == 303
        await member.login(member.pseudonym, "a brand new password")
        page = await member.post("/profile/leave", {"confirm": "yes"})
        assert page.status == 303
        assert page.location == "/login?notice=left"
        page = await member.get("/login?notice=left")
        assert page.notice
        assert "غادرت المنظمة" in page.notice
        refused = await member.post("/login", {"pseudonym": member.pseudonym,
                                               "password": "a brand new password"})  # fmt: skip
        assert refused.status == 403


async def test_language_switcher(tmp_path: Path) -> None:
    async with api_node(tmp_path, sqlite_url(tmp_path)) as node:
        visitor = Visitor(node, language="en")
        page = await visitor.get("/login")
        assert '<html lang="en" dir="ltr">' in page.text
        page = await visitor.post("/language", {"language": "ckb", "next": "/login?notice=x"})
        assert page.status == 303
        assert page.location == "/login?notice=x"
        page = await visitor.get("/login")
        assert '<html lang="ckb" dir="rtl">' in page.text
        assert "چوونەژوورەوە" in page.text
        page = await visitor.post("/language", {"language": "ar", "next": "https://evil.example"})
        assert page.location == "/"

        member = await member_visitor(node, language="en")
        page = await member.post("/language", {"language": "ckb", "next": "/profile"})
        assert page.status == 303
        answer = await node.call("POST", "/login", None, {"pseudonym": member.pseudonym,
                                                          "password": PASSWORD})  # fmt: skip
        assert answer.body["language"] == "ckb"  # remembered in the member's profile
        fresh = Visitor(node, language="en")
        await fresh.login(member.pseudonym)
        assert '<html lang="ckb" dir="rtl">' in (await fresh.get("/")).text


async def test_lists_are_paginated(tmp_path: Path) -> None:
    async with api_node(tmp_path, sqlite_url(tmp_path)) as node:
        admin = await admin_visitor(node)
        for _ in range(26):
            await node.invite()
        first = await admin.get("/admin/invites")
        assert first.text.count("Withdraw<") == 25
        next_link = re.findall(r'href="(/admin/invites\?after=\d+)" rel="next"', first.text)
        assert next_link
        second = await admin.get(next_link[0])
        assert second.text.count("Withdraw<") == 2  # the founder's invite from init, and one
        assert 'href="/admin/invites">First page' in second.text
        assert 'rel="next"' not in second.text
        audit = await admin.get("/admin/audit")
        older = re.findall(r'href="(/admin/audit\?before=\d+)" rel="next"', audit.text)
        assert older
        assert (await admin.get(older[0])).status == 200
