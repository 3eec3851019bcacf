"""Federation endpoints of peering (SPEC §14.2, §14.6): ``GET /.well-known/tadamun`` and
``POST /federation/v1/peering``. Bodies are canonical msgpack; errors are msgpack
``{"error": code, "detail": str}``. Thin: read, call the peering service, answer."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from node.errors import NodeError
from node.federation.descriptors import WELL_KNOWN_PATH
from node.federation.peering import MAX_PEERING_BODY, PEERING_PATH
from node.web.keys import PEERING
from protocol import encode

__all__ = ["MSGPACK", "install_peering", "msgpack_error", "read_msgpack"]

MSGPACK: Final = "application/msgpack"
_CHUNK: Final = 65_536


def msgpack_error(status: int, code: str, detail: str) -> web.Response:
    body = encode({"error": code, "detail": detail[:512]})
    return web.Response(status=status, body=body, content_type=MSGPACK, headers=_NO_STORE)


_NO_STORE: Final = {"Cache-Control": "no-store"}


async def read_msgpack(request: web.Request, limit: int) -> bytes:
    """The whole body, refused (415, 413) before more than ``limit`` bytes are read."""
    if request.content_type != MSGPACK:
        raise NodeError(415, "unsupported_media_type", f"send the body as {MSGPACK}")
    if request.content_length is not None and request.content_length > limit:
        raise NodeError(413, "too_large", f"the body must be at most {limit} bytes")
    body = bytearray()
    async for chunk in request.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > limit:
            raise NodeError(413, "too_large", f"the body must be at most {limit} bytes")
    return bytes(body)


async def well_known(request: web.Request) -> web.Response:
    body = await request.app[PEERING].document()
    return web.Response(body=body, content_type=MSGPACK, headers=_NO_STORE)


async def peering(request: web.Request) -> web.Response:
    service = request.app[PEERING]
    try:
        body = await read_msgpack(request, MAX_PEERING_BODY)
    except NodeError as exc:
        await service.refused(None, exc.code)
        return msgpack_error(exc.status, exc.code, exc.message)
    try:
        answer = await service.accept(request, body)
    except NodeError as exc:  # accept() has logged the refusal
        return msgpack_error(exc.status, exc.code, exc.message)
    return web.Response(body=answer, content_type=MSGPACK, headers=_NO_STORE)


def install_peering(app: web.Application) -> None:
    app.router.add_get(WELL_KNOWN_PATH, well_known)
    app.router.add_post(PEERING_PATH, peering)
