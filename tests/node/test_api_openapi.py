"""The OpenAPI document at /api/v1/openapi.json is well formed (OpenAPI 3.1, every reference
resolves, every operation complete) and lists exactly the routes the node serves; plus the
secrets and password hashing the API stands on."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_api_support import api_node

from node.services.passwords import PRODUCTION, Argon2Params, PasswordHasher
from node.services.secrets import NodeSecrets, SecretMissing, load_secrets

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "$ref":
                yield inner
            else:
                yield from refs(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from refs(inner)


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def check_schema(schema: dict[str, Any], where: str) -> None:
    """A few structural rules of JSON Schema 2020-12 that a typo would break."""
    allowed = {
        "type", "properties", "required", "additionalProperties", "items", "enum", "minimum",
        "maximum", "minLength", "maxLength", "minItems", "maxItems", "pattern", "description",
        "anyOf", "$ref", "writeOnly",
    }  # fmt: skip
    assert set(schema) <= allowed, (where, set(schema) - allowed)
    if "required" in schema:
        assert set(schema["required"]) <= set(schema["properties"]), where
    for name, inner in schema.get("properties", {}).items():
        check_schema(inner, f"{where}.{name}")
    for inner in schema.get("anyOf", []):
        check_schema(inner, where)
    if "items" in schema:
        check_schema(schema["items"], f"{where}[]")
    if "pattern" in schema:
        re.compile(schema["pattern"])


async def test_the_document_matches_the_router(tmp_path: Path) -> None:
    async with api_node(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'node.db'}") as node:
        answer = await node.call("GET", "/openapi.json")
        assert answer.status == 200
        document = answer.body
        served = {
            (resource.canonical, route.method.lower())
            for resource in node.client.app.router.resources()
            for route in resource
            if resource.canonical.startswith("/api/v1/")
        }
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"]
    assert document["info"]["version"]
    documented = {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }
    assert documented == served
    assert len(served) >= 20

    operation_ids = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            operation_ids.append(operation["operationId"])
            assert operation["summary"], where
            assert operation["x-tadamun-role"] in {"public", "member", "organiser", "admin"}
            params = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert params == set(re.findall(r"\{(\w+)\}", path)), where
            responses = operation["responses"]
            assert any(code.startswith("2") for code in responses), where
            for code, response in responses.items():
                assert re.fullmatch(r"[1-5]\d\d", code), where
                assert response["description"], where
                if int(code) >= 400:
                    assert response["x-error-codes"], where
            if "requestBody" in operation:
                assert method in {"post", "put", "patch"}, where
                assert list(operation["requestBody"]["content"]) == ["application/json"]
                assert {"413", "415"} <= set(responses), where
            if operation["x-tadamun-role"] != "public":
                assert {"401", "403"} <= set(responses), where
                assert operation["security"] == [{"session": []}, {"bearer": []}]
    assert len(operation_ids) == len(set(operation_ids))

    for ref in refs(document):
        assert isinstance(resolve(document, ref), dict), ref
    for name, schema in document["components"]["schemas"].items():
        check_schema(schema, name)
    used = {ref.rsplit("/", 1)[1] for ref in refs(document)}
    assert used == set(document["components"]["schemas"])  # nothing unused


# --- secrets and passwords ------------------------------------------------------------------


def test_contact_sealing_is_bound_to_the_member() -> None:
    secrets = NodeSecrets(bytes(range(32)))
    sealed = secrets.seal_contact(7, {"email": "a@example.org"})
    assert secrets.open_contact(7, sealed) == {"email": "a@example.org"}
    assert sealed != secrets.seal_contact(7, {"email": "a@example.org"})  # fresh nonce
    assert b"example" not in sealed
    with pytest.raises(ValueError, match="does not open"):
        secrets.open_contact(8, sealed)  # moved onto another member's row
    with pytest.raises(ValueError, match="does not open"):
        NodeSecrets(bytes(32)).open_contact(7, sealed)  # another node's secret
    assert secrets.subkey("a") != secrets.subkey("b")
    assert secrets.account_key("Kawa") == secrets.account_key("kAWA")


def test_a_missing_secret_is_reported(tmp_path: Path) -> None:
    with pytest.raises(SecretMissing, match="restore it"):
        load_secrets(tmp_path)


def test_password_hashes() -> None:
    assert PRODUCTION.memory_kib >= 19 * 1024
    assert PRODUCTION.iterations >= 2
    cheap = PasswordHasher(Argon2Params(memory_kib=64, iterations=1))
    encoded = cheap.hash("a long password")
    assert encoded.startswith("$argon2id$v=19$m=64,t=1,p=1$")
    assert cheap.verify("a long password", encoded)
    assert not cheap.verify("a long passwore", encoded)
    assert not cheap.verify("a long password", None)  # an unknown account: the dummy hash
    assert not cheap.verify("a long password", "")  # a deleted account
    assert not cheap.verify("a long password", "$argon2id$garbage")
    assert encoded != cheap.hash("a long password")  # salted
    assert not cheap.needs_rehash(encoded)
    stronger = PasswordHasher(Argon2Params(memory_kib=128, iterations=2))
    assert stronger.needs_rehash(encoded)
    assert stronger.verify("a long password", encoded)  # old hashes keep working
