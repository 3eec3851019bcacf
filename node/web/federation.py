"""Federation endpoints of the inbox (SPEC §14.3-§14.5): ``POST /federation/v1/inbox``,
``GET /federation/v1/log`` and ``GET /federation/v1/keys``. Thin: limit and read the body,
check the transport signature, decode strictly, call the inbox, answer in msgpack. Errors
are msgpack ``{"error": code, "detail": str}``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from aiohttp import web

from node.errors import NodeError
from node.federation.transport import TransportError
from node.federation.wire import (
    MAX_LOG_LIMIT,
    decode_inbox_request,
    encode_batch_result,
    encode_log_page,
)
from node.web.federation_peering import MSGPACK, msgpack_error, read_msgpack
from node.web.keys import CLOCK, CONFIG, INBOX, TRANSPORT
from protocol import ProtocolError, encode

__all__ = ["INBOX_PATH", "KEYS_PATH", "LOG_PATH", "install_inbox"]

INBOX_PATH: Final = "/federation/v1/inbox"
LOG_PATH: Final = "/federation/v1/log"
KEYS_PATH: Final = "/federation/v1/keys"
_NODE_ID: Final = re.compile(r"[0-9a-f]{64}")
_COUNT: Final = re.compile(r"0|[1-9][0-9]{0,15}")
_HEADERS: Final = {"Cache-Control": "no-store"}

Handler = Callable[[web.Request], Awaitable[web.Response]]


def _msgpack_errors(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except TransportError as exc:  # before anything is known of the sender
            await request.app[INBOX].refused(None, exc.code, now=request.app[CLOCK].now())
            return msgpack_error(exc.status, exc.code, exc.message)
        except NodeError as exc:
            return msgpack_error(exc.status, exc.code, exc.message)

    return wrapped


def _answer(body: bytes) -> web.Response:
    return web.Response(body=body, content_type=MSGPACK, headers=_HEADERS)


def _bad(exc: ProtocolError) -> NodeError:
    return NodeError(400, str(exc.code), exc.detail or str(exc.code))


@_msgpack_errors
async def post_inbox(request: web.Request) -> web.Response:
    app = request.app
    limit = app[CONFIG].server.max_body_bytes
    body = await read_msgpack(request, limit)
    verified = await app[TRANSPORT].check_incoming(request, body)  # nothing written yet
    try:
        batch = decode_inbox_request(body, limit)
    except ProtocolError as exc:
        await app[INBOX].record(verified.record)
        raise _bad(exc) from exc
    result = await app[INBOX].receive(  # the nonce: in the batch's first write transaction
        verified.sender, batch.items, batch.keys, now=app[CLOCK].now(), first_write=verified.record
    )
    return _answer(encode_batch_result(result))


@_msgpack_errors
async def get_log(request: web.Request) -> web.Response:
    app = request.app
    sender = await _sender(request, b"")
    query = _query(request.query, required={"origin"}, optional={"after", "limit"})
    origin = _node_id("origin", query["origin"])
    after = _count("after", query.get("after", "0"), 0)
    limit = _count("limit", query.get("limit", str(MAX_LOG_LIMIT)), 1, MAX_LOG_LIMIT)
    page = await app[INBOX].log_page(sender, origin, after=after, limit=limit, now=app[CLOCK].now())
    return _answer(encode_log_page(page))


@_msgpack_errors
async def get_keys(request: web.Request) -> web.Response:
    app = request.app
    sender = await _sender(request, b"")
    node = _node_id("node", _query(request.query, required={"node"}, optional=set())["node"])
    keys = await app[INBOX].key_log(sender, node, now=app[CLOCK].now())
    return _answer(encode({"keys": keys, "node": node}))


async def _sender(request: web.Request, body: bytes) -> bytes:
    """The signing node, its nonce recorded in the inbox's turn at the database."""
    async with request.app[INBOX].turn():
        return await request.app[TRANSPORT].verify_incoming(request, body)


def _query(query: Mapping[str, str], *, required: set[str], optional: set[str]) -> dict[str, str]:
    names = [name for name, _ in query.items()]
    if len(set(names)) != len(names) or not required <= set(names) <= required | optional:
        raise NodeError(400, "malformed", f"query takes {sorted(required | optional)}, once each")
    return dict(query)


def _node_id(name: str, text: str) -> bytes:
    if not _NODE_ID.fullmatch(text):
        raise NodeError(400, "invalid_field", f"{name} must be a node id (64 lower-case hex)")
    return bytes.fromhex(text)


def _count(name: str, text: str, low: int, high: int = 2**53 - 1) -> int:
    if not _COUNT.fullmatch(text) or not low <= int(text) <= high:
        raise NodeError(400, "invalid_field", f"{name} must be an integer in [{low}, {high}]")
    return int(text)


def install_inbox(app: web.Application) -> None:
    app.router.add_post(INBOX_PATH, post_inbox)
    app.router.add_get(LOG_PATH, get_log)
    app.router.add_get(KEYS_PATH, get_keys)
