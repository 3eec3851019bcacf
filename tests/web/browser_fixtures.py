"""The browser tests' fixtures: one real node (web_support.ServedNode) and one headless
Chromium for the whole session, Debian's (``/usr/bin/chromium``), driven by Playwright.
conftest.py makes them visible to pytest; they live here so that mypy checks them (it cannot
check two modules named ``conftest`` in one run).

Without Chromium, or without axe-core (``npm ci`` in tests/web), the tests skip and say why;
with ``CI=true`` they fail instead. Playwright never downloads a browser here.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
from web_support import AXE, CHROMIUM, HERE, PASSWORD, ServedNode, unavailable

__all__ = [
    "admin_name", "axe_source", "browser", "chromium_path", "context", "make_node", "node",
    "page", "playwright",
]  # fmt: skip


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="session")
def playwright(chromium_path: str) -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright, chromium_path: str) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=chromium_path, args=["--no-sandbox"])
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[ServedNode]:
    served = ServedNode(tmp_path_factory.mktemp("web"))
    served.start()
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture(scope="session")
def make_node(
    tmp_path_factory: pytest.TempPathFactory, browser: Browser
) -> Iterator[Callable[[str], ServedNode]]:
    """Starts more nodes, each named and fresh (not peered: ``ServedNode.peer_with`` allies
    two), for tests of several nodes; all are stopped at the end of the session."""
    started: list[ServedNode] = []

    def make(name: str) -> ServedNode:
        served = ServedNode(tmp_path_factory.mktemp("web-node"), name)
        started.append(served)
        served.start()
        return served

    try:
        yield make
    finally:
        for served in reversed(started):
            served.stop()


@pytest.fixture(scope="session")
def admin_name(node: ServedNode, browser: Browser) -> str:
    """The founding admin, who joined through the invite link the node printed at init."""
    context = browser.new_context(base_url=node.url, locale="en-GB")
    page = context.new_page()
    page.goto(f"/join/{node.admin_invite}")
    page.fill("#f-pseudonym", "founder")
    page.fill("#f-password", PASSWORD)
    page.fill("#f-password_again", PASSWORD)
    page.select_option("#f-language", "en")
    page.click("form.narrow button[type=submit]")
    page.wait_for_url("**/?notice=welcome")
    context.close()
    return "founder"


@pytest.fixture
def context(browser: Browser, node: ServedNode) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=node.url, locale="en-GB")
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture(scope="session")
def axe_source() -> str:
    if not AXE.exists():
        unavailable(f"axe-core is not installed: run `npm ci` in {HERE}")
    return AXE.read_text()
