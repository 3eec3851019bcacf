"""Who is calling: a session cookie or ``Authorization: Bearer <token>``, their status and
role, and the same-origin rule for cookies.

- Only SHA-256 hashes of session and API tokens are stored (node.storage.credentials).
- Members who are not active are refused: 403 ``account_suspended`` or
  ``account_not_active``; no credential, or one that is unknown or expired, is 401
  ``unauthenticated``; too low a role (member < organiser < admin) is 403 ``forbidden``.
- A state-changing request that relies on the cookie must carry an ``Origin`` header equal
  to the node's own (``server.base_url``), or it is refused with 403 ``csrf``; requests with
  a bearer token are exempt (a browser never adds one by itself). The cookie is also
  ``SameSite=Strict`` and ``HttpOnly``, and ``Secure`` when the node is served over https.
"""

from __future__ import annotations

from enum import Enum
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web

from node.errors import NodeError, forbidden
from node.services.accounts import status_refusal
from node.services.members import Caller, role_at_least
from node.web.keys import ACCOUNTS, CONFIG

__all__ = [
    "SAFE_METHODS",
    "SESSION_COOKIE",
    "Auth",
    "authenticate",
    "check_origin",
    "clear_session_cookie",
    "set_session_cookie",
]

SESSION_COOKIE: Final = "tadamun_session"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class Auth(Enum):
    """Who may call a route: anyone, or an active member with at least this role."""

    PUBLIC = "public"
    MEMBER = "member"
    ORGANISER = "organiser"
    ADMIN = "admin"


def unauthenticated(message: str = "log in, or send an API token") -> NodeError:
    return NodeError(401, "unauthenticated", message)


async def authenticate(request: web.Request, auth: Auth) -> Caller | None:
    """The caller a route requires, or the error that refuses them; None for public routes."""
    if auth is Auth.PUBLIC:
        return None
    caller = await _presented(request)
    if caller is None:
        raise unauthenticated()
    if refusal := status_refusal(caller.status):
        raise refusal
    if not role_at_least(caller.role, auth.value):
        raise forbidden("forbidden", f"this needs the {auth.value} role")
    return caller


async def _presented(request: web.Request) -> Caller | None:
    accounts = request.app[ACCOUNTS]
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthenticated("the Authorization header must be 'Bearer <token>'")
        caller = await accounts.by_token(token.strip())
        if caller is None:
            raise unauthenticated("unknown or revoked API token")
        return caller
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    caller = await accounts.by_session(cookie)
    if caller is None:
        raise unauthenticated("the session has ended; log in again")
    return caller


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme, 0)
    except ValueError:
        return None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def check_origin(request: web.Request) -> None:
    """Refuse a cross-site state-changing request (403 ``csrf``). A request that carries the
    session cookie must name our origin; any request that names another origin is refused."""
    if request.method in SAFE_METHODS or "Authorization" in request.headers:
        return
    origin = request.headers.get("Origin")
    if origin is None:
        if request.cookies.get(SESSION_COOKIE):
            raise forbidden("csrf", "a request with the session cookie must carry Origin")
        return
    if _origin(origin) != _origin(request.app[CONFIG].server.base_url):
        raise forbidden("csrf", "the request comes from another site")


def _secure(request: web.Request) -> bool:
    return request.app[CONFIG].server.base_url.startswith("https://")


def set_session_cookie(
    request: web.Request, response: web.StreamResponse, token: str, max_age: int
) -> None:
    response.set_cookie(
        SESSION_COOKIE, token, max_age=max_age, path="/", httponly=True, samesite="Strict",
        secure=_secure(request),
    )  # fmt: skip


def clear_session_cookie(request: web.Request, response: web.StreamResponse) -> None:
    response.del_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="Strict", secure=_secure(request)
    )
