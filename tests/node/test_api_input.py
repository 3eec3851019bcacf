"""Bad input to every JSON API endpoint that takes a body, on SQLite and PostgreSQL: wrong
Content-Type, oversized and malformed bodies, non-objects, unknown and missing fields, wrong
types and values out of limits. Each gets its 4xx and stable code, names the field, and
changes nothing in the database. Also bad query parameters, cursors and path ids."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from test_api_calls import valid_call_bodies
from test_api_support import (
    HOUR,
    PASSWORD,
    Answer,
    ApiNode,
    Who,
    api_node,
    check_documented,
    propose,
    sqlite_url,
)

from node.web.api import MAX_BODY, Route
from node.web.schema import Field

WRONG_TYPES: dict[str, list[Any]] = {
    "string": [5, True, [], {}],
    "integer": ["1", 1.5, True, None],
    "boolean": ["true", 1],
    "object": ["x", [], 3],
    "array": [{}, "x"],
}


def _limit_breakers(spec: Field) -> Iterator[Any]:
    if spec.kind == "string":
        if spec.max_length is not None:
            yield "x" * (spec.max_length + 1)
        if spec.min_length:
            yield ""
        if spec.choices:
            yield "no-such-choice"
        if not spec.multiline:
            yield "line\nbreak"
    if spec.kind == "array":
        if spec.min_length:
            yield [None] * (spec.min_length - 1)
        if spec.max_length is not None:
            yield [None] * (spec.max_length + 1)
    if spec.kind == "integer":
        if spec.minimum is not None:
            yield spec.minimum - 1
        if spec.maximum is not None:
            yield spec.maximum + 1


def bad_values(body: dict[str, Any], fields: dict[str, Field], path: str = "") -> Iterator[Any]:
    """(field path, body with that field made wrong) for each way a field can be wrong."""
    for name, spec in fields.items():
        where = f"{path}{name}"
        values = [v for v in WRONG_TYPES[spec.kind] if not (v is None and spec.nullable)]
        if not spec.nullable and None not in values:
            values.append(None)
        for value in [*values, *_limit_breakers(spec)]:
            yield where, {**body, name: value}
        if spec.kind == "array" and spec.items is not None and body.get(name):
            for item in WRONG_TYPES[spec.items.kind]:  # a wrong first item
                yield f"{where}[0]", {**body, name: [item, *body[name][1:]]}
        if spec.kind == "object" and spec.fields is not None and isinstance(body.get(name), dict):
            for inner, changed in bad_values(body[name], dict(spec.fields.fields), where + "."):
                yield inner, {**body, name: changed}


def missing(body: dict[str, Any], fields: dict[str, Field]) -> Iterator[tuple[str, Any]]:
    for name, spec in fields.items():
        if spec.required:
            yield name, {k: v for k, v in body.items() if k != name}


async def bodies(node: ApiNode) -> AsyncIterator[tuple[str, str, Who, Any, Route]]:
    """Each endpoint with a body: method, path, an allowed caller, a valid body, its route."""
    from test_api_support import route_for  # noqa: PLC0415

    member = await node.member("member", via="token")
    target = await node.member("member", via="token")
    organiser = await node.member("organiser", via="token")
    proposal = await propose(node, method="consent")
    valid = {
        ("POST", "/register"): (None, {
            "invite": await node.invite(), "pseudonym": "newcomer", "password": PASSWORD,
            "real_name": "Real Name", "language": "en",
            "contact": {"phone": "+964 750 000 0000", "email": "a@example.org"},
        }),
        ("POST", "/login"): (None, {"pseudonym": "founder", "password": PASSWORD}),
        ("PATCH", "/me"): (member, {
            "language": "en", "real_name": "R", "contact": {"phone": "+1 555 0100"},
            "password": "another long password", "current_password": PASSWORD,
        }),
        ("POST", "/me/tokens"): (member, {"name": "laptop"}),
        ("PUT", f"/members/{target.member_id}/role"): (node.admin, {"role": "organiser"}),
        ("POST", "/invites"): (node.admin, {"role": "member", "uses": 2, "expires_hours": 5}),
        ("PUT", "/policy"): (node.admin, {
            "approval_required": True, "call_issuers": "admins", "endorsement_by": "vote",
            "vote": {"method": "supermajority", "fraction": {"num": 2, "den": 3},
                     "quorum": {"num": 1, "den": 2}, "hours": 48},
        }),
        ("POST", "/proposals"): (organiser, {
            "title": "Join the general strike?", "body": "Text\n\twith lines", "method":
            "supermajority", "options": ["yes", "no", "later"], "fraction": {"num": 2, "den": 3},
            "quorum": {"num": 1, "den": 2}, "ballot": "open", "opens_at": node.clock.now(),
            "closes_at": node.clock.now() + HOUR,
        }),
        ("PUT", f"/proposals/{proposal}/vote"): (member, {"choice": "option", "option": 1}),
    }  # fmt: skip
    valid = {**await valid_call_bodies(node), **valid}  # the calls' first: policy set there
    for (method, path), (who, body) in valid.items():
        route = route_for(method, path)
        yield method, path, who or Who("anonymous"), body, route


def refused(answer: Answer, status: int, code: str, field: str | None = None) -> None:
    assert (answer.status, answer.code) == (status, code), answer.body
    if field is not None:
        assert repr(field) in answer.body["error"]["message"], (field, answer.body)


async def test_bad_bodies_are_refused_and_change_nothing(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        document = (await node.call("GET", "/openapi.json")).body
        async for method, path, who, body, route in bodies(node):
            assert route.body is not None
            before = await node.snapshot()
            fields = dict(route.body.fields)
            cases: list[tuple[str, str | None, dict[str, Any]]] = []  # (code, field, request)
            cases += [("invalid_field", f, {"body": b}) for f, b in bad_values(body, fields)]
            cases += [("missing_field", f, {"body": b}) for f, b in missing(body, fields)]
            cases += [
                ("unknown_field", "colour", {"body": {**body, "colour": "red"}}),
                ("invalid_body", None, {"body": [body]}),
                ("invalid_body", None, {"body": "text"}),
                ("invalid_body", None, {"raw": b"null", "ct": "application/json"}),
                ("malformed_json", None, {"raw": b'{"a": ', "ct": "application/json"}),
                ("malformed_json", None, {"raw": b'{"a": NaN}', "ct": "application/json"}),
                ("malformed_json", None, {"raw": b'{"a": 1, "a": 2}', "ct": "application/json"}),
                ("malformed_json", None, {"raw": b'{"a": "\xff"}', "ct": "application/json"}),
                ("malformed_json", None, {"raw": b"", "ct": "application/json"}),
                ("malformed_json", None, {"raw": b"[" * 8000 + b"]" * 8000,
                                          "ct": "application/json"}),
                ("unsupported_media_type", None, {"raw": json.dumps(body).encode(),
                                                  "ct": "text/plain"}),
                ("unsupported_media_type", None, {"raw": json.dumps(body).encode()}),
                ("body_too_large", None, {"raw": b" " * route.max_body + json.dumps(body).encode(),
                                          "ct": "application/json"}),
            ]  # fmt: skip
            if "contact" in body:
                contact = {**body["contact"], "fax": "1"}
                cases.append(
                    ("unknown_field", "contact.fax", {"body": {**body, "contact": contact}})
                )
            for ratio in ("quorum", "fraction"):
                if isinstance(body.get(ratio), dict):
                    extra = {**body, ratio: {**body[ratio], "extra": 1}}
                    cases.append(("unknown_field", f"{ratio}.extra", {"body": extra}))
            if "vote" in body:
                vote = {**body["vote"], "extra": 1}
                cases.append(("unknown_field", "vote.extra", {"body": {**body, "vote": vote}}))
            for code, field, request in cases:
                answer = await _send(node, method, path, who, request)
                status = {"unsupported_media_type": 415, "body_too_large": 413}.get(code, 400)
                refused(answer, status, code, field)
                check_documented(document, method, path, answer)
            # None of the refusals changed anything (no refused request could undo another's
            # change, so one comparison per endpoint shows it; a snapshot costs ~15 ms).
            assert await node.snapshot() == before, (method, path)
            # and the valid body is accepted, so the refusals above were about the input
            answer = await node.call(method, path, who, body)
            assert answer.status < 300, (method, path, answer.body)


async def _send(node: ApiNode, method: str, path: str, who: Who, request: dict[str, Any]) -> Answer:
    if "body" in request:
        return await node.call(method, path, who, request["body"])
    headers = {"Content-Type": request["ct"]} if "ct" in request else {}
    return await node.call(method, path, who, raw=request["raw"], headers=headers)


async def test_an_oversized_chunked_body_is_refused_before_parsing(tmp_path: Path) -> None:
    async with api_node(tmp_path, sqlite_url(tmp_path)) as node:
        before = await node.snapshot()

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"name": "'
            for _ in range(MAX_BODY // 1024 + 1):
                yield b"x" * 1024
            yield b'"}'

        async with node.client.post(
            "/api/v1/me/tokens", data=chunks(),
            headers={**node.admin.headers, "Content-Type": "application/json"},
        ) as response:  # fmt: skip
            assert response.status == 413
            assert (await response.json())["error"]["code"] == "body_too_large"
            assert "Content-Length" not in response.request_info.headers
        assert await node.snapshot() == before


BAD_QUERIES = [
    ("limit=0", "invalid_field", "limit"),
    ("limit=101", "invalid_field", "limit"),
    ("limit=ten", "invalid_field", "limit"),
    ("limit=1&limit=2", "invalid_field", "limit"),
    ("status=asleep", "invalid_field", "status"),
    ("role=king", "invalid_field", "role"),
    ("colour=red", "unknown_field", "colour"),
    ("cursor=not-a-cursor", "invalid_cursor", None),
    ("cursor=YWZ0ZXI6MA", "invalid_cursor", None),  # "after:0"
    ("cursor=%C3%A9", "invalid_cursor", None),
    ("cursor=" + "A" * 65, "invalid_field", "cursor"),
]


FILTERS = ("status", "role")


async def test_bad_query_parameters(tmp_path: Path) -> None:
    async with api_node(tmp_path, sqlite_url(tmp_path)) as node:
        document = (await node.call("GET", "/openapi.json")).body
        for path in ("/members", "/invites", "/audit", "/me", "/calls", "/notifications"):
            for query, code, field in BAD_QUERIES:
                want = "unknown_field" if path != "/members" and field in FILTERS else code
                if path == "/me" and want != "unknown_field":
                    continue
                answer = await node.call("GET", f"{path}?{query}", node.admin)
                refused(answer, 400, want, field)
                check_documented(document, "GET", path, answer)


async def test_bad_path_ids_are_not_found(tmp_path: Path) -> None:
    async with api_node(tmp_path, sqlite_url(tmp_path)) as node:
        document = (await node.call("GET", "/openapi.json")).body
        before = await node.snapshot()
        for path in ("/members/abc/approve", "/members/0/approve", "/members/-1/approve",
                     "/members/99999/approve", "/members/1e3/approve",
                     "/members/99999999999999999999999/approve"):  # fmt: skip
            answer = await node.call("POST", path, node.admin)
            refused(answer, 404, "not_found")
            check_documented(document, "POST", "/members/1/approve", answer)
        for method, path in (("DELETE", "/invites/77"), ("DELETE", "/me/tokens/77")):
            answer = await node.call(method, path, node.admin)
            refused(answer, 404, "not_found")
        assert await node.snapshot() == before


async def test_unknown_paths_and_methods_use_the_error_format(tmp_path: Path) -> None:
    async with api_node(tmp_path, sqlite_url(tmp_path)) as node:
        answer = await node.call("GET", "/nothing-here")
        assert (answer.status, answer.code) == (404, "not_found")
        answer = await node.call("PATCH", "/policy", node.admin, {})
        assert (answer.status, answer.code) == (405, "method_not_allowed")
