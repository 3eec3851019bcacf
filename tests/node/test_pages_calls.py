"""The call pages over HTTP, on SQLite and PostgreSQL: open calls on the dashboard with
their progress, a call in each language (with its text in another language when the
reader's is missing), pledging, changing and withdrawing through the form, the refusals a
member sees (not joined yet, after the deadline, bad or forged forms) changing nothing, and
the notifications page."""

from __future__ import annotations

from pathlib import Path

from pages_support import Visitor, member_visitor
from test_api_calls import DEADLINE_DAYS, apply, draft
from test_api_support import ApiNode, api_node, sqlite_url
from test_calls import remote_issue
from test_calls_support import DAY, remote

from node.storage.pledges import get_pledge
from protocol import Threshold, fingerprint

PROGRESS = '<progress max="10" value="0"'


async def issue(node: ApiNode, **changes: object) -> int:
    answer = await node.call("POST", "/calls", node.admin, draft(node, **changes))
    assert answer.status == 201, answer.body
    return int(answer.body["id"])


async def pledge_of(node: ApiNode, visitor: Visitor, number: int) -> str | None:
    async with node.sessions() as session:
        members = await node.call("GET", "/members?status=active", node.admin)
        ids = {m["pseudonym"]: m["id"] for m in members.body["items"]}
        row = await get_pledge(session, number, ids[visitor.pseudonym])
        return None if row is None else row.kind


async def test_calls_render_in_each_language(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        number = await issue(node)
        shown = {"en": "General strike", "ar": "إضراب عام", "ckb": "مانگرتنی گشتی"}
        kinds = {"en": "strike", "ar": "إضراب", "ckb": "مانگرتن"}
        for language, title in shown.items():
            visitor = await member_visitor(node, language=language)
            home = await visitor.get("/")
            assert home.status == 200
            assert f'href="/calls/{number}"' in home.text
            assert title in home.text
            assert PROGRESS in home.text
            page = await visitor.get(f"/calls/{number}")
            assert page.status == 200, page.text
            assert f'<html lang="{language}"' in page.text
            assert title in page.text
            assert kinds[language] in page.text
            assert "Gate 4" in page.text
            assert PROGRESS in page.text
            assert 'name="kind" value="conditional"' in page.text
        ar = await member_visitor(node, language="ar")
        page = await ar.get(f"/calls/{number}")
        assert "بقي 5 أيام للتعهد" in page.text  # the time left, in the reader's language
        only_english = await issue(node, title={"en": "Picket"}, text={"en": "At dawn"})
        page = await ar.get(f"/calls/{only_english}")
        assert '<bdi lang="en">Picket</bdi>' in page.text


async def test_pledge_change_and_withdraw_through_the_form(
    tmp_path: Path, database_url: str
) -> None:
    async with api_node(tmp_path, database_url) as node:
        number = await issue(node)
        one = f"/calls/{number}"
        member = await member_visitor(node)
        await member.get(one)
        page = await member.post(one + "/pledge", {"kind": "firm"})
        assert (page.status, page.location) == (303, one + "?notice=pledged")
        page = await member.get(page.location)
        assert page.notice == "Your pledge is saved."
        assert "You have pledged: firm." in page.text
        assert await pledge_of(node, member, number) == "firm"
        page = await member.post(one + "/pledge", {"kind": "conditional"})
        assert page.status == 303
        assert await pledge_of(node, member, number) == "conditional"
        await member.get(one)
        page = await member.post(one + "/withdraw")
        assert (page.status, page.location) == (303, one + "?notice=pledge_withdrawn")
        assert await pledge_of(node, member, number) is None
        page = await member.post(one + "/withdraw")
        assert page.status == 404
        assert page.alert == "You have not pledged to this call."


async def test_bad_pledge_forms_change_nothing(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        number = await issue(node)
        one = f"/calls/{number}"
        member = await member_visitor(node, language="ar")
        await member.get(one)
        before = await node.snapshot()
        page = await member.post(one + "/pledge", {"kind": "maybe"})
        assert page.status == 400
        assert page.field_errors["kind"] == "اختر أحد الخيارات."
        for fields, csrf, status in (
            ({"kind": "firm"}, "", 403),  # no CSRF token
            ({"kind": "firm"}, "x" * 43, 403),  # a forged one
            ({"kind": "firm", "extra": "1"}, None, 400),  # an unknown field
            ({"kind": "firm" * 5000}, None, 400),  # oversized, not one of the kinds
        ):
            page = await member.post(one + "/pledge", fields, csrf=csrf)
            assert page.status == status, (fields, page.status)
        for path in ("/calls/abc/pledge", "/calls/999/pledge", "/calls/0/pledge"):
            assert (await member.post(path, {"kind": "firm"})).status == 404
        page = await member.get("/calls/999")
        assert (page.status, "لا توجد دعوة تحرّك كهذه." in page.text) == (404, True)
        assert (await member.get(one + "?x=1")).status == 400
        assert await node.snapshot() == before


async def test_refusals_are_shown_translated(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        deadline = node.clock.now() + DAY
        await apply(node, remote().envelope(remote_issue(threshold=Threshold(10, 2, deadline)), 0))
        theirs = (await node.call("GET", "/calls?own=false", node.admin)).body["items"][0]["id"]
        member = await member_visitor(node, language="ckb")
        page = await member.get(f"/calls/{theirs}")
        assert "ڕێکخراوەکەت هێشتا بەشداری ئەم بانگەوازە نەکردووە" in page.text
        assert 'action="/calls/' not in page.text.split("pledge-title")[1].split("</section>")[0]
        before = await node.snapshot()
        page = await member.post(f"/calls/{theirs}/pledge", {"kind": "firm"})
        assert page.status == 409
        assert await node.snapshot() == before
        assert page.alert == (
            "ڕێکخراوەکەت هێشتا بەشداری ئەم بانگەوازە نەکردووە، بۆیە ناتوانیت بەڵێنی بۆ بدەیت."
        )
        ours = await issue(node)
        await member.get(f"/calls/{ours}")
        assert (await member.post(f"/calls/{ours}/pledge", {"kind": "firm"})).status == 303
        node.clock.advance(DEADLINE_DAYS * DAY)
        page = await member.get(f"/calls/{ours}")
        assert "بەڵێندان بۆ ئەم بانگەوازە داخراوە." in page.text  # no form after the deadline
        for path in ("/pledge", "/withdraw"):
            page = await member.post(f"/calls/{ours}{path}", {"kind": "firm"} if path == "/pledge"
                                     else None)  # fmt: skip
            assert page.status == 409
            assert page.alert == "بەڵێندان بۆ ئەم بانگەوازە داخراوە."
        assert await pledge_of(node, member, ours) == "firm"  # kept (the scheduler runs on)


async def test_notifications_list_and_mark_read(tmp_path: Path) -> None:
    async with api_node(tmp_path, sqlite_url(tmp_path)) as node:
        number = await issue(node)
        member = await member_visitor(node)
        other = await member_visitor(node)
        page = await member.get("/notifications")
        assert "You have no notifications." in page.text
        answer = await node.call("POST", f"/calls/{number}/cancel", node.admin, {"reason": None})
        assert answer.status == 200, answer.body
        page = await member.get("/notifications")
        assert "The call was cancelled." in page.text
        assert f'href="/calls/{number}"' in page.text
        note = page.text.split('action="/notifications/')[2].split("/read")[0]
        await other.get("/notifications")
        assert (await other.post(f"/notifications/{note}/read")).status == 404  # not theirs
        assert (await member.post("/notifications/abc/read")).status == 404
        page = await member.post(f"/notifications/{note}/read")
        assert (page.status, page.location) == (303, "/notifications")
        page = await member.get("/notifications")
        assert f'action="/notifications/{note}/read"' not in page.text
        assert 'class="read"' in page.text
        page = await other.post("/notifications/read")
        assert page.location == "/notifications?notice=all_read"
        page = await other.get(page.location)
        assert page.notice == "All your notifications are marked read."
        assert 'class="unread"' not in page.text
        assert (await member.get("/notifications?before=x")).status == 400


async def test_a_peers_call_in_the_far_future_does_not_break_the_pages(
    tmp_path: Path, database_url: str
) -> None:
    """The protocol allows times up to 2^53 - 1, beyond any calendar: a peer's call with
    such times still leaves the dashboard, the list and its page readable."""
    far = 2**53 - 1
    async with api_node(tmp_path, database_url) as node:
        far_call = remote_issue(starts=far, ends=far, threshold=Threshold(10, 2, far))
        await apply(node, remote().envelope(far_call, 0))
        visitor = await member_visitor(node, language="ar")
        for path in ("/", "/calls", "/calls/1"):
            page = await visitor.get(path)
            assert page.status == 200, (path, page.text[:300])


async def test_another_nodes_call_shows_its_fingerprint(tmp_path: Path, database_url: str) -> None:
    """A peer may call itself anything, even this node's name: its call shows who it is."""
    async with api_node(tmp_path, database_url) as node:
        own = await issue(node)
        issuer = remote()
        await apply(node, issuer.envelope(remote_issue(), 0))
        visitor = await member_visitor(node)
        theirs = await visitor.get(f"/calls/{own + 1}")
        assert fingerprint(issuer.node_id) in theirs.text
        mine = await visitor.get(f"/calls/{own}")
        assert 'class="fingerprint"' not in mine.text
