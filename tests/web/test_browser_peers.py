"""An admin peers two nodes through the pages, in a real browser: the admin of A makes an
invite on A's page (a string and a QR code), the admin of B pastes it on B's page and sees
A's fingerprint before anything is sent, confirms, and both pages then show the other node
allied with the fingerprint its own page shows; then A blocks B. The peers pages pass the
accessibility check, and refuse bad input visibly."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from test_browser_quality import no_validation, refused, serious
from web_support import ARTIFACTS, ServedNode, log_in

from node.services.members import Actor
from node.web.keys import PEERING

MakeNode = Callable[[str], ServedNode]


@pytest.fixture
def contexts(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    made: list[BrowserContext] = []

    def make(node: ServedNode, *, bypass_csp: bool = False) -> BrowserContext:
        context = browser.new_context(base_url=node.url, locale="en-GB", bypass_csp=bypass_csp)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


def admin_of(node: ServedNode, context: BrowserContext) -> Page:
    page = context.new_page()
    log_in(page, node.member("admin", "en"))
    return page


def node_hex(node: ServedNode) -> str:
    return node.app[PEERING].node_id.hex()


def test_admins_peer_two_nodes_through_the_pages(
    make_node: MakeNode, contexts: Callable[..., BrowserContext]
) -> None:
    a, b = make_node("Oil workers of Basra"), make_node("Teachers of Sulaymaniyah")
    on_a, on_b = admin_of(a, contexts(a)), admin_of(b, contexts(b))
    requests: list[str] = []
    for page in (on_a, on_b):
        page.on("request", lambda request: requests.append(request.url))

    # A makes an invite: the string, its QR code, and A's fingerprint to read aloud.
    on_a.goto("/")
    on_a.click("nav.admin >> text=Peers")
    on_a.wait_for_url("**/admin/peers")
    a_fingerprint = on_a.inner_text("#own-fingerprint")
    on_a.click("text=Make a peering invite")
    invite = on_a.input_value("#peer-invite")
    assert invite.startswith("tadamun-peer:")
    expect(on_a.locator("figure.qr svg[role=img]")).to_be_visible()
    box = on_a.locator("figure.qr svg").bounding_box()
    assert box
    assert box["width"] >= 200
    expect(on_a.locator("section.created")).to_contain_text(a_fingerprint)
    ARTIFACTS.mkdir(exist_ok=True)
    on_a.screenshot(path=ARTIFACTS / "en-peers-invite.png", full_page=True)

    # B pastes it, compares A's fingerprint before anything is sent, and joins.
    on_b.goto("/admin/peers")
    b_fingerprint = on_b.inner_text("#own-fingerprint")
    assert b_fingerprint != a_fingerprint
    on_b.fill("#f-invite", invite)
    on_b.click("text=Check the invite")
    expect(on_b.locator("#their-fingerprint")).to_have_text(a_fingerprint)
    on_b.screenshot(path=ARTIFACTS / "en-peers-join.png", full_page=True)
    on_b.click("text=Join and ally")
    refused(on_b, "Tick the box once you have compared the fingerprints.")
    on_b.check("#f-compared")
    on_b.click("text=Join and ally")
    on_b.wait_for_url(f"**/admin/peers/{node_hex(a)}?notice=joined")
    expect(on_b.get_by_role("status")).to_contain_text("The two nodes are allied.")
    expect(on_b.locator("h1")).to_have_text("Oil workers of Basra")
    expect(on_b.locator("#peer-fingerprint")).to_have_text(a_fingerprint)
    expect(on_b.locator("#peer-state")).to_have_text("allied")

    # A sees B allied, with the fingerprint B's own page shows.
    on_a.goto("/admin/peers")
    item = on_a.locator(f"#peer-{node_hex(b)}")
    expect(item).to_contain_text("Teachers of Sulaymaniyah")
    expect(item).to_contain_text(b_fingerprint)
    expect(item.locator(".peer-state")).to_have_text("allied")
    expect(on_a.locator("table")).to_contain_text("used")
    on_b.goto("/admin/peers")
    expect(on_b.locator(f"#peer-{node_hex(a)} .peer-state")).to_have_text("allied")

    # A blocks B: refused without the confirmation box, done with it.
    item.locator("h3 a").click()
    on_a.wait_for_url(f"**/admin/peers/{node_hex(b)}")
    expect(on_a.locator("#peer-fingerprint")).to_have_text(b_fingerprint)
    on_a.click("form[action$='/block'] button")
    refused(on_a, "Tick the box to confirm.")
    expect(on_a.locator("#peer-state")).to_have_text("allied")
    on_a.check("#f-confirm-block")
    on_a.click("form[action$='/block'] button")
    expect(on_a.get_by_role("status")).to_contain_text("The peer is blocked")
    expect(on_a.locator("#peer-state")).to_have_text("blocked")
    expect(on_a.locator("form[action$='/unblock']")).to_be_visible()
    on_a.goto("/admin/audit")
    expect(on_a.locator("table.audit")).to_contain_text("peer blocked")
    expect(on_a.locator("table.audit")).to_contain_text("another node joined our invite")
    outside = [url for url in requests if not url.startswith((a.url, b.url))]
    assert not outside, outside


def test_peers_pages_refuse_bad_input_and_pass_the_accessibility_check(
    make_node: MakeNode, contexts: Callable[..., BrowserContext], axe_source: str
) -> None:
    a, b = make_node("Nurses"), make_node("Bakers <i>&amp;</i> co")
    page = admin_of(a, contexts(a, bypass_csp=True))  # axe is a script: the CSP would stop it
    page.goto("/admin/peers")
    checked = {"peers (empty)": serious(page, axe_source)}
    no_validation(page)
    page.fill("#f-expires_hours", "0")
    page.click("text=Make a peering invite")
    refused(page, "Enter a whole number from 1 to 2,160.")
    expect(page.locator("#f-expires_hours")).to_have_attribute("aria-invalid", "true")
    no_validation(page)
    page.fill("#f-invite", "tadamun-peer:not-really")
    page.click("text=Check the invite")
    refused(page, "This is not a peering invite this node can use.")
    expect(page.locator("#f-invite")).to_have_value("tadamun-peer:not-really")
    page.fill("#f-expires_hours", "24")
    page.click("text=Make a peering invite")
    checked["peers (new invite)"] = serious(page, axe_source)

    made = b.run(b.app[PEERING].create_invite(Actor.cli()))
    page.fill("#f-invite", made["invite"])
    page.click("text=Check the invite")
    checked["join"] = serious(page, axe_source)
    page.check("#f-compared")
    page.click("text=Join and ally")
    page.wait_for_url("**notice=joined")
    expect(page.locator("h1")).to_have_text("Bakers <i>&amp;</i> co")  # another node's words
    checked["peer"] = serious(page, axe_source)
    page.click("form[action$='/remove'] button")
    refused(page, "Tick the box to confirm.")
    checked["peer (refused)"] = serious(page, axe_source)
    page.goto("/admin/peers")
    checked["peers"] = serious(page, axe_source)
    problems = {name: found for name, found in checked.items() if found}
    assert not problems, problems
