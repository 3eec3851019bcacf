"""``GET /healthz``: is the database reachable, and is its schema at the head revision?"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from node.storage.db import migration_state
from node.web.keys import ENGINE

__all__ = ["healthz"]


async def healthz(request: web.Request) -> web.Response:
    try:
        state = await migration_state(request.app[ENGINE])
    except (SQLAlchemyError, OSError) as exc:
        body = {"status": "unavailable", "database": "unreachable", "detail": type(exc).__name__}
        return web.json_response(body, status=503)
    migrated = state.up_to_date
    return web.json_response(
        {
            "status": "ok" if migrated else "unavailable",
            "database": "reachable",
            "migrations": {"current": state.current, "head": state.head, "up_to_date": migrated},
        },
        status=200 if migrated else 503,
    )
