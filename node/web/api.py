"""The JSON API's plumbing: one route table from which both the aiohttp routes and the
OpenAPI document (node.web.openapi) are made, so the document lists exactly what is served.

Each :class:`Route` names its method, path, handler, who may call it (:class:`Auth`), the
schema of its body and query, and what it answers. :func:`install` wraps every handler so
that, in this order: the caller is authenticated and their role checked (401/403); a
cross-site request is refused (403 ``csrf``); path ids and query parameters are checked
(404 / 400); and the body must be ``application/json`` (415 ``unsupported_media_type``),
no larger than the route allows (413 ``body_too_large``, refused before it is parsed),
well-formed JSON without duplicate keys (400 ``malformed_json``) and valid by its schema
(400 ``invalid_body``, ``unknown_field``, ``missing_field``, ``invalid_field``). Handlers
get a checked :class:`Call` and stay thin.

Path segments ``{name}`` are positive integer ids, except those a route names in
``public_ids``: 16-byte public ids in lowercase hex (32 characters), given to the handler as
bytes. A malformed id in either form is 404 ``not_found``.

Lists are paginated: ``limit`` (1-100, default 50) and an opaque ``cursor``, answered with
``{"items": [...], "next": cursor or null}``; a bad cursor is 400 ``invalid_cursor``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web
from multidict import MultiMapping

from node.errors import NodeError, bad_request, invalid_field, not_found
from node.services.members import Caller, Page
from node.web.auth import Auth, authenticate, check_origin
from node.web.schema import Field, Schema, array, integer, obj, string, validate, validate_value

__all__ = [
    "API",
    "DEFAULT_LIMIT",
    "MAX_BODY",
    "MAX_LIMIT",
    "PATH_PARAM",
    "PUBLIC_ID",
    "Call",
    "Route",
    "install",
    "json_response",
    "no_content",
    "page_args",
    "page_response",
    "page_schema",
    "pagination_fields",
    "read_json",
]

API: Final = "/api/v1"
MAX_BODY: Final = 16 * 1024
DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 100
PATH_PARAM: Final = re.compile(r"\{(\w+)\}")
PATH_ID: Final = re.compile(r"[1-9][0-9]{0,17}")
PUBLIC_ID: Final = re.compile(r"[0-9a-f]{32}")
CURSOR_PREFIX: Final = b"after:"
READ_CHUNK: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class Call:
    """A request that passed the route's checks."""

    request: web.Request
    caller: Caller | None
    body: dict[str, Any]
    query: dict[str, Any]
    ids: dict[str, int]  # path parameters that are positive integer ids
    public_ids: dict[str, bytes] = field(default_factory=dict)  # those that are public ids

    @property
    def member(self) -> Caller:
        """The authenticated caller (routes that are not public always have one)."""
        if self.caller is None:  # pragma: no cover - install() guarantees it
            raise NodeError(401, "unauthenticated", "log in, or send an API token")
        return self.caller

    @property
    def app(self) -> web.Application:
        return self.request.app


Handler = Callable[[Call], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str  # under API; "{name}" segments are positive integer ids or public ids
    handler: Handler
    summary: str
    auth: Auth
    status: int = 200
    returns: Schema | None = None  # the body of a success (the item schema if paginated)
    body: Schema | None = None
    query: Schema | None = None
    paginated: bool = False
    errors: Mapping[int, Sequence[str]] = field(default_factory=dict)  # route-specific codes
    max_body: int = MAX_BODY
    tag: str = "members"
    description: str = ""
    public_ids: tuple[str, ...] = ()  # path parameters that are public ids in hex

    @property
    def full_path(self) -> str:
        return API + self.path

    @property
    def path_params(self) -> list[str]:
        return PATH_PARAM.findall(self.path)

    @property
    def query_fields(self) -> dict[str, Field]:
        fields = dict(self.query.fields) if self.query else {}
        return fields | (pagination_fields() if self.paginated else {})


def pagination_fields() -> dict[str, Field]:
    return {
        "limit": integer("items per page", required=False, minimum=1, maximum=MAX_LIMIT),
        "cursor": string("where to continue: `next` of the previous page", required=False,
                         max_length=64),
    }  # fmt: skip


def page_schema(item: Schema) -> Schema:
    return Schema(
        f"{item.name}Page",
        {
            "items": array(obj(item)),
            "next": string("cursor of the next page; null on the last", nullable=True),
        },
        f"A page of {item.name} items.",
    )


# --- installing the routes ------------------------------------------------------------------


def install(app: web.Application, routes: Sequence[Route]) -> None:
    for route in routes:
        app.router.add_route(route.method, route.full_path, _endpoint(route))


def _endpoint(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        caller = await authenticate(request, route.auth)
        check_origin(request)
        ids, public_ids = _ids(request, route)
        query = _query(request.query, route.query_fields)
        body = {} if route.body is None else await read_json(request, route.body, route.max_body)
        response = await route.handler(Call(request, caller, body, query, ids, public_ids))
        response.headers["Cache-Control"] = "no-store"
        return response

    endpoint.__name__ = route.handler.__name__
    return endpoint


def _ids(request: web.Request, route: Route) -> tuple[dict[str, int], dict[str, bytes]]:
    ids, public_ids = {}, {}
    for name in route.path_params:
        raw = request.match_info[name]
        public = name in route.public_ids
        if not (PUBLIC_ID if public else PATH_ID).fullmatch(raw):
            raise not_found(name.removesuffix("_id"))
        if public:
            public_ids[name] = bytes.fromhex(raw)
        else:
            ids[name] = int(raw)
    return ids, public_ids


def _query(raw: MultiMapping[str], fields: Mapping[str, Field]) -> dict[str, Any]:
    for name in raw:
        if name not in fields:
            raise invalid_field(name, "is not a known query parameter", code="unknown_field")
        if len(raw.getall(name)) > 1:
            raise invalid_field(name, "is given more than once")
    return {name: _query_value(fields[name], raw[name], name) for name in raw}


def _query_value(spec: Field, text: str, name: str) -> Any:
    if spec.kind == "integer":
        if not re.fullmatch(r"-?[0-9]{1,18}", text):
            raise invalid_field(name, "must be an integer")
        return validate_value(spec, int(text), name)
    if spec.kind == "boolean":
        if text not in ("true", "false"):
            raise invalid_field(name, "must be true or false")
        return text == "true"
    return validate_value(spec, text, name)


async def read_json(request: web.Request, schema: Schema, limit: int) -> dict[str, Any]:
    """The body, checked against ``schema``; at most ``limit`` bytes are ever read."""
    if request.content_type != "application/json":
        raise NodeError(415, "unsupported_media_type", "send the body as application/json")
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    raw = bytearray()
    async for chunk in request.content.iter_chunked(READ_CHUNK):
        raw += chunk
        if len(raw) > limit:
            raise _too_large(limit)
    return validate(schema, _parse(bytes(raw)))


def _too_large(limit: int) -> NodeError:
    return NodeError(413, "body_too_large", f"the body must be at most {limit} bytes")


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_pairs, parse_constant=_constant)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are both
        raise bad_request("malformed_json", "the body is not well-formed JSON") from None


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        raise ValueError("duplicate key")
    return value


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# --- answers --------------------------------------------------------------------------------


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.json_response(value, status=status, dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def page_response(page: Page) -> web.Response:
    cursor = None
    if page.after is not None:
        raw = base64.urlsafe_b64encode(CURSOR_PREFIX + str(page.after).encode())
        cursor = raw.decode().rstrip("=")
    return json_response({"items": page.items, "next": cursor})


def page_args(call: Call) -> tuple[int | None, int]:
    """The id a page starts after (from ``cursor``) and its ``limit``."""
    limit = call.query.get("limit", DEFAULT_LIMIT)
    cursor = call.query.get("cursor")
    if cursor is None:
        return None, limit
    try:
        raw = base64.urlsafe_b64decode(cursor.encode("ascii") + b"=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raw = b""
    after = raw.removeprefix(CURSOR_PREFIX)
    if not raw.startswith(CURSOR_PREFIX) or not PATH_ID.fullmatch(after.decode("latin-1")):
        raise bad_request("invalid_cursor", "the cursor is not one this node gave out")
    return int(after), limit


def no_content() -> web.Response:
    return web.Response(status=204)
