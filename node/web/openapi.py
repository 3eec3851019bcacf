"""The OpenAPI 3.1 document of the JSON API, made from the same route table that installs
the routes (node.web.api), so it lists exactly what the node serves: each operation's
role, parameters, body schema, success answer and the error codes it can give."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Final

from aiohttp import web

from node.web.api import PUBLIC_ID, Call, Route, json_response, page_schema
from node.web.auth import SAFE_METHODS, Auth
from node.web.keys import OPENAPI
from node.web.schema import Field, Schema, json_schema, obj, schema_ref, string

__all__ = [
    "ERROR_SCHEMA",
    "OPENAPI_ROUTE",
    "build_document",
    "error_codes",
    "serve_openapi",
]

ERROR_SCHEMA: Final = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "string", "description": "stable, for programs"},
                "message": {"type": "string", "description": "for people; may change"},
            },
        }
    },
}
STATUS_TEXT: Final = {
    400: "Bad request", 401: "Not authenticated", 403: "Forbidden", 404: "Not found",
    409: "Conflict", 410: "Gone", 413: "Body too large", 415: "Not JSON",
    429: "Too many attempts",
}  # fmt: skip
RETRY_AFTER: Final = {
    "Retry-After": {
        "description": "seconds until the next attempt can succeed",
        "schema": {"type": "integer", "minimum": 1},
    }
}
SECURITY_SCHEMES: Final = {
    "session": {"type": "apiKey", "in": "cookie", "name": "tadamun_session"},
    "bearer": {"type": "http", "scheme": "bearer", "description": "a personal API token"},
}


def error_codes(route: Route) -> dict[int, list[str]]:
    """Every status and code the plumbing and the route itself can answer with."""
    codes: dict[int, list[str]] = {}

    def add(status: int, *names: str) -> None:
        codes.setdefault(status, [])
        codes[status] += [n for n in names if n not in codes[status]]

    if route.auth is not Auth.PUBLIC:
        add(401, "unauthenticated")
        add(403, "account_suspended", "account_not_active")
        if route.auth is not Auth.MEMBER:
            add(403, "forbidden")
    if route.method not in SAFE_METHODS:
        add(403, "csrf")
    if route.path_params:
        add(404, "not_found")
    add(400, "unknown_field")  # every route refuses query parameters it does not know
    if route.query_fields:
        add(400, "invalid_field")
    if route.paginated:
        add(400, "invalid_cursor")
    if route.body is not None:
        add(400, "malformed_json", "invalid_body", "unknown_field", "missing_field")
        add(400, "invalid_field")
        add(413, "body_too_large")
        add(415, "unsupported_media_type")
    for status, names in route.errors.items():
        add(status, *names)
    return dict(sorted(codes.items()))


def build_document(routes: Sequence[Route], title: str, version: str) -> dict[str, Any]:
    components: dict[str, Any] = {"Error": copy.deepcopy(ERROR_SCHEMA)}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.full_path, {})[route.method.lower()] = _operation(route, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "The JSON API of a Tadamun node. Errors are always "
            '{"error": {"code", "message"}}; codes are stable.',
        },
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": SECURITY_SCHEMES},
    }


def _operation(route: Route, components: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.handler.__name__,
        "summary": route.summary,
        "tags": [route.tag],
        "x-tadamun-role": route.auth.value,
        "security": [] if route.auth is Auth.PUBLIC else [{"session": []}, {"bearer": []}],
        "responses": _responses(route, components),
    }
    if route.description:
        operation["description"] = route.description
    parameters = [_path_parameter(name, route) for name in route.path_params] + [
        _query_parameter(name, spec, components) for name, spec in route.query_fields.items()
    ]
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema_ref(route.body, components)}},
        }
    return operation


def _responses(route: Route, components: dict[str, Any]) -> dict[str, Any]:
    success: dict[str, Any] = {"description": route.summary}
    returns = page_schema(route.returns) if route.paginated and route.returns else route.returns
    if returns is not None:
        success["content"] = {"application/json": {"schema": schema_ref(returns, components)}}
    responses = {str(route.status): success}
    for status, names in error_codes(route).items():
        responses[str(status)] = {
            "description": f"{STATUS_TEXT.get(status, 'Error')}: " + ", ".join(names),
            "x-error-codes": names,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        if status == 429:
            responses[str(status)]["headers"] = copy.deepcopy(RETRY_AFTER)
    return responses


def _path_parameter(name: str, route: Route) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "minimum": 1}
    if name in route.public_ids:
        schema = {"type": "string", "pattern": PUBLIC_ID.pattern, "description": "public id, hex"}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query_parameter(name: str, spec: Field, components: dict[str, Any]) -> dict[str, Any]:
    parameter = {
        "name": name,
        "in": "query",
        "required": spec.required,
        "schema": json_schema(spec, components),
    }
    if spec.doc:
        parameter["description"] = spec.doc
    return parameter


async def serve_openapi(call: Call) -> web.Response:
    """``GET /api/v1/openapi.json``: this document."""
    return json_response(call.app[OPENAPI])


DOCUMENT: Final = Schema(
    "OpenApiDocument",
    {
        "openapi": string(choices=("3.1.0",)),
        "info": obj(None),
        "paths": obj(None),
        "components": obj(None),
    },
)
OPENAPI_ROUTE: Final = Route(
    "GET", "/openapi.json", serve_openapi, "This OpenAPI 3.1 document", Auth.PUBLIC,
    returns=DOCUMENT, tag="meta",
)  # fmt: skip
