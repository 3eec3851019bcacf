"""The composition root: ``create_app`` builds the aiohttp application and owns every
resource, opened and closed in ``cleanup_ctx`` (STYLE.md §8)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from node.clock import Clock, SystemClock
from node.config import Config
from node.storage.db import create_engine, require_migrated, session_factory
from node.web.errors import error_middleware
from node.web.health import healthz
from node.web.keys import CLOCK, CONFIG, ENGINE, SESSIONS

__all__ = ["create_app"]


async def _database(app: web.Application) -> AsyncIterator[None]:
    engine = create_engine(app[CONFIG].database.url)
    try:
        await require_migrated(engine)  # refuse to serve an unmigrated schema
        app[ENGINE] = engine
        app[SESSIONS] = session_factory(engine)
        yield
    finally:
        await engine.dispose()


def create_app(config: Config, clock: Clock | None = None) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware], client_max_size=config.server.max_body_bytes
    )
    app[CONFIG] = config
    app[CLOCK] = clock or SystemClock()
    app.cleanup_ctx.append(_database)
    app.router.add_get("/healthz", healthz)
    return app
