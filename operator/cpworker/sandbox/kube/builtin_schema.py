"""Decoding rules for built-in kinds, from the Kubernetes 1.32 JSON schemas shipped by the
`kubernetes-validate` package: unknown fields are dropped (or refused with
`fieldValidation=Strict`, which kubectl sends) and values of the wrong JSON type are refused,
as the real API server's decoder does. Kinds without a schema there pass unchanged."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from cpworker.sandbox.kube.errors import ApiError

Schema = dict[str, Any]
SCHEMA_DIR = "kubernetes-json-schema/v1.32.0-local-strict"
# Kinds whose own admission is richer than a type check (or whose schema is recursive).
_SKIPPED = frozenset({("apiextensions.k8s.io/v1", "CustomResourceDefinition")})


@cache
def _definitions() -> dict[str, Schema]:
    text = resources.files("kubernetes_validate").joinpath(f"{SCHEMA_DIR}/_definitions.json")
    loaded: dict[str, Schema] = json.loads(text.read_text())["$defs"]
    return loaded


@cache
def schema_for(api_version: str, kind: str) -> Schema | None:
    if (api_version, kind) in _SKIPPED:
        return None
    group, _, version = api_version.rpartition("/")
    suffix = f"{group.split('.')[0]}-{version}" if group else version
    file = resources.files("kubernetes_validate").joinpath(
        f"{SCHEMA_DIR}/{kind.lower()}-{suffix}.json"
    )
    if not file.is_file():
        return None
    loaded: Schema = json.loads(file.read_text())
    return loaded


def _resolve(schema: Schema) -> Schema:
    while "$ref" in schema:
        schema = _definitions()[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


_JSON_TYPES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


@cache
def _allowed(allowed: str | tuple[str, ...]) -> frozenset[str]:
    return frozenset({allowed} if isinstance(allowed, str) else allowed)


def _type_accepts(schema: Schema, value: Any) -> bool:
    if "oneOf" in schema:
        return any(_type_accepts(_resolve(option), value) for option in schema["oneOf"])
    allowed = schema.get("type")
    if allowed is None or value is None:
        return True
    allowed_set = _allowed(allowed if isinstance(allowed, str) else tuple(allowed))
    actual = _JSON_TYPES.get(type(value), "object")
    return actual in allowed_set or (actual == "integer" and "number" in allowed_set)


def decode(obj: Any, *, strict: bool) -> Any:
    """Prune (or, strictly, refuse) unknown fields of a built-in object; refuse wrong types."""
    if not isinstance(obj, dict):
        return obj
    schema = schema_for(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    if schema is None:
        return obj
    unknown: list[str] = []
    result = _walk(schema, obj, None, unknown)
    if strict and unknown:
        fields = ", ".join(f'unknown field "{path}"' for path in unknown)
        raise ApiError(400, "BadRequest", f"strict decoding error: {fields}")
    return result


# A field's path, built only when it is reported: (parent, key) pairs, root is None. The walk
# visits every field of every write, and formatting each path cost more than the check.
Path = tuple[Any, str | int] | None


def _path_text(path: Path) -> str:
    parts: list[str] = []
    while path is not None:
        path, key = path
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    return "".join(reversed(parts))


def _walk(schema: Schema, value: Any, path: Path, unknown: list[str]) -> Any:
    schema = _resolve(schema)
    if not _type_accepts(schema, value):
        wanted = schema.get("type")
        raise ApiError(
            400,
            "BadRequest",
            f"json: cannot unmarshal {_JSON_TYPES.get(type(value), 'object')} into field "
            f"{_path_text(path).lstrip('.') or '<root>'} of type {wanted}",
        )
    if isinstance(value, dict):
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        if properties is None and additional is None:
            return value  # free-form (RawExtension, FieldsV1, ...)
        result = {}
        for key, item in value.items():
            if properties is not None and key in properties:
                result[key] = _walk(properties[key], item, (path, key), unknown)
            elif isinstance(additional, dict):
                result[key] = _walk(additional, item, (path, key), unknown)
            elif additional is False and properties is not None:
                unknown.append(_path_text((path, key)).lstrip("."))
            else:
                result[key] = item
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [
            _walk(schema["items"], item, (path, index), unknown) for index, item in enumerate(value)
        ]
    return value
