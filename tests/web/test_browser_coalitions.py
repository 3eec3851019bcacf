"""Coalitions in a real browser, on two allied nodes: A's admin founds a coalition on A's
page (after a refused, empty name) and invites B from the list of allied nodes; B's admin
finds the invitation on B's page and accepts it; both pages then list both nodes as members,
and A's new-call form offers the coalition. The coalitions pages pass the accessibility
check."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from test_browser_calls import until
from test_browser_quality import no_validation, refused, serious
from web_support import ARTIFACTS, ServedNode, log_in

from node.web.keys import COALITIONS, PEERING

MakeNode = Callable[[str], ServedNode]


@pytest.fixture
def contexts(browser: Browser) -> Iterator[Callable[[ServedNode], BrowserContext]]:
    made: list[BrowserContext] = []

    def make(node: ServedNode) -> BrowserContext:
        # axe-core is a script: the CSP would stop it, so these contexts bypass it.
        context = browser.new_context(base_url=node.url, locale="en-GB", bypass_csp=True)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


def node_hex(node: ServedNode) -> str:
    return node.app[PEERING].node_id.hex()


def standing_of(node: ServedNode, of: ServedNode, state: str) -> Callable[[], Awaitable[bool]]:
    """A check that ``node`` sees ``of`` in its (only) coalition with ``state``."""

    async def check() -> bool:
        items = await node.app[COALITIONS].list()
        return any(m["node"] == node_hex(of) and m["state"] == state
                   for item in items for m in item["members"])  # fmt: skip

    return check


def member_state(page: Page, node: ServedNode) -> str:
    return page.inner_text(f"#member-{node_hex(node)} td.state")


def test_found_invite_and_accept_through_the_pages(
    make_node: MakeNode, contexts: Callable[[ServedNode], BrowserContext], axe_source: str
) -> None:
    a, b = make_node("Oil workers of Basra"), make_node("Teachers of Sulaymaniyah")
    b.clock.advance(a.clock.now() - b.clock.now())  # their clocks agree
    a.peer_with(b)
    on_a, on_b = contexts(a).new_page(), contexts(b).new_page()
    log_in(on_a, a.member("admin", "en"))
    log_in(on_b, b.member("admin", "en"))
    checked: dict[str, list[object]] = {}

    # A founds a coalition: refused without a name, then founded.
    on_a.click("nav.admin >> text=Coalitions")
    on_a.wait_for_url("**/admin/coalitions")
    checked["coalitions (empty)"] = list(serious(on_a, axe_source))
    no_validation(on_a)
    on_a.click("text=Found the coalition")
    refused(on_a, "Write it in at least one language.")
    checked["coalitions (refused)"] = list(serious(on_a, axe_source))
    on_a.fill("#f-name_en", "Southern unions")
    on_a.fill("#f-name_ar", "نقابات الجنوب")
    on_a.fill("#f-purpose_en", "Strike together.")
    on_a.click("text=Found the coalition")
    on_a.wait_for_url("**/admin/coalitions/*?notice=founded")
    expect(on_a.get_by_role("status")).to_contain_text("The coalition is founded")
    expect(on_a.locator("h1")).to_have_text("Southern unions")
    expect(on_a.locator("#standing")).to_have_text("a member")

    # A invites B, chosen from the allied nodes.
    option = on_a.locator(f"#f-node option[value='{node_hex(b)}']")
    expect(option).to_contain_text("Teachers of Sulaymaniyah")
    on_a.select_option("#f-node", node_hex(b))
    on_a.click("form[action$='/invite'] button")
    on_a.wait_for_url("**notice=invited")
    expect(on_a.get_by_role("status")).to_contain_text("The invite is sent.")
    assert member_state(on_a, b) == "invited"
    checked["coalition"] = list(serious(on_a, axe_source))

    # B finds the invitation on its page and accepts it.
    until((b, a), standing_of(b, b, "invited"), "B invited")
    on_b.goto("/admin/coalitions")
    invitation = on_b.locator(".invitations li")
    expect(invitation).to_contain_text("Southern unions")
    expect(invitation).to_contain_text("Oil workers of Basra")
    checked["coalitions (invited)"] = list(serious(on_b, axe_source))
    ARTIFACTS.mkdir(exist_ok=True)
    on_b.screenshot(path=ARTIFACTS / "en-coalitions-invited.png", full_page=True)
    invitation.locator("button").click()
    on_b.wait_for_url("**notice=joined")
    expect(on_b.get_by_role("status")).to_contain_text("This node is a member of the coalition")
    assert member_state(on_b, a) == member_state(on_b, b) == "member"
    on_b.click("form[action$='/leave'] button")
    refused(on_b, "Tick the box to confirm.")
    checked["coalition (refused)"] = list(serious(on_b, axe_source))
    assert member_state(on_b, b) == "member"

    # A sees B a member, and its new-call form offers the coalition.
    until((a, b), standing_of(a, b, "member"), "A sees B a member")
    on_a.reload()
    assert member_state(on_a, b) == "member"
    on_a.screenshot(path=ARTIFACTS / "en-coalition-members.png", full_page=True)
    on_a.goto("/calls/new")
    expect(on_a.locator("fieldset", has_text="Who receives it")).to_contain_text(
        "coalition: Southern unions"
    )
    problems = {name: found for name, found in checked.items() if found}
    assert not problems, problems
