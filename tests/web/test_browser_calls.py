"""Calls to action in a real browser: a member joins through an invite link, votes and
pledges to a call; a coordinator on node A issues a call through the pages and it appears
on node B's pages (two real nodes, allied as ``tadamun peer invite`` and ``peer join`` do),
B's admin decides to join on B's page and A's call page shows B's decision; then the
coordinator cancels it and B shows it cancelled. The call pages pass the accessibility
check in each language and the new-call form rejects bad input visibly."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from test_browser_flows import join
from test_browser_quality import no_validation, refused, serious
from web_support import ServedNode, log_in

from node.services import call_views
from node.services.calls import CallDraft, issue_call
from node.services.members import Actor
from node.storage import peers
from node.web.keys import POLICY, SESSIONS, SIGNER

MakeNode = Callable[[str], ServedNode]
DAY = 86_400
WITHIN = 15.0  # seconds for a call or a decision to travel between the two nodes


@pytest.fixture
def contexts(browser: Browser) -> Iterator[Callable[[ServedNode], BrowserContext]]:
    made: list[BrowserContext] = []

    def make(node: ServedNode) -> BrowserContext:
        context = browser.new_context(base_url=node.url, locale="en-GB")
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


def local(node: ServedNode, days: float) -> str:
    """A time ``days`` from the node's now, as a datetime-local field takes it (UTC)."""
    moment = datetime.fromtimestamp(node.clock.now() + days * DAY, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M")


def issue_here(node: ServedNode, title: str, days: int = 5) -> str:
    """A call issued by the node's operator (as ``tadamun call issue`` does); its page."""
    now = node.clock.now()
    draft = CallDraft(
        kind="strike", title={"en": title, "ar": "إضراب"}, text={"en": "Stop work."},
        starts=now + 2 * days * DAY, region="IQ-BA", threshold=(10, 2, now + days * DAY),
    )  # fmt: skip
    number = node.run(issue_call(node.app[SESSIONS], node.app[SIGNER], draft, by=None, now=now))
    return f"/calls/{number}"


def until(nodes: tuple[ServedNode, ServedNode], check: Callable[[], Awaitable[bool]],
          what: str) -> None:  # fmt: skip
    """Wait until ``check()`` holds (it runs on the first node's loop), bounded. A delivery
    that failed once waits for its backoff on the nodes' fake clocks: every half second
    without success both clocks move on a minute together, as time would (they stay equal,
    so neither node sees the other's envelopes from the future)."""
    first = nodes[0]
    deadline = time.monotonic() + WITHIN
    while not first.run(_holds_soon(check)):
        if time.monotonic() > deadline:
            health = {node.name: node.run(_delivery(node)) for node in nodes}
            raise AssertionError(f"not within {WITHIN}s: {what}; delivery: {health}")
        for node in nodes:
            node.advance(60)


async def _holds_soon(check: Callable[[], Awaitable[bool]]) -> bool:
    """Whether ``check()`` holds within half a second (polled every 20 ms)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(0.5):
            while not await check():  # noqa: ASYNC110 - another node's database
                await asyncio.sleep(0.02)
            return True
    return False


async def _delivery(node: ServedNode) -> list[tuple[str, str, int, str | None]]:
    async with node.app[SESSIONS]() as session:
        pending = await peers.pending_by_peer(session)
        return [(peer.name or "", peer.state, pending.get(peer.node_id, 0), peer.last_error)
                for peer in await peers.list_peers(session)]  # fmt: skip


def held(node: ServedNode, call: str, done: Callable[[dict[str, Any]], bool]) -> Callable[
    [], Awaitable[bool]
]:  # fmt: skip
    """A check that ``node`` holds the call ``call`` (its protocol id) and ``done(detail)``."""

    async def check() -> bool:
        page = await call_views.call_page(
            node.app[SESSIONS], state=None, call=bytes.fromhex(call), own=None, before=None,
            limit=1,
        )  # fmt: skip
        if not page.items:
            return False
        detail = await call_views.call_detail(
            node.app[SESSIONS], int(page.items[0]["id"]), 0, admin=False
        )
        return done(detail)

    return check


def test_a_member_joins_votes_and_pledges(node: ServedNode, page: Page) -> None:
    call = issue_here(node, "Strike at the refinery")
    proposal = node.proposal("Support the refinery strike?", ("Yes", "No"))
    join(page, node.invite_link(), "Shirin")
    page.wait_for_url("**/?notice=welcome")
    expect(page.locator("main")).to_contain_text("Strike at the refinery")

    page.click("text=Support the refinery strike?")
    page.wait_for_url(f"**{proposal}")
    page.check("label:has-text('Yes')")
    page.click("button:has-text('Vote')")
    expect(page.get_by_role("status")).to_contain_text("Your vote is saved")

    page.click("nav >> text=Calls to action")
    page.wait_for_url("**/calls")
    item = page.locator("li.call", has_text="Strike at the refinery")
    expect(item).to_contain_text("0 of 10 pledges, 0 of 2 organisations")
    item.locator("a").click()
    page.wait_for_url(f"**{call}")
    page.click("button:has-text('Pledge')")
    refused(page, "Choose one of the options.")
    page.check("#k-conditional")
    page.click("button:has-text('Pledge')")
    expect(page.get_by_role("status")).to_contain_text("Your pledge is saved.")
    expect(page.locator("main")).to_contain_text("You have pledged: conditional.")
    page.check("#k-firm")
    page.click("text=Change my pledge")
    expect(page.locator("main")).to_contain_text("You have pledged: firm.")
    expect(page.locator("section[aria-labelledby=coordinate-title]")).to_have_count(0)


def test_a_call_issued_on_one_node_is_joined_and_cancelled_on_another(
    make_node: MakeNode, contexts: Callable[[ServedNode], BrowserContext]
) -> None:
    a, b = make_node("Oil workers of Basra"), make_node("Teachers of Sulaymaniyah")
    a.peer_with(b)
    policy = {k: v for k, v in b.run(b.app[POLICY].get()).items() if k != "updated_at"}
    b.run(b.app[POLICY].put(Actor.cli(), policy | {"endorsement_by": "admins"}))
    on_a, on_b = contexts(a).new_page(), contexts(b).new_page()
    requests: list[str] = []
    for page in (on_a, on_b):
        page.on("request", lambda request: requests.append(request.url))

    # A's organiser issues the call through the form.
    log_in(on_a, a.member("organiser"))
    on_a.click("nav >> text=Calls to action")
    on_a.click("text=New call to action")
    on_a.select_option("#f-kind", "strike")
    on_a.fill("#f-title_ar", "إضراب عام في الحقول")
    on_a.fill("#f-title_ckb", "مانگرتنی گشتی لە کێڵگەکان")
    on_a.fill("#f-title_en", "General strike in the oil fields")
    on_a.fill("#f-text_en", "Stop work at every gate.\nBring water.")
    on_a.fill("#f-starts", local(a, 10))
    on_a.fill("#f-ends", local(a, 11))
    on_a.fill("#f-region", "IQ-BA")
    on_a.fill("#f-place", "Rumaila")
    on_a.fill("#f-meeting_point", "Gate 4, by the buses")
    on_a.fill("#f-sectors", "oil, education")
    on_a.fill("#f-pledges", "10")
    on_a.fill("#f-orgs", "2")
    on_a.fill("#f-deadline", local(a, 5))
    on_a.click("text=Issue the call")
    expect(on_a.get_by_role("status")).to_contain_text("The call is issued")
    expect(on_a.locator("h1")).to_have_text("General strike in the oil fields")
    expect(on_a.locator("main")).to_contain_text("Gate 4, by the buses")
    call = on_a.url.split("/calls/")[1].split("?")[0]
    call_id = a.run(call_views.call_detail(a.app[SESSIONS], int(call), 0, admin=False))["call"]

    # It reaches B, whose admin decides on B's page that B joins.
    until((b, a), held(b, call_id, lambda d: True), "the call reaches B")
    log_in(on_b, b.member("admin"))
    on_b.goto("/calls")
    item = on_b.locator("li.call", has_text="General strike in the oil fields")
    expect(item).to_contain_text("Oil workers of Basra")
    expect(item).to_contain_text("Our organisation: not decided yet")
    item.locator("a").click()
    expect(on_b.locator("main")).to_contain_text("Stop work at every gate.")
    expect(on_b.locator("main")).not_to_contain_text("Gate 4")  # the meeting point stays on A
    expect(on_b.locator("main")).to_contain_text("Your organisation has not joined this call")
    on_b.click("text=Join the call")
    expect(on_b.get_by_role("status")).to_contain_text("The organisation joins the call.")
    expect(on_b.locator("main")).to_contain_text("Our organisation has decided: joined.")
    expect(on_b.locator("#k-firm")).to_be_visible()  # B's members may pledge now

    # A's call page shows B's decision and how it was made.
    until((a, b), held(a, call_id, lambda d: bool(d["endorsements"])), "B's decision reaches A")
    on_a.reload()
    endorsement = on_a.locator("section[aria-labelledby=orgs-title] li", has_text="Teachers")
    expect(endorsement).to_contain_text("Teachers of Sulaymaniyah: joined")
    expect(endorsement).to_contain_text("decided by admins")

    # A's organiser cancels the call (the box must be ticked); B shows it cancelled.
    on_a.click("summary:has-text('Cancel the call')")
    on_a.fill("#f-reason_en", "The company gave in.")
    on_a.click("form[action$='/cancel'] button")
    refused(on_a, "Tick the box to confirm that you cancel the call.")
    on_a.check("#f-confirm")
    on_a.click("form[action$='/cancel'] button")
    expect(on_a.get_by_role("status")).to_contain_text("The call is cancelled.")
    until((b, a), held(b, call_id, lambda d: d["state"] == "cancelled"), "the cancel reaches B")
    on_b.reload()
    expect(on_b.locator(".tag.cancelled")).to_have_text("cancelled")
    expect(on_b.locator("main")).to_contain_text("The company gave in.")
    expect(on_b.locator("main")).to_contain_text("Pledges for this call are closed.")
    on_b.goto("/calls?show=past")
    expect(on_b.locator("main")).to_contain_text("General strike in the oil fields")
    outside = [url for url in requests if not url.startswith((a.url, b.url))]
    assert not outside, outside


@pytest.mark.parametrize("language", ["en", "ar", "ckb"])
def test_call_pages_pass_the_accessibility_check(
    node: ServedNode, browser: Browser, axe_source: str, language: str
) -> None:
    call = issue_here(node, f"Accessible call {language}")
    context = browser.new_context(base_url=node.url, bypass_csp=True)  # axe is a script
    try:
        page = context.new_page()
        log_in(page, node.member("admin", language))
        checked = {}
        for path in ("/calls", "/calls?show=past", "/calls/new", call, call + "/amend"):
            page.goto(path)
            checked[path] = serious(page, axe_source)
        page.goto(call)
        page.click("summary >> nth=0")  # an open form too
        checked["open form"] = serious(page, axe_source)
        problems = {path: found for path, found in checked.items() if found}
        assert not problems, problems
    finally:
        context.close()


def test_the_new_call_form_rejects_bad_input_visibly(node: ServedNode, page: Page) -> None:
    log_in(page, node.member("organiser"))
    page.goto("/calls/new")
    no_validation(page)
    page.click("text=Issue the call")
    refused(page, "Please correct the marked fields.")
    expect(page.locator("#e-title")).to_have_text("Write it in at least one language.")
    page.fill("#f-title_en", "Picket at dawn")
    page.fill("#f-text_en", "Bring banners.")
    page.fill("#f-starts", local(node, 3))
    page.fill("#f-ends", local(node, 2))
    page.fill("#f-place", "Erbil")
    page.fill("#f-pledges", "50")
    page.click("text=Issue the call")
    expect(page.locator("#e-ends")).to_have_text("The end must not be before the start.")
    expect(page.locator("#e-region")).to_have_text("A place needs its region.")
    expect(page.locator("#e-threshold")).to_contain_text("Fill in all three parts")
    expect(page.locator("#f-ends")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-title_en")).to_have_value("Picket at dawn")
    page.fill("#f-ends", "")
    page.fill("#f-region", "IQ-AR")
    page.fill("#f-pledges", "")
    page.click("text=Issue the call")
    expect(page.get_by_role("status")).to_contain_text("The call is issued")
    expect(page.locator("h1")).to_have_text("Picket at dawn")
