"""Accessibility, keyboard use, the Content-Security-Policy and bad input, in a real browser:
axe-core finds no serious or critical violation on the main pages; the skip link comes first
and focus is visible; inline scripts are refused; no request leaves the node; and each form
shows a visible message when it refuses input."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Error, Page, expect
from web_support import PASSWORD, ServedNode, log_in

AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
}"""


@pytest.fixture(scope="module")
def admin_in(node: ServedNode) -> dict[str, str]:
    return {language: node.member("admin", language) for language in ("en", "ar", "ckb")}


@pytest.fixture
def axe_context(browser: Browser, node: ServedNode, axe_source: str) -> Iterator[BrowserContext]:
    # axe is injected as a script, which the pages' CSP rightly forbids: bypass it for axe only.
    context = browser.new_context(base_url=node.url, bypass_csp=True)
    try:
        yield context
    finally:
        context.close()


def serious(page: Page, axe_source: str) -> list[dict[str, Any]]:
    page.add_script_tag(content=axe_source)
    violations: list[dict[str, Any]] = page.evaluate(AXE_RUN)
    return [v for v in violations if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("language", ["en", "ar", "ckb"])
def test_no_serious_accessibility_violations(
    node: ServedNode, axe_context: BrowserContext, axe_source: str, admin_in: dict[str, str],
    language: str,
) -> None:  # fmt: skip
    proposal = node.proposal("Accessible?", ("Yes", "No"))
    page = axe_context.new_page()
    page.goto("/login")
    page.click(f".languages button[value={language}]")
    checked = {"/login": serious(page, axe_source)}
    page.goto(node.invite_link())
    checked["/join"] = serious(page, axe_source)
    log_in(page, admin_in[language])
    for path in ("/", "/proposals", proposal, "/proposals/new", "/profile", "/admin/members",
                 "/admin/invites", "/admin/policy", "/admin/audit"):  # fmt: skip
        page.goto(path)
        checked[path] = serious(page, axe_source)
    problems = {path: found for path, found in checked.items() if found}
    assert not problems, problems


def test_keyboard_skip_link_and_visible_focus(node: ServedNode, page: Page) -> None:
    page.goto("/login")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.className")
    assert focused == "skip"
    box = page.locator(".skip").bounding_box()
    assert box
    assert box["y"] >= 0
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    page.keyboard.press("Enter")
    assert page.evaluate("location.hash") == "#main"
    # Log in with the keyboard alone.
    member = node.member()
    page.focus("#f-pseudonym")
    page.keyboard.type(member)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/login" not in url)
    expect(page.locator("h1")).to_contain_text(member)


def test_csp_refuses_inline_script_and_nothing_leaves_the_node(
    node: ServedNode, page: Page, admin_in: dict[str, str]
) -> None:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    log_in(page, admin_in["ckb"])
    for path in ("/", "/proposals", "/profile", "/admin/members", "/admin/invites"):
        page.goto(path)
    with pytest.raises(Error):
        page.add_script_tag(content="window.injected = true")
    assert page.evaluate("window.injected === undefined")
    outside = [url for url in requests if not url.startswith(node.url)]
    assert not outside, outside
    assert any(url.startswith(f"{node.url}/static/style.css") for url in requests)


def refused(page: Page, message: str) -> None:
    expect(page.get_by_role("alert").first).to_be_visible()
    expect(page.locator("main")).to_contain_text(message)


def no_validation(page: Page) -> None:
    """Let the server see what the browser's own checks would stop (required, min, max)."""
    page.evaluate("for (const f of document.forms) f.noValidate = true")


def test_each_form_rejects_bad_input_visibly(
    node: ServedNode, page: Page, admin_in: dict[str, str]
) -> None:
    page.goto("/login")
    page.fill("#f-pseudonym", "nobody-here")
    page.fill("#f-password", "wrong password")
    page.click("main form button[type=submit]")
    refused(page, "Wrong pseudonym or password.")
    expect(page.locator("#f-pseudonym")).to_have_value("nobody-here")

    page.goto(node.invite_link())
    page.fill("#f-pseudonym", "Hana")
    page.fill("#f-password", PASSWORD)
    page.fill("#f-password_again", "something else")
    page.click("main form button[type=submit]")
    refused(page, "The two passwords are not the same.")
    expect(page.locator("#f-pseudonym")).to_have_value("Hana")
    expect(page.locator("#f-password")).to_have_value("")  # never sent back
    expect(page.locator("#f-password_again")).to_have_attribute("aria-invalid", "true")

    log_in(page, admin_in["en"])
    proposal = node.proposal("Pick one", ("A", "B"))
    page.goto(proposal)
    page.click("button:has-text('Vote')")
    refused(page, "Choose one of the options.")

    page.goto("/proposals/new")
    page.fill("#f-title", "One option only")
    page.fill("#f-options", "Just this")
    page.click("text=Create the proposal")
    refused(page, "Give 2 to 64 different options, one per line.")
    expect(page.locator("#f-title")).to_have_value("One option only")

    page.goto("/profile")
    page.fill("#f-phone", "not a phone")
    page.click("section[aria-labelledby=details-title] button[type=submit]")
    refused(page, "A phone number")
    page.fill("#f-current_password", "not my password")
    page.fill("section[aria-labelledby=password-title] #f-password", "a new long password")
    page.fill("#f-password_again", "a new long password")
    page.click("text=Change the password")
    refused(page, "The current password is not right.")
    page.click("button.danger")
    refused(page, "Tick the box to confirm that you want to leave.")

    page.goto("/admin/invites")
    no_validation(page)
    page.fill("#f-uses", "0")
    page.click("text=Make the link")
    refused(page, "Enter a whole number from 1 to 10,000.")

    page.goto("/admin/policy")
    no_validation(page)
    page.fill("#f-quorum_num", "5")
    page.fill("#f-quorum_den", "4")
    page.click("text=Save the policy")
    refused(page, "The quorum cannot be more than the whole electorate.")
