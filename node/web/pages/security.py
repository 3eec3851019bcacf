"""What keeps the pages safe: CSRF tokens, the security headers and the pages' own cookies.

- **CSRF.** Every form carries a token. For a member it is bound to their session:
  HMAC-SHA256(k, "session" || SHA-256 of the session token). For a visitor (log in, join)
  it is a signed double-submit token: a random secret in the ``tadamun_form`` cookie and
  HMAC-SHA256(k, "form" || that secret) in the form. ``k`` is the node's local secret's
  subkey for this purpose (:meth:`NodeSecrets.subkey`). A state-changing request whose
  ``Sec-Fetch-Site`` names another site is refused before the token is looked at.
- **Headers.** A Content-Security-Policy with ``default-src 'self'`` and nothing inline,
  ``frame-ancestors 'none'``, ``X-Content-Type-Options: nosniff``, ``Referrer-Policy:
  no-referrer`` and ``Cache-Control: no-store`` on pages (they hold personal data).
- **Cookies** are HttpOnly and SameSite, and Secure when the node is served over https; the
  session cookie is set by :mod:`node.web.auth`, the same code as the JSON API's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import Final

from aiohttp import web

from node.errors import NodeError
from node.web.keys import CONFIG

__all__ = [
    "CSP",
    "CSRF_FIELD",
    "CSRF_LABEL",
    "FORM_COOKIE",
    "LANG_COOKIE",
    "anonymous_token",
    "check_fetch_site",
    "check_token",
    "new_form_secret",
    "page_headers",
    "session_token",
    "set_page_cookie",
    "valid_form_secret",
]

CSRF_LABEL: Final = "tadamun/v1/page-csrf"
CSRF_FIELD: Final = "csrf"
FORM_COOKIE: Final = "tadamun_form"
LANG_COOKIE: Final = "tadamun_lang"
YEAR: Final = 365 * 86_400
FORM_SECRET: Final = re.compile(r"[A-Za-z0-9_-]{43}")
CSP: Final = (
    "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SAME_SITE_FETCHES: Final = frozenset({"same-origin", "none"})


def _mac(key: bytes, purpose: bytes, value: bytes) -> str:
    digest = hmac.new(key, purpose + b"\x00" + value, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def session_token(key: bytes, credential: bytes) -> str:
    """The CSRF token of a member's session (``credential``: SHA-256 of its token)."""
    return _mac(key, b"session", credential)


def anonymous_token(key: bytes, form_secret: str) -> str:
    """The CSRF token of a visitor whose ``tadamun_form`` cookie holds ``form_secret``."""
    return _mac(key, b"form", form_secret.encode())


def new_form_secret() -> str:
    return secrets.token_urlsafe(32)


def valid_form_secret(value: str | None) -> bool:
    return value is not None and FORM_SECRET.fullmatch(value) is not None


def check_token(expected: str, presented: str | None) -> None:
    """403 ``csrf`` unless the form carried the expected token."""
    if presented is None or not hmac.compare_digest(expected.encode(), presented.encode()):
        raise NodeError(403, "csrf", "the form's security token is missing or wrong")


def check_fetch_site(request: web.Request) -> None:
    """403 ``csrf`` for a state-changing request a browser says comes from another site."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in SAME_SITE_FETCHES:
        raise NodeError(403, "csrf", "the request comes from another site")


def _secure(request: web.Request) -> bool:
    return request.app[CONFIG].server.base_url.startswith("https://")


def set_page_cookie(
    request: web.Request, response: web.StreamResponse, name: str, value: str
) -> None:
    """A cookie of the pages (language, form secret): a year, HttpOnly, SameSite=Lax (so a
    visitor who follows an invite link from elsewhere keeps the secret their forms use)."""
    response.set_cookie(
        name, value, max_age=YEAR, path="/", httponly=True, samesite="Lax",
        secure=_secure(request),
    )  # fmt: skip


def page_headers(response: web.StreamResponse, *, cacheable: bool = False) -> None:
    headers = response.headers
    headers["Content-Security-Policy"] = CSP
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Frame-Options"] = "DENY"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Cross-Origin-Resource-Policy"] = "same-origin"
    if not cacheable:
        headers["Cache-Control"] = "no-store"
