"""Admin actions, the audit log, the governance policy, and a member's export, leaving and
deletion, through the real JSON API on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from test_api_support import PASSWORD, ApiNode, api_node

from node.services.profiles import EXCLUDED
from node.storage.models import ApiToken, AuditEntry, LoginSession, Member

POLICY = {
    "approval_required": True, "call_issuers": "admins", "endorsement_by": "vote",
    "vote": {"method": "supermajority", "fraction": {"num": 2, "den": 3},
             "quorum": {"num": 1, "den": 2}, "hours": 48},
}  # fmt: skip


async def audit_rows(node: ApiNode) -> list[tuple[str, str, dict[str, Any]]]:
    async with node.sessions() as session:
        rows = (await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
    return [(r.actor, r.action, json.loads(r.detail)) for r in rows]


async def test_approval_queue(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        assert (await node.call("PUT", "/policy", node.admin, POLICY)).status == 200
        pseudonym, member_id = await node.register()
        assert (await node.row(member_id)).status == "pending"
        answer = await node.login(pseudonym)
        assert (answer.status, answer.code) == (403, "account_not_active")
        listed = await node.call("GET", "/members?status=pending", node.admin)
        assert [m["id"] for m in listed.body["items"]] == [member_id]
        answer = await node.call("POST", f"/members/{member_id}/approve", node.admin)
        assert (answer.status, answer.body["status"]) == (200, "active")
        assert (await node.login(pseudonym)).status == 200
        before = await node.snapshot()
        for action in ("approve", "reinstate"):
            answer = await node.call("POST", f"/members/{member_id}/{action}", node.admin)
            assert (answer.status, answer.code) == (409, "invalid_transition"), action
        assert await node.snapshot() == before


async def test_admin_actions_are_audited(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        admin_id = node.admin.member_id
        _, member_id = await node.register()
        invite = await node.call("POST", "/invites", node.admin, {"uses": 2})
        steps = [
            ("POST", f"/members/{member_id}/suspend", None),
            ("POST", f"/members/{member_id}/reinstate", None),
            ("PUT", f"/members/{member_id}/role", {"role": "organiser"}),
            ("PUT", f"/members/{member_id}/role", {"role": "organiser"}),  # no change: no row
            ("DELETE", f"/invites/{invite.body['id']}", None),
            ("PUT", "/policy", POLICY),
        ]
        for method, path, body in steps:
            assert (await node.call(method, path, node.admin, body)).status in (200, 204)
        rows = await audit_rows(node)
        actor = f"member:{admin_id}"
        assert [(a, b) for a, b, _ in rows[-6:]] == [
            (actor, "invite.create"), (actor, "member.suspend"), (actor, "member.reinstate"),
            (actor, "member.role"), (actor, "invite.delete"), (actor, "policy.update"),
        ]  # fmt: skip
        assert rows[-5][2] == {"member": member_id, "before": "active", "after": "suspended"}
        assert rows[-3][2] == {"member": member_id, "before": "member", "after": "organiser"}
        everything = json.dumps(rows)
        assert invite.body["token"] not in everything
        assert PASSWORD not in everything

        # The API shows the same log, newest first, a page at a time.
        seen: list[dict[str, Any]] = []
        cursor = ""
        while True:
            page = await node.call("GET", f"/audit?limit=2{cursor}", node.admin)
            seen += page.body["items"]
            if page.body["next"] is None:
                break
            cursor = f"&cursor={page.body['next']}"
        assert [(e["actor"], e["action"], e["detail"]) for e in reversed(seen)] == rows
        assert [e["id"] for e in seen] == sorted((e["id"] for e in seen), reverse=True)


async def test_the_last_admin_cannot_go(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        me = node.admin.member_id
        before = await node.snapshot()
        for method, path, body in (
            ("POST", f"/members/{me}/suspend", None),
            ("PUT", f"/members/{me}/role", {"role": "organiser"}),
            ("POST", "/me/leave", None),
            ("DELETE", "/me", None),
        ):
            answer = await node.call(method, path, node.admin, body)
            assert (answer.status, answer.code) == (409, "last_admin"), path
        assert await node.snapshot() == before
        other = await node.member("admin", via="token")
        answer = await node.call("POST", f"/members/{me}/suspend", node.admin)
        assert (answer.status, answer.body["status"]) == (200, "suspended")  # may suspend self
        answer = await node.call("POST", f"/members/{me}/reinstate", other)
        assert answer.status == 200


async def test_two_admins_cannot_demote_each_other_at_once(
    tmp_path: Path, database_url: str
) -> None:
    async with api_node(tmp_path, database_url) as node:
        other = await node.member("admin", via="token")
        answers = await asyncio.gather(
            node.call("PUT", f"/members/{other.member_id}/role", node.admin, {"role": "member"}),
            node.call("PUT", f"/members/{node.admin.member_id}/role", other, {"role": "member"}),
        )
        assert sorted((a.status, a.code) for a in answers) == [(200, None), (409, "last_admin")]
        async with node.sessions() as session:
            admins = await session.scalar(
                select(func.count()).select_from(Member).where(Member.role == "admin")
            )
        assert admins == 1


async def test_members_list_filters_and_pages(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        ids = [(await node.register(role))[1] for role in ("member", "organiser", "member")]
        await node.call("POST", f"/members/{ids[2]}/suspend", node.admin)
        organisers = await node.call("GET", "/members?role=organiser", node.admin)
        assert [m["id"] for m in organisers.body["items"]] == [ids[1]]
        active_members = await node.call("GET", "/members?role=member&status=active", node.admin)
        assert [m["id"] for m in active_members.body["items"]] == [ids[0]]
        first = await node.call("GET", "/members?limit=3", node.admin)
        rest = await node.call("GET", f"/members?limit=3&cursor={first.body['next']}", node.admin)
        everyone = [m["id"] for m in first.body["items"] + rest.body["items"]]
        assert everyone == [node.admin.member_id, *ids]
        assert rest.body["next"] is None
        assert all("contact" not in m for m in first.body["items"])  # admins never see it


async def test_policy(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        member = await node.member(via="token")
        default = await node.call("GET", "/policy", member)
        assert default.body["updated_at"] is None
        saved = await node.call("PUT", "/policy", node.admin, POLICY)
        assert saved.body == POLICY | {"updated_at": node.clock.now()}
        assert (await node.call("GET", "/policy", member)).body == saved.body
        before = await node.snapshot()
        for vote, field in (
            ({"method": "supermajority", "fraction": None}, "vote.fraction"),
            ({"method": "supermajority", "fraction": {"num": 1, "den": 2}}, "vote.fraction"),
            ({"method": "majority", "fraction": {"num": 2, "den": 3}}, "vote.fraction"),
            ({"method": "supermajority", "fraction": {"num": 4, "den": 3}}, "vote.fraction"),
            ({"quorum": {"num": 3, "den": 2}}, "vote.quorum"),
        ):
            body = POLICY | {"vote": POLICY["vote"] | vote}  # type: ignore[operator]
            answer = await node.call("PUT", "/policy", node.admin, body)
            assert (answer.status, answer.code) == (400, "invalid_field"), vote
            assert repr(field) in answer.body["error"]["message"]
        assert await node.snapshot() == before


async def test_export_holds_everything_about_the_member(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        contact = {"phone": "+964 770 000 1111", "email": "kawa@example.org"}
        pseudonym, member_id = await node.register(real_name="Kawa", contact=contact)
        who = await node.by_cookie(pseudonym, member_id)
        token = await node.by_token(who)
        await node.call("PUT", f"/members/{member_id}/role", node.admin, {"role": "organiser"})
        await node.call("POST", f"/members/{member_id}/suspend", node.admin)
        await node.call("POST", f"/members/{member_id}/reinstate", node.admin)
        await node.login(pseudonym, "a wrong password")

        answer = await node.call("GET", "/me/export", token)
        assert answer.status == 200
        export = answer.body
        assert export["member"]["contact"] == contact
        assert export["member"]["real_name"] == "Kawa"
        assert [h["action"] for h in export["history"]] == [
            "member.register", "member.role", "member.suspend", "member.reinstate",
        ]  # fmt: skip
        assert export["history"][1]["detail"] == {
            "member": member_id, "before": "member", "after": "organiser",
        }  # fmt: skip
        assert [t["name"] for t in export["tokens"]] == ["test"]
        assert len(export["sessions"]) == 1
        assert export["login_throttle"] == {"failures": 1, "locked_until": 0}
        assert export["open_ballot_votes"] == []
        assert export["voted_in"] == []
        assert set(export["excluded"]) == set(EXCLUDED)
        text = json.dumps(export)
        assert "$argon2id" not in text
        assert str(token.token) not in text
        assert str(who.session) not in text


async def test_leave_and_delete(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        leaver = await node.member(via="token")
        pseudonym = (await node.row(leaver.member_id or 0)).pseudonym
        assert (await node.call("POST", "/me/leave", leaver)).status == 204
        row = await node.row(leaver.member_id or 0)
        assert row.status == "left"
        assert row.pseudonym == pseudonym
        assert await _credentials(node, row.id) == (0, 0)
        answer = await node.login(pseudonym)
        assert (answer.status, answer.code) == (403, "account_not_active")

        contact = {"email": "gone@example.org"}
        gone_name, gone_id = await node.register(real_name="Real", contact=contact)
        gone = await node.by_token(await node.by_cookie(gone_name, gone_id))
        answer = await node.call("DELETE", "/me", gone)
        assert answer.status == 204
        row = await node.row(gone_id)
        erased = (row.status, row.pseudonym, row.real_name, row.contact_sealed, row.password_hash)
        assert erased == ("deleted", f"~deleted-{gone_id}", None, None, "")
        assert await _credentials(node, gone_id) == (0, 0)
        assert ("member:" + str(gone_id), "member.delete", {"member": gone_id}) in (
            await audit_rows(node)
        )
        answer = await node.login(gone_name)
        assert (answer.status, answer.code) == (401, "invalid_credentials")
        again, _ = await node.register(pseudonym=gone_name)  # the name is free again
        assert again == gone_name
        answer = await node.login(f"~deleted-{gone_id}", "")
        assert (answer.status, answer.code) == (400, "invalid_field")  # empty password


async def _credentials(node: ApiNode, member_id: int) -> tuple[int, int]:
    async with node.sessions() as session:
        counts = []
        for model in (LoginSession, ApiToken):
            query = select(func.count()).select_from(model).where(model.member_id == member_id)
            counts.append(int(await session.scalar(query) or 0))
    return counts[0], counts[1]


async def test_no_network_data_is_stored(tmp_path: Path, database_url: str) -> None:
    # A public URL that is not 127.0.0.1: the node's own address is in its signed descriptor.
    async with api_node(tmp_path, database_url, public_url="https://union.example") as node:
        member = await node.member()
        await node.call("PATCH", "/me", member, {"language": "en"}, headers={
            "User-Agent": "Canary-Agent/1.0", "X-Forwarded-For": "203.0.113.77",
        })  # fmt: skip
        await node.login(
            "founder",
            "wrong",
        )
        text = json.dumps(await node.snapshot(), default=repr)
        for trace in ("127.0.0.1", "203.0.113.77", "Canary-Agent", "aiohttp", "Python/"):
            assert trace not in text
