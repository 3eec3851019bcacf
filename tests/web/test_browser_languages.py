"""Languages in a real browser: Arabic and Sorani pages render right to left (computed
direction, mirrored layout), the switcher works without JavaScript, and every main page in
each language is screenshotted (under tests/web/artifacts/) and shows no English message."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from messages_support import leftovers
from playwright.sync_api import Browser, BrowserContext, Page, expect
from web_support import ARTIFACTS, ServedNode, log_in

from node.services.calls import CallDraft, issue_call
from node.services.members import Actor
from node.web.keys import COALITIONS, PEERING, SESSIONS, SIGNER
from node.web.pages.static import STATIC_DIR

LANGUAGES = ("en", "ar", "ckb")
COALITION_NAME = {"ar": "نقابات الجنوب", "ckb": "یەکێتییەکانی باشوور", "en": "Southern unions"}
TEXTS = """() => {
  const texts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const parent = walker.currentNode.parentElement;
    if (parent && parent.closest('bdi, code, [data-user]')) continue;
    if (walker.currentNode.textContent.trim()) texts.push(walker.currentNode.textContent);
  }
  for (const el of document.querySelectorAll('[aria-label], [title], [placeholder], [alt]')) {
    for (const name of ['aria-label', 'title', 'placeholder', 'alt']) {
      const value = el.getAttribute(name);
      if (value) texts.push(value);
    }
  }
  texts.push(document.title);
  return texts;
}"""


@pytest.fixture(scope="module")
def scene(
    node: ServedNode, admin_name: str, make_node: Callable[[str], ServedNode]
) -> dict[str, str]:
    """Something on every page: a closed proposal with a result, an open one, a member
    waiting for approval, invites and audit entries, an allied peer, and a coalition this
    node founded and invited the peer to."""
    closed = node.proposal("تصويت منتهٍ", ("بەڵێ", "نەخێر"), hours=1)
    node.advance(2 * 3600)
    opened = node.proposal("مقترح مفتوح", ("بەڵێ", "نەخێر"), ballot="open")
    now, day = node.clock.now(), 86_400
    draft = CallDraft(
        kind="strike", title={"ar": "إضراب عام", "ckb": "مانگرتنی گشتی", "en": "General strike"},
        text={"ar": "نص الدعوة", "en": "Stop work."}, starts=now + 10 * day, region="IQ-BA",
        place="البصرة", threshold=(10, 2, now + 5 * day),
    )  # fmt: skip
    number = node.run(issue_call(node.app[SESSIONS], node.app[SIGNER], draft, by=None, now=now))
    ally = make_node("Teachers' Union")
    ally.clock.advance(node.clock.now() - ally.clock.now())  # their clocks agree
    ally.peer_with(node)
    coalition = node.run(node.app[COALITIONS].found(Actor.cli(), COALITION_NAME, {"ar": "معًا"}))
    node.run(node.app[COALITIONS].invite(Actor.cli(), coalition["id"],
                                         ally.app[PEERING].node_id.hex()))  # fmt: skip
    return {"closed": closed, "open": opened, "invite": node.invite_link(),
            "call": f"/calls/{number}",
            "peer": f"/admin/peers/{ally.app[PEERING].node_id.hex()}",
            "coalition": f"/admin/coalitions/{coalition['id']}"}  # fmt: skip


@pytest.fixture
def reader(browser: Browser, node: ServedNode) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=node.url, viewport={"width": 390, "height": 844})
    try:
        yield context
    finally:
        context.close()


def pages(scene: dict[str, str]) -> list[tuple[str, str]]:
    return [
        ("dashboard", "/"), ("proposals", "/proposals?show=all"), ("proposal", scene["open"]),
        ("result", scene["closed"]), ("new-proposal", "/proposals/new"), ("profile", "/profile"),
        ("members", "/admin/members"), ("invites", "/admin/invites"),
        ("policy", "/admin/policy"), ("audit", "/admin/audit"), ("call", scene["call"]),
        ("calls", "/calls"), ("new-call", "/calls/new"), ("amend-call", scene["call"] + "/amend"),
        ("notifications", "/notifications"), ("peers", "/admin/peers"),
        ("peer", scene["peer"]), ("coalitions", "/admin/coalitions"),
        ("coalition", scene["coalition"]),
    ]  # fmt: skip


def check(page: Page, language: str, name: str) -> None:
    expect(page.locator("html")).to_have_attribute("lang", language)
    path = ARTIFACTS / f"{language}-{name}.png"
    page.screenshot(path=path, full_page=True)
    texts = page.evaluate(TEXTS)
    if language == "en":  # the check finds English messages where there are some
        assert leftovers(texts, "ar"), name
    else:
        found = leftovers(texts, language)
        assert not found, f"{language} {name}: English left: {found}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_main_page_in_each_language(
    node: ServedNode, reader: BrowserContext, scene: dict[str, str], language: str
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page = reader.new_page()
    page.goto("/login")
    page.click(f".languages button[value={language}]")
    check(page, language, "login")
    page.goto(scene["invite"])
    check(page, language, "join")
    page.fill("#f-password", "short")  # a refused form, with its messages
    page.evaluate("document.querySelector('main form').noValidate = true")
    page.click("main form button[type=submit]")
    check(page, language, "join-refused")

    admin = node.member("admin", language)
    log_in(page, admin)
    for name, path in pages(scene):
        page.goto(path)
        check(page, language, name)
    print(f"screenshots: {ARTIFACTS}/{language}-*.png")


@pytest.mark.parametrize("language", ["ar", "ckb"])
def test_right_to_left(node: ServedNode, reader: BrowserContext, language: str) -> None:
    page = reader.new_page()
    page.goto("/login")
    page.click(f".languages button[value={language}]")
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    for selector in ("body", "main", "h1", "label[for=f-pseudonym]"):
        direction = page.eval_on_selector(selector, "e => getComputedStyle(e).direction")
        assert direction == "rtl", selector
    # Mirrored: the brand starts at the right edge, the language switcher sits to its left.
    brand = page.locator(".brand").bounding_box()
    switcher = page.locator(".languages").bounding_box()
    assert brand
    assert switcher
    assert brand["x"] > switcher["x"]
    assert brand["x"] + brand["width"] > 390 - 40
    label = page.locator("label[for=f-pseudonym]").bounding_box()
    field = page.locator("#f-pseudonym").bounding_box()
    assert label
    assert field
    assert abs((label["x"] + label["width"]) - (field["x"] + field["width"])) < 2


def test_switcher_for_visitors_and_members(node: ServedNode, reader: BrowserContext) -> None:
    page = reader.new_page()
    page.goto("/login")
    page.click(".languages button[value=ckb]")
    expect(page.locator("h1")).to_have_text("چوونەژوورەوە")
    expect(page.locator(".languages button[value=ckb]")).to_have_attribute("aria-pressed", "true")
    page.goto("/login")
    expect(page.locator("html")).to_have_attribute("lang", "ckb")  # remembered (cookie)

    member = node.member("member", "en")
    log_in(page, member)
    expect(page.locator("html")).to_have_attribute("lang", "en")  # the member's own language
    page.click(".languages button[value=ar]")
    expect(page.locator("html")).to_have_attribute("lang", "ar")
    page.context.clear_cookies()
    log_in(page, member)
    expect(page.locator("html")).to_have_attribute("lang", "ar")  # remembered in the profile


def test_stylesheet_uses_logical_properties_only() -> None:
    """Mirroring comes from logical properties; a physical one would break one direction."""
    css = (STATIC_DIR / "style.css").read_text()
    physical = re.findall(
        r"(?:margin|padding|border)-(?:left|right)|(?:text-align|float|clear)\s*:\s*(?:left|right)"
        r"|[\s;{](?:left|right)\s*:|(?:top|bottom)-(?:left|right)-radius",
        css,
    )
    assert not physical, physical
    assert "margin-inline" in css
    assert "inset-inline-start" in css
