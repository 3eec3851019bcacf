"""What people do, in a real browser: a member joins through an invite link, logs in, votes
and changes the vote; an organiser creates a proposal; an admin approves a pending member
and changes their role."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect
from web_support import PASSWORD, ServedNode, log_in


def admin_page(browser: Browser, node: ServedNode, admin_name: str) -> Page:
    page = browser.new_context(base_url=node.url, locale="en-GB").new_page()
    log_in(page, admin_name)
    return page


def join(page: Page, link: str, pseudonym: str, language: str = "en") -> None:
    page.goto(link)
    expect(page.locator("h1")).to_contain_text("Join")
    page.fill("#f-pseudonym", pseudonym)
    page.fill("#f-password", PASSWORD)
    page.fill("#f-password_again", PASSWORD)
    page.select_option("#f-language", language)
    page.click("main form button[type=submit]")


def test_member_joins_votes_and_changes_the_vote(
    node: ServedNode, browser: Browser, admin_name: str, page: Page
) -> None:
    admin = admin_page(browser, node, admin_name)
    admin.goto("/admin/invites")
    admin.fill("#f-uses", "1")
    admin.click("text=Make the link")
    link = admin.input_value("#invite-link")
    assert link.startswith(f"{node.url}/join/")
    admin.context.close()
    proposal = node.proposal("Join the general strike?", ("Yes", "No"))

    join(page, link, "Rojin")
    page.wait_for_url("**/?notice=welcome")
    expect(page.get_by_role("status")).to_contain_text("Welcome! You are a member now.")
    page.click("text=Log out")
    page.wait_for_url("**/login?notice=logged_out")
    log_in(page, "Rojin")

    page.click("text=Join the general strike?")
    page.wait_for_url(f"**{proposal}")
    expect(page.locator(".note").first).to_contain_text("Secret ballot")
    page.check("label:has-text('Yes')")
    page.click("button:has-text('Vote')")
    expect(page.get_by_role("status")).to_contain_text("Your vote is saved")
    expect(page.locator("#c-0")).to_be_checked()
    page.check("label:has-text('No')")
    page.click("button:has-text('Change my vote')")
    expect(page.locator("#c-1")).to_be_checked()
    expect(page.locator("#c-0")).not_to_be_checked()
    expect(page.locator("main")).to_contain_text("1 member has voted so far.")
    page.goto("/")
    expect(page.locator("main")).to_contain_text("You have voted")


def test_organiser_creates_a_proposal(node: ServedNode, page: Page) -> None:
    organiser = node.member("organiser")
    log_in(page, organiser)
    page.click("text=New proposal")
    page.fill("#f-title", "Move the meeting to Friday?")
    page.fill("#f-body", "The hall is free on Friday.")
    page.fill("#f-options", "Yes\nNo\nAnother day")
    page.select_option("#f-method", "consent")
    page.fill("#f-quorum", "30")
    page.check("#b-open")
    page.fill("#f-hours", "36")
    page.click("text=Create the proposal")
    expect(page.get_by_role("status")).to_contain_text("The proposal is created.")
    expect(page.locator("h1")).to_have_text("Move the meeting to Friday?")
    expect(page.locator("main")).to_contain_text("Open ballot")
    expect(page.locator("label[for=c-block]")).to_be_visible()  # consent: a block is possible
    page.goto("/")
    expect(page.locator("main")).to_contain_text("Move the meeting to Friday?")
    expect(page.locator("main")).to_contain_text("Time left: 1 day 12 hours")


def test_admin_approves_a_pending_member_and_changes_the_role(
    node: ServedNode, browser: Browser, admin_name: str, page: Page
) -> None:
    admin = admin_page(browser, node, admin_name)
    admin.goto("/admin/policy")
    admin.check("#f-approval_required")
    admin.click("text=Save the policy")
    expect(admin.get_by_role("status")).to_contain_text("Saved.")
    try:
        join(page, node.invite_link(), "Dilan", "ar")
        expect(page.locator("html")).to_have_attribute("dir", "rtl")
        expect(page.locator("main")).to_contain_text("بانتظار الموافقة")
        log_in_refused = page.context.new_page()
        log_in_refused.goto("/login")
        log_in_refused.fill("#f-pseudonym", "Dilan")
        log_in_refused.fill("#f-password", PASSWORD)
        log_in_refused.click("main form button[type=submit]")
        expect(log_in_refused.get_by_role("alert")).to_contain_text("بانتظار موافقة أحد المشرفين")

        admin.goto("/")
        admin.click("text=Review new members")
        row = admin.locator("tr", has_text="Dilan")
        row.locator("button:has-text('Approve')").click()
        expect(admin.get_by_role("status")).to_contain_text("The member is approved.")
        admin.goto("/admin/members")
        row = admin.locator("tr", has_text="Dilan")
        row.locator("select").select_option("organiser")
        row.locator("button:has-text('Set')").click()
        expect(admin.get_by_role("status")).to_contain_text("The role is changed.")
        expect(admin.locator("tr", has_text="Dilan").locator("select")).to_have_value("organiser")
    finally:
        admin.goto("/admin/policy")
        admin.uncheck("#f-approval_required")
        admin.click("text=Save the policy")
        admin.context.close()
    log_in(page, "Dilan")
    expect(page.locator("a[href='/proposals/new']").first).to_be_visible()
