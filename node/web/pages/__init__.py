"""The web interface: server-rendered pages (Jinja2 through aiohttp-jinja2) in English,
Arabic and Sorani Kurdish, with our own small stylesheet, working without JavaScript.

One module per area holds thin handlers (``account``, ``proposals``, ``profile``,
``admin``, ``peers``, ``coalitions``); ``core`` is the plumbing, ``security`` the CSRF
tokens and headers, ``forms`` the checks of submitted forms, ``i18n`` the catalogs and
locale formats, ``nav`` the menus. A new area adds its module's ``ROUTES`` to :data:`AREAS`
and its menu line to ``nav``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, cast

import aiohttp_jinja2
import jinja2
from aiohttp import web

from node.web.keys import SECRETS
from node.web.pages import (
    account,
    admin,
    calls,
    coalitions,
    coordinate,
    peers,
    profile,
    proposals,
)
from node.web.pages.core import PAGES, PageKit, page_middleware
from node.web.pages.i18n import load_catalogs
from node.web.pages.routes import PageRoute
from node.web.pages.security import CSRF_LABEL
from node.web.pages.static import load_assets, static_handler

__all__ = ["AREAS", "TEMPLATES", "page_routes", "setup_pages"]

TEMPLATES: Final = Path(__file__).resolve().parent.parent / "templates"
AREAS: Final = (
    account.ROUTES, proposals.ROUTES, coordinate.ROUTES, calls.ROUTES, profile.ROUTES,
    admin.ROUTES,
    peers.ROUTES, coalitions.ROUTES,
)  # fmt: skip


def page_routes() -> tuple[PageRoute, ...]:
    return tuple(route for area in AREAS for route in area)


@jinja2.pass_context
def _gettext(context: jinja2.runtime.Context, message: str) -> str:
    return str(context["lang"].translations.gettext(message))


@jinja2.pass_context
def _ngettext(context: jinja2.runtime.Context, singular: str, plural: str, n: int) -> str:
    return str(context["lang"].translations.ngettext(singular, plural, n))


def template_environment(app: web.Application) -> jinja2.Environment:
    """Autoescaping everywhere; gettext takes the language of the page being rendered."""
    env = aiohttp_jinja2.setup(
        app, loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
        extensions=["jinja2.ext.i18n"], undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True, default_helpers=False,
    )  # fmt: skip
    cast(Any, env).install_gettext_callables(_gettext, _ngettext, newstyle=True)
    return env


def setup_pages(app: web.Application) -> None:
    """Add the pages to the node's app (``app[SECRETS]`` must be set)."""
    template_environment(app)
    assets = load_assets()
    urls = {name: f"/static/{name}?v={asset.version}" for name, asset in assets.items()}
    app[PAGES] = PageKit.build(load_catalogs(), app[SECRETS].subkey(CSRF_LABEL), urls)
    app.router.add_get("/static/{name}", static_handler(assets), name="static")
    for route in page_routes():
        app.router.add_route(route.method, route.path, route.handler, name=f"page:{route.name}")
    app.middlewares.append(page_middleware)
