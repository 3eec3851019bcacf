"""The pages' plumbing: who is asking and in which language, the middleware that wraps every
page (security headers, errors rendered as translated pages), rendering, redirects and the
checks a form goes through.

A page request is one whose route is named ``page:...`` (:func:`node.web.pages.setup_pages`
names them), or an unknown path that a browser asks for as HTML. Its member comes from the
session cookie alone (never a bearer token), and only an active member counts as logged in.
The language is the member's ``language``; for a visitor, the ``tadamun_lang`` cookie, then
``Accept-Language``, then Arabic.
"""

from __future__ import annotations

import gettext
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, urlsplit

import aiohttp_jinja2
from aiohttp import web

from node.errors import NodeError, forbidden
from node.services.members import LANGUAGES, Caller, role_at_least
from node.web.auth import SESSION_COOKIE
from node.web.keys import ACCOUNTS, CONFIG, PROFILES
from node.web.pages.forms import MAX_FORM, Form, read_form
from node.web.pages.i18n import DEFAULT_LANGUAGE, LANGUAGE_NAMES, Lang, negotiate
from node.web.pages.labels import LABELS
from node.web.pages.messages import Msg, message_for
from node.web.pages.nav import visible_nav
from node.web.pages.security import (
    CSRF_FIELD,
    FORM_COOKIE,
    LANG_COOKIE,
    anonymous_token,
    check_fetch_site,
    check_token,
    new_form_secret,
    page_headers,
    session_token,
    set_page_cookie,
    valid_form_secret,
)

__all__ = [
    "PAGES",
    "PageKit",
    "PageState",
    "page_middleware",
    "redirect",
    "render",
    "require",
    "safe_next",
    "state_of",
    "submitted",
    "use_language",
]

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NON_PAGE_PREFIXES: Final = ("/api/", "/federation/", "/.well-known/", "/healthz")


@dataclass(frozen=True, slots=True)
class PageKit:
    """What every page shares, made once at start-up: languages, the CSRF key, assets."""

    langs: Mapping[str, Lang]
    csrf_key: bytes = field(repr=False)
    assets: Mapping[str, str]  # file name -> its URL with a content hash

    @classmethod
    def build(
        cls, catalogs: Mapping[str, gettext.NullTranslations], csrf_key: bytes,
        assets: Mapping[str, str],
    ) -> PageKit:  # fmt: skip
        langs = {code: Lang.of(code, catalogs[code]) for code in LANGUAGES}
        return cls(langs, csrf_key, assets)


PAGES: Final = web.AppKey("pages", PageKit)


@dataclass(slots=True)
class PageState:
    """One page request: its reader, their language and the CSRF token of its forms."""

    lang: Lang
    caller: Caller | None
    profile: dict[str, Any] | None
    csrf: str
    cookies: dict[str, str] = field(default_factory=dict)  # set on the response


# The page request being handled, for its handler (set by the middleware, per task). A
# context variable, not request storage: aiohttp before 3.14 has no typed request keys.
_STATE: Final[ContextVar[PageState]] = ContextVar("tadamun_page_state")


class LoginRequired(Exception):
    """The page needs a member who is logged in: the middleware redirects to log in."""


def state_of(request: web.Request) -> PageState:
    """The state of the page request being handled (``request`` names which, for readers)."""
    try:
        return _STATE.get()
    except LookupError:  # pragma: no cover - the middleware sets it for every page
        raise RuntimeError(f"{request.path} is not a page request") from None


def is_page(request: web.Request) -> bool:
    name = request.match_info.route.name or ""
    if name.startswith("page:"):
        return True
    unknown = request.match_info.http_exception is not None
    html = "text/html" in request.headers.get("Accept", "")
    return unknown and html and not request.path.startswith(NON_PAGE_PREFIXES)


async def _reader(request: web.Request) -> tuple[Caller | None, dict[str, Any] | None]:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None, None
    caller = await request.app[ACCOUNTS].by_session(token)
    if caller is None or caller.status != "active":
        return None, None
    return caller, await request.app[PROFILES].me(caller)


def _language(request: web.Request, profile: dict[str, Any] | None) -> str:
    if profile is not None and profile["language"] in LANGUAGES:
        return str(profile["language"])
    cookie = request.cookies.get(LANG_COOKIE)
    if cookie in LANGUAGES:
        return str(cookie)
    return negotiate(request.headers.get("Accept-Language", "")) or DEFAULT_LANGUAGE


async def _state(request: web.Request) -> PageState:
    kit = request.app[PAGES]
    caller, profile = await _reader(request)
    lang = kit.langs[_language(request, profile)]
    cookies: dict[str, str] = {}
    if caller is not None:
        csrf = session_token(kit.csrf_key, caller.credential)
    else:
        secret = request.cookies.get(FORM_COOKIE)
        if not valid_form_secret(secret) or secret is None:
            secret = cookies[FORM_COOKIE] = new_form_secret()
        csrf = anonymous_token(kit.csrf_key, secret)
    return PageState(lang, caller, profile, csrf, cookies)


def _context(request: web.Request, state: PageState) -> dict[str, Any]:
    """What every template can use."""
    lang = state.lang
    role = state.caller.role if state.caller else None

    def say(message: Msg) -> str:
        params = {k: lang.number(v) if type(v) is int else v for k, v in message.params.items()}
        return lang.gettext(message.text, **params)

    def label(kind: str, value: str) -> str:
        text = LABELS.get(kind, {}).get(value)
        return value if text is None else lang.gettext(text)

    return {
        "lang": lang,
        "t": lang.gettext,
        "label": label,
        "me": state.caller,
        "profile": state.profile,
        "csrf": state.csrf,
        "csrf_field": CSRF_FIELD,
        "say": say,
        "path": request.path,
        "here": request.path_qs if request.method == "GET" else request.path,
        "languages": LANGUAGE_NAMES,
        "nav": visible_nav(role),
        "node_name": request.app[CONFIG].node.name,
        "asset": request.app[PAGES].assets,
    }


@web.middleware
async def page_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Wraps page requests: the reader's state, translated error pages, security headers."""
    if not is_page(request):
        return await handler(request)
    state = await _state(request)
    token = _STATE.set(state)
    try:
        response = await _handle(request, handler)
    finally:
        _STATE.reset(token)
    for name, value in state.cookies.items():
        set_page_cookie(request, response, name, value)
    page_headers(response)
    return response


async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except LoginRequired:
        return redirect("/login?next=" + quote(request.path_qs, safe="/"))
    except NodeError as exc:
        log.info("page refused: %s %s: %s", request.method, request.path, exc)
        return error_page(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        return error_page(request, NodeError(exc.status, code, exc.reason))
    except Exception:  # a bug: logged, and still a page with the security headers
        log.exception("page failed: %s %s", request.method, request.path)
        return error_page(request, NodeError(500, "internal_error", "Internal Server Error"))


def use_language(request: web.Request, code: str) -> None:
    """Render this page in ``code`` (e.g. the language a new member just chose)."""
    state_of(request).lang = request.app[PAGES].langs[code]


def error_page(request: web.Request, exc: NodeError) -> web.Response:
    return render(request, "error.html", status=exc.status, message=message_for(exc))


# --- answering -----------------------------------------------------------------------------


def render(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    base = _context(request, state_of(request))
    return aiohttp_jinja2.render_template(template, request, base | context, status=status)


def redirect(location: str) -> web.Response:
    """303 See Other: after a form, the browser asks for ``location`` with GET."""
    return web.Response(status=303, headers={"Location": location})


def safe_next(value: str | None, default: str = "/") -> str:
    """A path on this node to go back to; anything else (another site, a scheme) is
    replaced by ``default``."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in value):
        return default
    return value


def require(request: web.Request, role: str = "member") -> Caller:
    """The logged-in member, with at least ``role``; otherwise log in first, or 403."""
    caller = state_of(request).caller
    if caller is None:
        raise LoginRequired
    if not role_at_least(caller.role, role):
        raise forbidden("forbidden", f"this page needs the {role} role")
    return caller


async def submitted(
    request: web.Request, allowed: Collection[str], *, limit: int = MAX_FORM
) -> tuple[dict[str, str], Form]:
    """A posted form that passed the CSRF checks, and its state for rendering it again;
    ``limit``: its size at most (:data:`~node.web.pages.forms.LARGE_FORM` for long texts)."""
    check_fetch_site(request)
    raw = await read_form(request, allowed, limit=limit)
    check_token(state_of(request).csrf, raw.get(CSRF_FIELD))
    return raw, Form.of(raw)
