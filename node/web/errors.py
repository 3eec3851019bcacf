"""One middleware maps every error to the same JSON shape: {"error": {"code", "message"}}."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from node.errors import NodeError

__all__ = ["error_middleware", "json_error"]

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except NodeError as exc:
        log.info("request refused: %s %s: %s", request.method, request.path, exc)
        response = json_error(exc.status, exc.code, exc.message)
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(max(1, exc.retry_after))
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        return json_error(exc.status, code, exc.reason)
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        return json_error(500, "internal_error", "internal error; see the server log")
