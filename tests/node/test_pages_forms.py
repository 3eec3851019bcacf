"""Every form of the web pages refuses bad input, on SQLite and PostgreSQL: the page comes
back with a 4xx, a visible message (next to the field when it is about one), the input kept
(never a password), and nothing changed in the database."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pages_support import Page, Visitor, admin_visitor, member_visitor
from test_api_support import PASSWORD, ApiNode, api_node

GOOD_JOIN = {
    "pseudonym": "Kawa-Teacher", "password": PASSWORD, "password_again": PASSWORD,
    "language": "en", "real_name": "", "phone": "", "email": "",
}  # fmt: skip
GOOD_PROPOSAL = {
    "title": "Join the strike?", "body": "", "options": "Yes\nNo", "method": "majority",
    "fraction": "2/3", "quorum": "25", "ballot": "secret", "opens": "", "hours": "24",
}  # fmt: skip


def refused(page: Page, status: int, field: str | None = None, message: str | None = None) -> None:
    assert page.status == status, (page.status, page.alert, page.field_errors)
    assert page.alert, page.text
    if field is not None:
        assert field in page.field_errors, (field, page.field_errors, page.alert)
    if message is not None:
        assert message in (page.field_errors.get(field or "") or page.alert or ""), (
            message, page.alert, page.field_errors,
        )  # fmt: skip
    assert PASSWORD not in page.text


async def unchanged(node: ApiNode, before: dict[str, Any]) -> None:
    after = await node.snapshot()
    assert after == before


async def test_join_refuses_bad_input(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        token = await node.invite(uses=5)
        taken, _ = await node.register()
        visitor = Visitor(node)
        path = f"/join/{token}"
        await visitor.get(path)
        before = await node.snapshot()
        cases = [
            (
                {"password": "short", "password_again": "short"},
                400,
                "password",
                "Enter 10 to 1,024 characters.",
            ),
            ({"password_again": "not the same one"}, 400, "password_again", "not the same"),
            ({"pseudonym": "ab"}, 400, "pseudonym", "3 to 64 letters"),
            ({"pseudonym": "a/b/c"}, 400, "pseudonym", "3 to 64 letters"),
            ({"pseudonym": "right\u202eleft"}, 400, "pseudonym", "3 to 64 letters"),
            ({"pseudonym": taken}, 409, "pseudonym", "This pseudonym is taken"),
            ({"email": "not-an-address"}, 400, "email", "An e-mail address"),
            ({"phone": "call me"}, 400, "phone", "A phone number"),
            ({"language": "fr"}, 400, "language", "Choose one of the options"),
            ({"real_name": "x" * 201}, 400, "real_name", "Enter 1 to 200 characters"),
        ]
        for change, status, field, message in cases:
            page = await visitor.post(path, GOOD_JOIN | change)
            refused(page, status, field, message)
            if field != "pseudonym":
                assert page.value_of("pseudonym") == GOOD_JOIN["pseudonym"]
        for bad, status, message in (
            ("unknown-token", 400, "not valid"),
            ("a" * 129, 400, "not valid"),
        ):
            page = await visitor.post(f"/join/{bad}", GOOD_JOIN)
            refused(page, status, None, message)
        await unchanged(node, before)

        expiring = await node.invite(hours=1)
        node.clock.advance(2 * 3600)
        page = await visitor.post(f"/join/{expiring}", GOOD_JOIN)
        refused(page, 410, None, "This invite link has expired")


async def test_login_and_language_refuse_bad_input(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        visitor = Visitor(node)
        await visitor.get("/login")
        before = await node.snapshot()
        page = await visitor.post("/login", {"pseudonym": "", "password": ""})
        refused(page, 400, "pseudonym", "This field is required.")
        assert "password" in page.field_errors
        page = await visitor.post("/login", {"pseudonym": "nobody", "password": "x"})
        refused(page, 401, None, "Wrong pseudonym or password.")
        assert page.value_of("pseudonym") == "nobody"
        page = await visitor.post("/language", {"language": "xx", "next": "/login"})
        refused(page, 400)
        assert (await node.snapshot())["members"] == before["members"]


async def test_profile_forms_refuse_bad_input(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        member = await member_visitor(node)
        admin = await admin_visitor(node)
        await member.get("/profile")
        before = await node.snapshot()
        details = {"real_name": "Shilan", "language": "en", "phone": "", "email": ""}
        page = await member.post("/profile", details | {"phone": "++12"})
        refused(page, 400, "phone", "A phone number")
        assert page.value_of("real_name") == "Shilan"
        page = await member.post("/profile", details | {"language": "de"})
        refused(page, 400, "language")
        change = {"current_password": "wrong password", "password": "a new password 1",
                  "password_again": "a new password 1"}  # fmt: skip
        page = await member.post("/profile/password", change)
        refused(page, 403, "current_password", "The current password is not right.")
        page = await member.post("/profile/password", change | {"password_again": "other"})
        refused(page, 400, "password_again")
        page = await member.post("/profile/password", change | {"password": "short"})
        refused(page, 400, "password")
        page = await member.post("/profile/leave", {})
        refused(page, 400, "confirm", "Tick the box")
        snapshot = await node.snapshot()
        for table in ("members", "sessions", "api_tokens", "invites"):
            assert snapshot[table] == before[table], table

        # The last admin cannot leave.
        page = await admin.post("/profile/leave", {"confirm": "yes"})
        refused(page, 409, None, "This would leave the node without an active admin.")


async def _proposal(node: ApiNode, admin: Visitor, **change: str) -> str:
    page = await admin.post("/proposals/new", GOOD_PROPOSAL | change)
    assert page.status == 303, (page.alert, page.field_errors)
    found = re.match(r"/proposals/([0-9a-f]{32})", page.location)
    assert found
    return f"/proposals/{found.group(1)}"


async def test_proposal_forms_refuse_bad_input(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        admin = await admin_visitor(node)
        member = await member_visitor(node)
        await admin.get("/proposals/new")
        consent = await _proposal(node, admin, method="consent")
        before = await node.snapshot()
        cases = [
            ({"title": ""}, 400, "title", "This field is required."),
            ({"title": "x" * 600}, 400, "title", None),
            ({"options": "Only one"}, 400, "options", "Give 2 to 64 different options"),
            ({"options": "Same\nSame"}, 400, "options", "different options"),
            ({"method": "dictator"}, 400, "method", None),
            ({"method": "supermajority", "fraction": "1/2"}, 400, "fraction", None),
            ({"quorum": "101"}, 400, "quorum", "Enter a whole number from 0 to 100."),
            ({"quorum": "lots"}, 400, "quorum", None),
            ({"ballot": "public"}, 400, "ballot", None),
            ({"opens": "tomorrow"}, 400, "opens", "Enter a date and time"),
            ({"opens": "2999-01-01T00:00"}, 400, "hours", "Voting opens now or within a year"),
            ({"hours": "0"}, 400, "hours", None),
            ({"body": "x" * 20_000}, 400, "body", None),
        ]
        for change, status, field, message in cases:
            page = await admin.post("/proposals/new", GOOD_PROPOSAL | change)
            refused(page, status, field, message)
            if field != "title":
                assert page.value_of("title") == GOOD_PROPOSAL["title"]
        page = await member.post("/proposals/new", GOOD_PROPOSAL)
        assert page.status == 403
        await unchanged(node, before)

        await member.get(consent)
        for choice, status in (("", 400), ("7", 400), ("-1", 400), ("veto", 400)):
            page = await member.post(f"{consent}/vote", {"choice": choice})
            refused(page, status, "choice", "Choose one of the options.")
        page = await member.post(f"/proposals/{'ab' * 16}/vote", {"choice": "0"})
        assert page.status == 404
        await unchanged(node, before)
        node.clock.advance(25 * 3600)
        page = await member.post(f"{consent}/vote", {"choice": "0"})
        refused(page, 409, None, "Voting has closed.")


async def test_admin_forms_refuse_bad_input(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        admin = await admin_visitor(node)
        _, member_id = await node.register()
        page = await admin.get("/admin/members")
        founder = int(re.findall(r'id="member-(\d+)"', page.text)[0])
        before = await node.snapshot()
        page = await admin.post(f"/admin/members/{member_id}/approve", {"back": ""})
        refused(page, 409, None, "This member's status does not allow that.")
        page = await admin.post(f"/admin/members/{member_id}/role", {"role": "king", "back": ""})
        refused(page, 400)
        page = await admin.post(f"/admin/members/{founder}/role", {"role": "member", "back": ""})
        refused(page, 409, None, "This would leave the node without an active admin.")
        page = await admin.post(f"/admin/members/{founder}/suspend", {"back": ""})
        refused(page, 409, None, "without an active admin")
        page = await admin.post("/admin/members/999999/suspend", {"back": ""})
        assert page.status == 404
        page = await admin.post(f"/admin/members/{member_id}/promote", {"back": ""})
        assert page.status == 404

        await admin.get("/admin/invites")
        for change, field in (({"uses": "0"}, "uses"), ({"uses": "many"}, "uses"),
                              ({"expires_hours": "99999"}, "expires_hours"),
                              ({"role": "owner"}, "role")):  # fmt: skip
            page = await admin.post(
                "/admin/invites", {"role": "member", "uses": "1", "expires_hours": "24"} | change
            )
            refused(page, 400, field)
            assert "Copy it now" not in page.text
        page = await admin.post("/admin/invites/999999/withdraw", {})
        assert page.status == 404

        await admin.get("/admin/policy")
        policy = {
            "approval_required": "yes", "call_issuers": "organisers", "endorsement_by": "vote",
            "method": "majority", "fraction_num": "", "fraction_den": "", "quorum_num": "1",
            "quorum_den": "4", "hours": "72",
        }  # fmt: skip
        cases = [
            ({"method": "supermajority"}, "fraction_num", None),
            ({"method": "supermajority", "fraction_num": "1", "fraction_den": "2"}, "fraction_num",
             "above one half"),
            ({"fraction_num": "2", "fraction_den": "3"}, "fraction_num", "other methods take none"),
            ({"quorum_num": "5", "quorum_den": "4"}, "quorum_num", "more than the whole"),
            ({"hours": "0"}, "hours", None),
            ({"call_issuers": "everyone"}, "call_issuers", None),
        ]  # fmt: skip
        for change, field, message in cases:
            page = await admin.post("/admin/policy", policy | change)
            refused(page, 400, field, message)
            assert page.value_of("hours") == (change.get("hours") or "72")
        await unchanged(node, before)
