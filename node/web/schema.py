"""A small declarative schema for the JSON API: one description of each request (and
response) body, used both to validate what clients send and to write the OpenAPI document,
so the two cannot drift apart.

A :class:`Schema` is a named set of :class:`Field` s. :func:`validate` refuses unknown fields
(``unknown_field``), missing ones (``missing_field``) and values of the wrong type or outside
their limits (``invalid_field``), each with a message naming the field by its path
(``contact.email``). :func:`json_schema` gives the JSON Schema (2020-12, as OpenAPI 3.1 uses).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from node.errors import bad_request, invalid_field

__all__ = [
    "Field",
    "Schema",
    "array",
    "boolean",
    "extend",
    "integer",
    "json_schema",
    "obj",
    "schema_ref",
    "string",
    "validate",
    "validate_value",
]

Kind = Literal["string", "integer", "boolean", "object", "array"]
# Control characters, except tab and line breaks where a field allows several lines.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MULTILINE_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class Field:
    kind: Kind
    doc: str = ""
    required: bool = True
    nullable: bool = False
    min_length: int | None = None  # characters of a string, items of an array
    max_length: int | None = None
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    pattern: str | None = None
    multiline: bool = False
    fields: Schema | None = None  # kind "object"
    items: Field | None = None  # kind "array"
    write_only: bool = False  # documented as writeOnly (passwords)


@dataclass(frozen=True, slots=True)
class Schema:
    """A named JSON object: its name is its component name in the OpenAPI document."""

    name: str
    fields: Mapping[str, Field] = field(default_factory=dict)
    doc: str = ""


def string(doc: str = "", **limits: Any) -> Field:
    return Field("string", doc, **limits)


def integer(doc: str = "", **limits: Any) -> Field:
    return Field("integer", doc, **limits)


def boolean(doc: str = "", **options: Any) -> Field:
    return Field("boolean", doc, **options)


def obj(schema: Schema | None, doc: str = "", **options: Any) -> Field:
    """An object of ``schema``, or any JSON object if it is None."""
    return Field("object", doc or (schema.doc if schema else ""), fields=schema, **options)


def extend(schema: Schema, name: str, doc: str = "", **fields: Field) -> Schema:
    """A new schema: ``schema``'s fields and these."""
    return Schema(name, {**schema.fields, **fields}, doc or schema.doc)


def array(items: Field, doc: str = "", **limits: Any) -> Field:
    return Field("array", doc, items=items, **limits)


# --- validation -----------------------------------------------------------------------------


def validate(schema: Schema, value: object, path: str = "") -> dict[str, Any]:
    """The checked object (a new dict), or a 400 naming the first field that is wrong."""
    if not isinstance(value, dict):
        if not path:
            raise bad_request("invalid_body", "the body must be a JSON object")
        raise invalid_field(path, "must be an object")
    for name in value:
        if name not in schema.fields:
            raise invalid_field(_join(path, name), "is not a known field", code="unknown_field")
    checked: dict[str, Any] = {}
    for name, spec in schema.fields.items():
        where = _join(path, name)
        if name in value:
            checked[name] = validate_value(spec, value[name], where)
        elif spec.required:
            raise invalid_field(where, "is required", code="missing_field")
    return checked


def validate_value(spec: Field, value: object, path: str) -> Any:
    if value is None:
        if spec.nullable:
            return None
        raise invalid_field(path, "must not be null")
    return _CHECKS[spec.kind](spec, value, path)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _string(spec: Field, value: object, path: str) -> str:
    if not isinstance(value, str):
        raise invalid_field(path, "must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid_field(path, "must be valid Unicode text") from None
    if (MULTILINE_CONTROL if spec.multiline else CONTROL).search(value):
        raise invalid_field(path, "must not contain control characters")
    _length(spec, len(value), path, "characters")
    if spec.choices and value not in spec.choices:
        raise invalid_field(path, "must be one of " + ", ".join(spec.choices))
    if spec.pattern and not re.fullmatch(spec.pattern, value):
        raise invalid_field(path, "is not in the expected format")
    return value


def _integer(spec: Field, value: object, path: str) -> int:
    if type(value) is not int:
        raise invalid_field(path, "must be an integer")
    if spec.minimum is not None and value < spec.minimum:
        raise invalid_field(path, f"must be at least {spec.minimum}")
    if spec.maximum is not None and value > spec.maximum:
        raise invalid_field(path, f"must be at most {spec.maximum}")
    return value


def _boolean(_: Field, value: object, path: str) -> bool:
    if type(value) is not bool:
        raise invalid_field(path, "must be true or false")
    return value


def _object(spec: Field, value: object, path: str) -> dict[str, Any]:
    if spec.fields is None:
        if not isinstance(value, dict):
            raise invalid_field(path, "must be an object")
        return value
    return validate(spec.fields, value, path)


def _array(spec: Field, value: object, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise invalid_field(path, "must be an array")
    _length(spec, len(value), path, "items")
    items = _items(spec)
    return [validate_value(items, item, f"{path}[{i}]") for i, item in enumerate(value)]


def _fields(spec: Field) -> Schema:
    """An object's schema; an object field without one holds any JSON object."""
    return spec.fields or Schema("", {})


def _items(spec: Field) -> Field:
    if spec.items is None:
        raise TypeError("an array field needs an item field")
    return spec.items


def _length(spec: Field, length: int, path: str, unit: str) -> None:
    if spec.min_length is not None and length < spec.min_length:
        raise invalid_field(path, f"must have at least {spec.min_length} {unit}")
    if spec.max_length is not None and length > spec.max_length:
        raise invalid_field(path, f"must have at most {spec.max_length} {unit}")


_CHECKS = {
    "string": _string,
    "integer": _integer,
    "boolean": _boolean,
    "object": _object,
    "array": _array,
}


# --- JSON Schema ----------------------------------------------------------------------------


def schema_ref(schema: Schema, components: dict[str, Any]) -> dict[str, Any]:
    """A ``$ref`` to ``schema``, adding it (and what it refers to) to ``components``."""
    if schema.name not in components:
        components[schema.name] = {}  # placeholder first: a schema may refer to itself
        body: dict[str, Any] = {
            "type": "object",
            "properties": {n: json_schema(f, components) for n, f in schema.fields.items()},
            "additionalProperties": False,
        }
        required = [name for name, spec in schema.fields.items() if spec.required]
        if required:
            body["required"] = required
        if schema.doc:
            body["description"] = schema.doc
        components[schema.name] = body
    return {"$ref": f"#/components/schemas/{schema.name}"}


def json_schema(spec: Field, components: dict[str, Any]) -> dict[str, Any]:
    if spec.kind == "object" and spec.fields is None:
        return _described({"type": ["object", "null"] if spec.nullable else "object"}, spec)
    if spec.kind == "object":
        ref = schema_ref(_fields(spec), components)
        out: dict[str, Any] = {"anyOf": [ref, {"type": "null"}]} if spec.nullable else ref
        return _described(out, spec)
    out = {"type": [spec.kind, "null"] if spec.nullable else spec.kind}
    limits = {
        "minLength" if spec.kind == "string" else "minItems": spec.min_length,
        "maxLength" if spec.kind == "string" else "maxItems": spec.max_length,
        "minimum": spec.minimum,
        "maximum": spec.maximum,
        "pattern": spec.pattern,
    }
    out |= {key: value for key, value in limits.items() if value is not None}
    if spec.choices:
        out["enum"] = [*spec.choices, None] if spec.nullable else list(spec.choices)
    if spec.kind == "array":
        out["items"] = json_schema(_items(spec), components)
    if spec.write_only:
        out["writeOnly"] = True
    return _described(out, spec)


def _described(out: dict[str, Any], spec: Field) -> dict[str, Any]:
    if spec.doc:
        # Siblings of $ref are allowed in OpenAPI 3.1 (JSON Schema 2020-12).
        out = {**out, "description": spec.doc}
    return out
