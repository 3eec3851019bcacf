"""How page modules declare their routes, and the checks of a page's query string and ids."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from node.errors import NodeError, not_found

__all__ = ["MAX_QUERY_VALUE", "PageRoute", "cursor", "path_id", "query"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_QUERY_VALUE: Final = 512
ID: Final = re.compile(r"[1-9][0-9]{0,17}")


@dataclass(frozen=True, slots=True)
class PageRoute:
    method: str
    path: str
    handler: Handler
    name: str  # the route is named "page:<name>"


def query(request: web.Request, allowed: Collection[str]) -> dict[str, str]:
    """The query string's parameters: only ``allowed`` ones, each once, none oversized
    (400 ``invalid_form``: our pages never make such a link)."""
    args: dict[str, str] = {}
    for name, value in request.query.items():
        if name not in allowed or name in args or len(value) > MAX_QUERY_VALUE:
            raise NodeError(400, "invalid_form", f"unexpected query parameter {name!r}")
        args[name] = value
    return args


def cursor(value: str | None) -> int | None:
    """A list's position (a row id) from the query string; 400 if it is not one."""
    if value is None:
        return None
    if not ID.fullmatch(value):
        raise NodeError(400, "invalid_form", "a page position is a positive integer")
    return int(value)


def path_id(request: web.Request, name: str, what: str) -> int:
    raw = request.match_info[name]
    if not ID.fullmatch(raw):
        raise not_found(what)
    return int(raw)
