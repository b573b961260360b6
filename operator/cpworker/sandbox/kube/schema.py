"""Structural-schema handling for custom resources, in the API server's order:
prune unknown fields and the nulls the schema does not allow, apply defaults, validate
(OpenAPI v3 subset + CEL rules).

Patterns are RE2, as the API server's Go `regexp` is: `$` is the end of the text (Python's
`re` also matches before a final newline) and the classes `\\d` and `\\w` are ASCII only.

Error texts follow the real API server's wording closely enough for clients and humans;
field paths use its notation (`spec.items[0].name`, `spec.labels[key]`).
"""

from __future__ import annotations

import copy
import importlib
import logging
from functools import lru_cache
from typing import Any

import celpy
from celpy.adapter import json_to_cel

# google-re2 (which cel-python uses for `matches`) has no type information: one typed door.
_re2: Any = importlib.import_module("re2")

logger = logging.getLogger(__name__)

Schema = dict[str, Any]
Cause = tuple[str, str, str]  # (reason type, field path, message)

_ROOT_KEPT = ("apiVersion", "kind", "metadata")


def prune(
    schema: Schema,
    value: Any,
    *,
    root: bool = False,
    path: str = "",
    dropped: list[str] | None = None,
) -> Any:
    """Drop fields the schema does not declare; their paths go to `dropped`."""
    if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
        return value
    if isinstance(value, dict):
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        result: dict[str, Any] = {}
        for key, item in value.items():
            child = f"{path}.{key}" if path else key
            if root and key in _ROOT_KEPT:
                result[key] = item
            elif properties is not None and key in properties:
                result[key] = prune(properties[key], item, path=child, dropped=dropped)
            elif isinstance(additional, dict):
                result[key] = prune(additional, item, path=child, dropped=dropped)
            elif additional is True or schema.get("x-kubernetes-preserve-unknown-fields"):
                result[key] = item
            elif dropped is not None:
                dropped.append(child)
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [
            prune(schema["items"], item, path=f"{path}[{index}]", dropped=dropped)
            for index, item in enumerate(value)
        ]
    return value


def _child(schema: Schema | None, key: str) -> Schema | None:
    if schema is None:
        return None
    properties = schema.get("properties") or {}
    if key in properties:
        sub: Schema = properties[key]
        return sub
    additional = schema.get("additionalProperties")
    return additional if isinstance(additional, dict) else None


def _non_nullable_null(value: Any, schema: Schema | None) -> bool:
    return value is None and schema is not None and not schema.get("nullable")


def prune_nulls(schema: Schema | None, value: Any) -> Any:
    """Drop the nulls the schema does not allow and has no default for (those with a default
    are defaulted later), as apiextensions-apiserver's
    `PruneNonNullableNullsWithoutDefaults` does (pkg/apiserver/schema/defaulting/
    prunenulls.go): `region: null` is as good as no region."""
    if isinstance(value, dict):
        for key in list(value):
            sub = _child(schema, key)
            if _non_nullable_null(value[key], sub) and "default" not in (sub or {}):
                del value[key]
            else:
                prune_nulls(sub, value[key])
    elif isinstance(value, list):
        items = schema.get("items") if schema is not None else None
        for item in value:
            prune_nulls(items if isinstance(items, dict) else None, item)
    return value


def apply_defaults(schema: Schema, value: Any) -> Any:
    """Defaults for absent fields and for nulls the schema does not allow (defaulting/
    algorithm.go `Default`)."""
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for key, sub in properties.items():
            if "default" in sub and (key not in value or _non_nullable_null(value[key], sub)):
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = apply_defaults(sub, value[key])
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            for key in list(value):
                if key not in properties:
                    if "default" in additional and _non_nullable_null(value[key], additional):
                        value[key] = copy.deepcopy(additional["default"])
                    value[key] = apply_defaults(additional, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], item) for item in value]
    return value


def _type_name(value: Any) -> str:  # noqa: PLR0911 - one branch per case of the protocol
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict | list):
        return f'"{_type_name(value)}"'
    if value is None:
        return '"null"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _type_ok(schema: Schema, value: Any) -> bool:
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, int | str) and not isinstance(value, bool)
    wanted = schema.get("type")
    if not wanted:
        return True
    actual = _type_name(value)
    return actual == wanted or (wanted == "number" and actual == "integer")


@lru_cache(maxsize=512)
def _pattern(pattern: str) -> Any:
    return _re2.compile(pattern)


@lru_cache(maxsize=512)
def _compiled(rule: str) -> Any:
    environment = celpy.Environment()
    return environment.program(environment.compile(rule))


def _cel_failures(schema: Schema, value: Any, old: Any, has_old: bool, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for validation in schema.get("x-kubernetes-validations") or []:
        rule = validation.get("rule", "")
        transition = "oldSelf" in rule
        if transition and not has_old:
            continue
        try:
            program = _compiled(rule)
        except Exception:  # noqa: BLE001 - a rule celpy cannot compile is skipped, loudly
            logger.warning("CEL rule not supported by the stand-in, skipped: %s", rule)
            continue
        activation = {"self": json_to_cel(value)}
        if transition:
            activation["oldSelf"] = json_to_cel(old)
        try:
            passed = bool(program.evaluate(activation))
            error = ""
        except Exception as exc:  # noqa: BLE001 - CEL evaluation errors are rule failures
            passed, error = False, str(exc)
        if passed:
            continue
        message = validation.get("message") or f"failed rule: {rule}"
        if error and not validation.get("message"):
            message = f"{message}: {error}"
        field_path = path
        if validation.get("fieldPath"):
            field_path = f"{path}{validation['fieldPath']}"
        reason = {
            "FieldValueRequired": "FieldValueRequired",
            "FieldValueForbidden": "FieldValueForbidden",
            "FieldValueDuplicate": "FieldValueDuplicate",
        }.get(validation.get("reason", ""), "FieldValueInvalid")
        causes.append((reason, field_path, f"Invalid value: {_shown(value)}: {message}"))
    return causes


def validate(
    schema: Schema, value: Any, path: str = "", old: Any = None, *, has_old: bool = False
) -> list[Cause]:
    """Validate `value` at `path`; `old` is the previous value there (for transition rules)."""
    if value is None:
        if schema.get("nullable"):
            return []
        return [
            (
                "FieldValueTypeInvalid",
                path,
                (
                    f'Invalid value: "null": {path} in body must be of type '
                    f'{schema.get("type", "object")}: "null"'
                ),
            )
        ]
    if not _type_ok(schema, value):
        wanted = "integer or string" if schema.get("x-kubernetes-int-or-string") else schema["type"]
        return [
            (
                "FieldValueTypeInvalid",
                path,
                (
                    f"Invalid value: {_shown(value)}: {path} in body must be of type {wanted}: "
                    f'"{_type_name(value)}"'
                ),
            )
        ]
    causes: list[Cause] = []
    causes += _scalar_failures(schema, value, path)
    if isinstance(value, dict):
        causes += _object_failures(schema, value, path, old if has_old else None, has_old)
    elif isinstance(value, list):
        causes += _array_failures(schema, value, path)
    if not causes:
        causes += _cel_failures(schema, value, old, has_old, path)
    return causes


def _scalar_failures(schema: Schema, value: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        supported = ", ".join(_shown(item) for item in enum)
        causes.append(
            (
                "FieldValueNotSupported",
                path,
                f"Unsupported value: {_shown(value)}: supported values: {supported}",
            )
        )
    if isinstance(value, str):
        pattern = schema.get("pattern")
        if pattern and not _pattern(pattern).search(value):
            causes.append(
                (
                    "FieldValueInvalid",
                    path,
                    f"Invalid value: {_shown(value)}: {path} in body should match '{pattern}'",
                )
            )
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            causes.append(
                (
                    "FieldValueTooLong",
                    path,
                    f"Too long: may not be more than {schema['maxLength']} bytes",
                )
            )
        if "minLength" in schema and len(value) < schema["minLength"]:
            causes.append(
                (
                    "FieldValueInvalid",
                    path,
                    (
                        f"Invalid value: {_shown(value)}: {path} in body should be at least "
                        f"{schema['minLength']} chars long"
                    ),
                )
            )
    if isinstance(value, int | float) and not isinstance(value, bool):
        causes += _number_failures(schema, value, path)
    return causes


def _number_failures(schema: Schema, value: float, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if "minimum" in schema:
        low = schema["minimum"]
        exclusive = schema.get("exclusiveMinimum") is True
        if value < low or (exclusive and value == low):
            relation = "greater than" if exclusive else "greater than or equal to"
            causes.append(
                (
                    "FieldValueInvalid",
                    path,
                    f"Invalid value: {value}: {path} in body should be {relation} {low}",
                )
            )
    if "maximum" in schema:
        high = schema["maximum"]
        exclusive = schema.get("exclusiveMaximum") is True
        if value > high or (exclusive and value == high):
            relation = "less than" if exclusive else "less than or equal to"
            causes.append(
                (
                    "FieldValueInvalid",
                    path,
                    f"Invalid value: {value}: {path} in body should be {relation} {high}",
                )
            )
    return causes


def _object_failures(
    schema: Schema, value: dict[str, Any], path: str, old: Any, has_old: bool
) -> list[Cause]:
    causes: list[Cause] = []
    prefix = f"{path}." if path else ""
    causes.extend(
        ("FieldValueRequired", f"{prefix}{required}", "Required value")
        for required in schema.get("required") or []
        if required not in value
    )
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        causes.append(
            (
                "FieldValueTooMany",
                path,
                f"Too many: {len(value)}: must have at most {schema['maxProperties']} items",
            )
        )
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        causes.append(
            (
                "FieldValueInvalid",
                path,
                (
                    f"Invalid value: {len(value)}: {path} in body should have at least "
                    f"{schema['minProperties']} properties"
                ),
            )
        )
    properties = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    old_map = old if isinstance(old, dict) else {}
    for key, item in value.items():
        if not path and key in _ROOT_KEPT:
            continue
        if key in properties:
            sub, child = properties[key], f"{prefix}{key}"
        elif isinstance(additional, dict):
            sub, child = additional, f"{path}[{key}]"
        else:
            continue
        causes += validate(sub, item, child, old_map.get(key), has_old=has_old and key in old_map)
    return causes


def _array_failures(schema: Schema, value: list[Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        causes.append(
            (
                "FieldValueTooMany",
                path,
                f"Too many: {len(value)}: must have at most {schema['maxItems']} items",
            )
        )
    if "minItems" in schema and len(value) < schema["minItems"]:
        causes.append(
            (
                "FieldValueInvalid",
                path,
                (
                    f"Invalid value: {len(value)}: {path} in body should have at least "
                    f"{schema['minItems']} items"
                ),
            )
        )
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            causes += validate(items, item, f"{path}[{index}]")
    return causes
