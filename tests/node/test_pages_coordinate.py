"""The coordinators' call pages over HTTP, on SQLite and PostgreSQL: issuing a call through
the form (and every refusal of it, visible next to its field, changing nothing), who may
issue as the governance policy says, posting news, amending, concluding and cancelling
(with its confirmation) from the call's page, and an admin deciding whether the
organisation joins another node's call; the page shows each organisation's decision and
how it was made."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pages_support import Visitor, admin_visitor, member_visitor
from test_api_calls import apply
from test_api_support import ApiNode, api_node, sqlite_url
from test_calls import remote_issue
from test_calls_support import DAY, remote

from protocol import CallEndorse, CallTally, DecisionSummary, Threshold

NEW = "/calls/new"


def local(moment: int) -> str:
    """A time as a datetime-local field sends it (UTC)."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M")


def call_form(node: ApiNode, **changes: str) -> dict[str, str]:
    now = node.clock.now()
    base = {
        "kind": "strike", "title_ar": "إضراب عام", "title_ckb": "", "title_en": "General strike",
        "text_ar": "نص الدعوة", "text_ckb": "دەقی بانگەواز", "text_en": "Stop work.",
        "starts": local(now + 10 * DAY), "ends": local(now + 11 * DAY), "region": "IQ-BA",
        "place": "Basra", "meeting_point": "Gate 4\r\nby the buses", "sectors": "oil, education",
        "audience": "allies", "pledges": "10", "orgs": "2", "deadline": local(now + 5 * DAY),
    }  # fmt: skip
    return base | changes


async def set_policy(node: ApiNode, **changes: str) -> None:
    policy = (await node.call("GET", "/policy", node.admin)).body
    policy = {k: v for k, v in policy.items() if k != "updated_at"} | changes
    assert (await node.call("PUT", "/policy", node.admin, policy)).status == 200


async def detail(node: ApiNode, number: int) -> dict[str, Any]:
    answer = await node.call("GET", f"/calls/{number}", node.admin)
    assert answer.status == 200, answer.body
    return dict(answer.body)


async def issued(visitor: Visitor, node: ApiNode, **changes: str) -> int:
    await visitor.get(NEW)
    page = await visitor.post(NEW, call_form(node, **changes))
    assert page.status == 303, (page.status, page.alert, page.field_errors)
    path, _, notice = page.location.partition("?")
    assert notice == "notice=call_issued"
    return int(path.rsplit("/", 1)[1])


async def test_an_organiser_issues_a_call_through_the_form(
    tmp_path: Path, database_url: str
) -> None:
    async with api_node(tmp_path, database_url) as node:
        organiser = await member_visitor(node, "organiser")
        calls = await organiser.get("/calls")
        assert 'href="/calls/new"' in calls.text
        assert 'href="/calls" aria-current="page"' in calls.text  # the menu names the page
        form = await organiser.get(NEW)
        assert form.status == 200
        assert 'name="title_ckb" type="text" lang="ckb" dir="rtl"' in form.text
        number = await issued(organiser, node)
        view = await detail(node, number)
        now = node.clock.now()
        assert view["title"] == {"ar": "إضراب عام", "en": "General strike"}
        assert view["text"] == {"ar": "نص الدعوة", "ckb": "دەقی بانگەواز", "en": "Stop work."}
        assert (view["starts"], view["ends"]) == (now + 10 * DAY, now + 11 * DAY)
        assert view["location"] == {"region": "IQ-BA", "place": "Basra"}
        assert view["meeting_point"] == "Gate 4\nby the buses"
        assert (view["sectors"], view["audience"]) == (["oil", "education"], "allies")
        assert view["threshold"] == {"pledges": 10, "orgs": 2, "deadline": now + 5 * DAY}
        page = await organiser.get(f"/calls/{number}?notice=call_issued")
        assert page.notice == "The call is issued and sent to its audience."
        assert "this organisation issued it" in page.text
        listed = await organiser.get("/calls")
        assert f'href="/calls/{number}"' in listed.text
        assert "General strike" in listed.text
        past = await organiser.get("/calls?show=past")
        assert f'href="/calls/{number}"' not in past.text
        assert "There are no past calls yet." in past.text
        plain = await issued(organiser, node, pledges="", orgs="", deadline="", starts="",
                             ends="", region="", place="", sectors="", meeting_point="",
                             title_ar="", text_ar="", text_ckb="", kind="petition",
                             audience="public")  # fmt: skip
        view = await detail(node, plain)
        assert (view["threshold"], view["location"], view["starts"]) == (None, None, None)
        assert (view["kind"], view["audience"], view["title"]) == (
            "petition", "public", {"en": "General strike"})  # fmt: skip


async def test_refused_new_calls_show_why_and_change_nothing(
    tmp_path: Path, database_url: str
) -> None:
    async with api_node(tmp_path, database_url) as node:
        organiser = await member_visitor(node, "organiser")
        await organiser.get(NEW)
        before = await node.snapshot()
        now = node.clock.now()
        no_text = {f"{p}_{c}": "" for p in ("title", "text") for c in ("ar", "ckb", "en")}
        cases: list[tuple[dict[str, str], dict[str, str]]] = [
            (no_text, {"title": "Write it in at least one language.",
                       "text": "Write it in at least one language."}),
            ({"starts": "tomorrow", "deadline": "2026-02-30T10:00"},
             {"starts": "Enter a date and time.", "deadline": "Enter a date and time."}),
            ({"ends": local(now + 9 * DAY)}, {"ends": "The end must not be before the start."}),
            ({"orgs": ""}, {"threshold": "Fill in all three parts of the threshold, or none."}),
            ({"deadline": local(now - DAY)}, {"deadline": "The deadline must be in the future."}),
            ({"pledges": "0", "orgs": "x"}, {"pledges": "Enter a whole number from 1 to "
                                             "1,000,000,000.", "orgs": "Enter a whole number "
                                             "from 1 to 256."}),
            ({"region": "Basra city"}, {"region": "This is not in the expected format."}),
            ({"region": ""}, {"region": "A place needs its region."}),
            ({"sectors": "oil; gas"}, {"sectors": "Up to 32 short words in Latin letters, "
                                       "such as oil or education, separated by commas."}),
            ({"title_ar": "ب" * 300}, {"title_ar": "This is too long: at most 512 bytes (a "
                                       "letter of Arabic script takes two)."}),
            ({"title_en": "a\x07b"}, {"title_en": "Use ordinary text, without control "
                                      "characters."}),
            ({"kind": "riot", "audience": "coalition:" + "ab" * 32},
             {"kind": "Choose one of the options.", "audience": "Choose one of the options."}),
        ]  # fmt: skip
        for changes, errors in cases:
            page = await organiser.post(NEW, call_form(node, **changes))
            assert page.status == 400, changes
            assert page.alert == "Please correct the marked fields.", changes
            assert page.field_errors == errors, changes
            kept = next(iter(changes))
            if kept in ("starts", "ends", "orgs", "deadline", "pledges", "region", "sectors"):
                assert page.value_of(kept) == changes[kept]  # what was typed is kept
        page = await organiser.post(NEW, call_form(node, title_en="Kept <b>"))
        assert page.status == 303  # and what was typed is escaped when shown again:
        page = await organiser.post(NEW, call_form(node, title_en="Kept <b>", orgs=""))
        assert 'value="Kept &lt;b&gt;"' in page.text
        before = await node.snapshot()
        for fields, csrf, status in (
            (call_form(node), "", 403),  # no CSRF token
            (call_form(node), "y" * 43, 403),  # a forged one
            (call_form(node) | {"threshold": "1"}, None, 400),  # a field the form has not
            (call_form(node, text_en="x" * 400 * 1024), None, 413),  # beyond LARGE_FORM
        ):
            page = await organiser.post(NEW, fields, csrf=csrf)
            assert page.status == status, (page.status, page.alert)
        assert (await organiser.get(NEW + "?x=1")).status == 400
        assert await node.snapshot() == before


async def test_who_may_issue_follows_the_policy(tmp_path: Path) -> None:
    async with api_node(tmp_path, sqlite_url(tmp_path)) as node:
        visitor = Visitor(node)
        page = await visitor.get(NEW)
        assert (page.status, page.location) == (303, "/login?next=/calls/new")
        assert (await visitor.get("/calls")).status == 303
        member = await member_visitor(node)
        listed = await member.get("/calls")
        assert listed.status == 200
        assert 'href="/calls/new"' not in listed.text
        page = await member.get(NEW)
        assert page.status == 403
        assert "You do not have the role this page needs." in page.text
        assert (await member.post(NEW, call_form(node))).status == 403
        await set_policy(node, call_issuers="admins")
        organiser = await member_visitor(node, "organiser")
        assert 'href="/calls/new"' not in (await organiser.get("/calls")).text
        assert (await organiser.get(NEW)).status == 403
        before = await node.snapshot()
        assert (await organiser.post(NEW, call_form(node))).status == 403
        assert await node.snapshot() == before
        admin = await admin_visitor(node)
        assert 'href="/calls/new"' in (await admin.get("/calls")).text
        number = await issued(admin, node)
        page = await organiser.get(f"/calls/{number}")
        assert 'action="/calls/' + str(number) + '/update"' not in page.text  # not theirs
        assert (await organiser.get(f"/calls/{number}/amend")).status == 403
        page = await organiser.post(f"/calls/{number}/update", {"news_en": "Hello"})
        assert page.status == 403
        assert page.alert == "The governance policy gives this to others."
        assert (await member.get("/calls?show=all")).status == 400
        assert (await member.get("/calls?before=x")).status == 400


async def test_news_amendments_and_conclusion_from_the_call_page(
    tmp_path: Path, database_url: str
) -> None:
    async with api_node(tmp_path, database_url) as node:
        organiser = await member_visitor(node, "organiser", language="ar")
        number = await issued(organiser, node)
        one = f"/calls/{number}"
        member = await member_visitor(node)
        page = await member.get(one)
        assert "coordinate-title" not in page.text  # members see no coordinators' forms
        page = await organiser.get(one)
        assert f'action="{one}/update"' in page.text
        assert f'href="{one}/amend"' in page.text

        page = await organiser.post(one + "/update", {"news_ar": "", "news_en": ""})
        assert page.status == 400
        assert page.field_errors == {"news": "اكتبه بلغة واحدة على الأقل."}
        assert "<details open>" in page.text  # the refused form stays open
        page = await organiser.post(one + "/update", {"news_ar": "الحافلات عند الخامسة",
                                                      "news_en": "Buses at 5"})  # fmt: skip
        assert (page.status, page.location) == (303, one + "?notice=update_posted")
        view = await detail(node, number)
        assert [u["text"] for u in view["updates"]] == [
            {"ar": "الحافلات عند الخامسة", "en": "Buses at 5"}]  # fmt: skip
        page = await member.get(one)
        assert "Buses at 5" in page.text  # in the member's language
        assert "News from the organisers" in page.text

        form = await organiser.get(one + "/amend")
        assert form.value_of("title_en") == "General strike"
        assert form.value_of("starts") == local(node.clock.now() + 10 * DAY)
        assert form.value_of("sectors") == "oil, education"
        assert "Gate 4\nby the buses</textarea>" in form.text
        current = {name: form.value_of(name) or "" for name in (
            "title_ar", "title_ckb", "title_en", "starts", "ends", "region", "place", "sectors",
        )} | {"text_ar": "نص الدعوة", "text_ckb": "دەقی بانگەواز", "text_en": "Stop work.",
              "meeting_point": "Gate 4\nby the buses"}  # fmt: skip
        before = await node.snapshot()
        page = await organiser.post(one + "/amend", current)
        assert (page.status, page.alert) == (400, "لم يتغيّر شيء.")
        page = await organiser.post(one + "/amend", current | {"starts": "", "region": ""})
        assert set(page.field_errors) == {"starts", "region"}
        assert await node.snapshot() == before
        changed = current | {"title_en": "General strike, day two", "meeting_point": "Gate 5",
                             "ends": local(node.clock.now() + 12 * DAY)}  # fmt: skip
        page = await organiser.post(one + "/amend", changed)
        assert (page.status, page.location) == (303, one + "?notice=call_amended")
        view = await detail(node, number)
        assert view["title"] == {"ar": "إضراب عام", "en": "General strike, day two"}
        assert (view["meeting_point"], view["ends"]) == ("Gate 5", node.clock.now() + 12 * DAY)
        assert (await member.get(one + "/amend")).status == 403

        page = await organiser.post(one + "/conclude", {"outcome": "won"})
        assert page.field_errors == {"outcome": "اختر أحد الخيارات."}
        page = await organiser.post(
            one + "/conclude", {"outcome": "held", "closing_en": "Thank you all"}
        )
        assert (page.status, page.location) == (303, one + "?notice=call_concluded")
        page = await member.get(one)
        assert "it took place" in page.text
        assert "Thank you all" in page.text
        assert "coordinate-title" not in (await organiser.get(one)).text
        page = await organiser.get(one + "/amend")
        assert (page.status, "لم تعد هذه الدعوة مفتوحة." in page.text) == (409, True)
        page = await organiser.post(one + "/cancel", {"confirm": "yes"})
        assert (page.status, page.alert) == (409, "لم تعد هذه الدعوة مفتوحة.")
        assert f'href="{one}"' in (await member.get("/calls?show=past")).text


async def test_cancelling_needs_the_box_ticked(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        admin = await admin_visitor(node, "ckb")
        number = await issued(admin, node)
        one = f"/calls/{number}"
        await admin.get(one)
        before = await node.snapshot()
        page = await admin.post(one + "/cancel", {"reason_en": "The police closed the road"})
        assert page.status == 400
        assert page.field_errors == {
            "confirm": ("بۆ دڵنیاکردنەوە لە هەڵوەشاندنەوەی بانگەوازەکە، نیشانە لە چوارگۆشەکە بدە.")
        }
        assert await node.snapshot() == before
        page = await admin.post(one + "/cancel", {"reason_en": "The police closed the road",
                                                  "confirm": "yes"})  # fmt: skip
        assert (page.status, page.location) == (303, one + "?notice=call_cancelled")
        assert (await detail(node, number))["state"] == "cancelled"
        member = await member_visitor(node)
        page = await member.get(one)
        assert "Why it was cancelled" in page.text
        assert "The police closed the road" in page.text
        assert "Pledges for this call are closed." in page.text
        page = await admin.post(one + "/update", {"news_en": "We will call again"})
        assert page.status == 303  # news may still explain a cancelled call


async def test_an_admin_decides_whether_the_organisation_joins(
    tmp_path: Path, database_url: str
) -> None:
    async with api_node(tmp_path, database_url) as node:
        await set_policy(node, endorsement_by="admins")
        deadline = node.clock.now() + DAY
        await apply(node, remote().envelope(remote_issue(threshold=Threshold(10, 2, deadline)), 0))
        theirs = (await node.call("GET", "/calls?own=false", node.admin)).body["items"][0]["id"]
        one = f"/calls/{theirs}"
        organiser = await member_visitor(node, "organiser")
        page = await organiser.get(one)
        assert f'action="{one}/decide"' not in page.text
        assert "Not decided yet." in page.text
        before = await node.snapshot()
        page = await organiser.post(one + "/decide", {"join": "yes"})
        assert (page.status, page.alert) == (403, "The governance policy gives this to others.")
        assert await node.snapshot() == before
        admin = await admin_visitor(node)
        page = await admin.get(one)
        assert f'action="{one}/decide"' in page.text
        before = await node.snapshot()
        page = await admin.post(one + "/decide", {"join": "maybe"})
        assert (page.status, page.field_errors) == (400, {"join": "Choose one of the options."})
        assert await node.snapshot() == before
        page = await admin.post(one + "/decide", {"join": "yes", "note_ar": "نحن معكم"})
        assert (page.status, page.location) == (303, one + "?notice=call_joined")
        page = await admin.get(page.location)
        assert page.notice == "The organisation joins the call."
        assert "Our organisation has decided: joined." in page.text
        assert "decided by admins" in page.text
        assert "نحن معكم" in page.text
        page = await admin.post(one + "/decide", {"join": "no"})
        assert (page.status, page.alert) == (409, "The organisation has already decided on "
                                                  "this call.")  # fmt: skip
        member = await member_visitor(node)
        page = await member.get(one)
        assert 'name="kind" value="firm"' in page.text  # joined: members may pledge now

        ours = await issued(admin, node)
        page = await admin.post(f"/calls/{ours}/decide", {"join": "yes"})
        assert (
            page.alert == "This organisation issued the call; it does not decide whether "
            "to join it."
        )
        await set_policy(node, endorsement_by="vote")
        await apply(node, remote().envelope(remote_issue(threshold=Threshold(10, 2, deadline)), 0))
        voted = (await node.call("GET", "/calls?own=false", node.admin)).body["items"][0]
        page = await admin.get(f"/calls/{voted['id']}")
        assert "The members are deciding by vote." in page.text
        assert 'href="/proposals/' in page.text
        page = await admin.post(f"/calls/{voted['id']}/decide", {"join": "yes"})
        assert page.alert == "The members decide by vote whether to join this call."


async def test_the_page_shows_how_each_organisation_decided(tmp_path: Path) -> None:
    async with api_node(tmp_path, sqlite_url(tmp_path)) as node:
        admin = await admin_visitor(node)
        number = await issued(admin, node)
        call = bytes.fromhex((await detail(node, number))["call"])
        other = remote()
        summary = DecisionSummary(by="vote", method="consent", electorate=40, turnout=31,
                                  yes=25, no=3, abstain=2, blocks=1)  # fmt: skip
        await apply(node, other.envelope(CallEndorse(call=call, decision=summary), 0))
        tally = CallTally(call=call, seq=1, firm=15, conditional=10, bucket=5, k=10)
        await apply(node, other.envelope(tally, node.clock.now()))
        page = await admin.get(f"/calls/{number}")
        assert "by a vote: 25 yes, 3 no, 2 abstain; 31 of 40 took part" in page.text
        assert "Rule: consent (any block stops it)" in page.text
        assert "Blocks: 1" in page.text
        row = page.text.split("<tbody>")[1].split("</tbody>")[0]
        assert "<td>15</td><td>10</td>" in row
        assert "20 of 10 pledges" not in page.text  # progress counts the latest tallies
        assert len(page.text.encode()) < 100_000


async def test_forged_anonymous_and_unknown_posts_change_nothing(tmp_path: Path) -> None:
    async with api_node(tmp_path, sqlite_url(tmp_path)) as node:
        await set_policy(node, endorsement_by="admins")
        admin = await admin_visitor(node)
        ours = await issued(admin, node)
        await apply(node, remote().envelope(remote_issue(), 0))
        theirs = (await node.call("GET", "/calls?own=false", node.admin)).body["items"][0]["id"]
        forms = {
            f"/calls/{ours}/update": {"news_en": "News"},
            f"/calls/{ours}/cancel": {"confirm": "yes"},
            f"/calls/{ours}/conclude": {"outcome": "held"},
            f"/calls/{ours}/amend": {"title_en": "Changed", "text_en": "Changed"},
            f"/calls/{theirs}/decide": {"join": "yes"},
            NEW: call_form(node),
        }
        await admin.get(f"/calls/{ours}")
        before = await node.snapshot()
        anonymous = Visitor(node)
        await anonymous.get("/login")
        for path, fields in forms.items():
            for csrf in ("", "z" * 43):
                page = await admin.post(path, fields, csrf=csrf)
                assert (page.status, "Reload the page" in page.text) == (403, True), path
            page = await admin.post(path, fields | {"extra": "1"})
            assert page.status == 400, path
            page = await anonymous.post(path, fields)
            assert page.status in (303, 403), path  # to the login page, or no valid token
            if page.status == 303:
                assert page.location.startswith("/login?next="), path
        for path in ("/calls/999/update", "/calls/abc/cancel", "/calls/0/decide",
                     "/calls/999/amend"):  # fmt: skip
            page = await admin.post(path, {"confirm": "yes"} if "cancel" in path else {})
            assert page.status == 404, path
        assert (await admin.get("/calls/999/amend")).status == 404
        assert (await admin.get(f"/calls/{theirs}/amend")).status == 409  # not ours
        assert await node.snapshot() == before


async def test_long_texts_in_arabic_fit_the_form(tmp_path: Path, database_url: str) -> None:
    """Two long Arabic texts (urlencoding makes each letter 6 bytes) go through the new-call
    form, which takes more than the usual 64 KiB (a body beyond its limit is refused: above)."""
    async with api_node(tmp_path, database_url) as node:
        organiser = await member_visitor(node, "organiser")
        long_text = "ع" * 6_000
        number = await issued(organiser, node, text_ar=long_text, text_ckb=long_text)
        assert (await detail(node, number))["text"]["ar"] == long_text
