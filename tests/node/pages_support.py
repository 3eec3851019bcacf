"""Helpers for the tests of the web pages over HTTP (no browser; no tests here): a visitor
that keeps its own cookies and posts forms as a browser does, with the CSRF token of the
last page it saw."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any, Protocol
from urllib.parse import urlencode

from test_api_support import PASSWORD, ApiNode

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
ALERT = re.compile(r'<div class="alert" role="alert"><p>(.*?)</p>', re.S)
FIELD_ERROR = re.compile(r'<p class="error" id="e-([\w.]+)">(.*?)</p>', re.S)
NOTICE = re.compile(r'<div class="notice" role="status"><p>(.*?)</p>', re.S)


@dataclass
class Page:
    status: int
    text: str
    headers: Any
    cookies: SimpleCookie

    @property
    def location(self) -> str:
        return str(self.headers.get("Location", ""))

    @property
    def alert(self) -> str | None:
        found = ALERT.search(self.text)
        return html.unescape(found.group(1)) if found else None

    @property
    def field_errors(self) -> dict[str, str]:
        return {name: html.unescape(text) for name, text in FIELD_ERROR.findall(self.text)}

    @property
    def notice(self) -> str | None:
        found = NOTICE.search(self.text)
        return html.unescape(found.group(1)) if found else None

    def value_of(self, name: str) -> str | None:
        """The value an input named ``name`` shows."""
        found = re.search(rf'name="{re.escape(name)}"[^>]*?value="([^"]*)"', self.text)
        return html.unescape(found.group(1)) if found else None


class Site(Protocol):
    """What a visitor needs of a node: an HTTP client whose paths are the node's (an
    :class:`ApiNode`'s test client, or an ``aiohttp.ClientSession`` with a ``base_url``)."""

    @property
    def client(self) -> Any: ...


@dataclass
class Visitor:
    """Someone using the pages: cookies kept between requests, forms posted with the CSRF
    token of the last page seen, and the headers a browser sends with a form."""

    node: Site
    cookies: dict[str, str] = field(default_factory=dict)
    token: str = ""
    language: str = "en"
    pseudonym: str = ""

    async def request(
        self,
        method: str,
        path: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Page:
        sent = {"Accept": "text/html", "Accept-Language": self.language}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if data is not None:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
            sent["Sec-Fetch-Site"] = "same-origin"
            sent["Origin"] = "null"  # what a browser sends under Referrer-Policy: no-referrer
        sent |= headers or {}
        async with self.node.client.request(
            method, path, data=data, headers=sent, allow_redirects=False
        ) as response:
            text = await response.text()
            for name, morsel in response.cookies.items():
                if morsel.value and morsel["max-age"] != "0":
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)
            page = Page(response.status, text, response.headers, response.cookies)
        if found := CSRF.search(text):
            self.token = found.group(1)
        return page

    async def get(self, path: str, headers: dict[str, str] | None = None) -> Page:
        return await self.request("GET", path, headers=headers)

    async def post(
        self, path: str, fields: dict[str, str] | None = None, *, csrf: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Page:  # fmt: skip
        body = {"csrf": self.token if csrf is None else csrf} | (fields or {})
        return await self.request("POST", path, urlencode(body).encode(), headers)

    async def login(self, pseudonym: str, password: str = PASSWORD) -> Page:
        await self.get("/login")
        page = await self.post("/login", {"pseudonym": pseudonym, "password": password})
        assert page.status == 303, (page.status, page.alert)
        await self.get("/")
        return page


async def admin_visitor(node: ApiNode, language: str = "en") -> Visitor:
    """The founding admin, logged in, reading the pages in ``language``."""
    visitor = Visitor(node, language=language)
    await visitor.login("founder")
    page = await visitor.post("/language", {"language": language, "next": "/"})
    assert page.status == 303, page.text
    await visitor.get("/")
    return visitor


async def member_visitor(node: ApiNode, role: str = "member", language: str = "en") -> Visitor:
    """A new active member with ``role``, logged in, reading the pages in ``language``."""
    pseudonym, _ = await node.register(role, language=language)
    visitor = Visitor(node, language=language)
    await visitor.login(pseudonym)
    visitor.pseudonym = pseudonym
    return visitor
