"""Validate JSON values against botocore's CodePipeline service model.

botocore's own ParamValidator checks required members, types and some ranges, but not string
patterns, string lengths or enums. This module walks a shape generically and checks all of
them, so the same code validates every request the stand-in receives (input shapes) and every
response it sends (output shapes, in strict conformance mode).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape

SERVICE_NAME = "codepipeline"


@functools.cache
def service_model() -> ServiceModel:
    """The service model shipped with the installed botocore: the stand-in's source of truth."""
    return botocore.session.get_session().get_service_model(SERVICE_NAME)


@functools.cache
def operation_model(name: str) -> OperationModel:
    return service_model().operation_model(name)


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _length(value: str | list[Any] | dict[str, Any]) -> int:
    return len(value)


def _check_bounds(shape: Shape, size: float, what: str, path: str) -> Iterator[str]:
    minimum = shape.metadata.get("min")
    maximum = shape.metadata.get("max")
    if minimum is not None and size < minimum:
        yield f"{path}: {what} {size:g} is below the minimum of {minimum}"
    if maximum is not None and size > maximum:
        yield f"{path}: {what} {size:g} is above the maximum of {maximum}"


def _string_problems(shape: Shape, value: object, path: str) -> Iterator[str]:
    if not isinstance(value, str):
        yield f"{path}: expected a string, got {type(value).__name__}"
        return
    enum: list[str] = shape.metadata.get("enum", [])
    if enum and value not in enum:
        yield f"{path}: {value!r} is not one of {', '.join(enum)}"
    yield from _check_bounds(shape, _length(value), "length", path)
    pattern = shape.metadata.get("pattern")
    # AWS treats model patterns as whole-value matches ("my pipeline" is not a valid name).
    if pattern and not _compiled(pattern).fullmatch(value):
        shown = "(sensitive value)" if shape.metadata.get("sensitive") else repr(value[:80])
        yield f"{path}: {shown} does not match the pattern {pattern}"


def _number_problems(shape: Shape, value: object, path: str) -> Iterator[str]:
    integral = shape.type_name in {"integer", "long"}
    if isinstance(value, bool) or not isinstance(value, int | float):
        yield f"{path}: expected a number, got {type(value).__name__}"
        return
    if integral and isinstance(value, float) and not value.is_integer():
        yield f"{path}: expected an integer, got {value!r}"
        return
    yield from _check_bounds(shape, value, "value", path)


def _structure_problems(
    shape: StructureShape, value: object, path: str, *, allow_unknown: bool
) -> Iterator[str]:
    if not isinstance(value, dict):
        yield f"{path}: expected an object, got {type(value).__name__}"
        return
    for name in shape.required_members:
        if value.get(name) is None:
            yield f"{path}: missing required member {name!r}"
    for name, member_value in value.items():
        member = shape.members.get(name)
        if member is None:
            if not allow_unknown:
                yield f"{path}: unknown member {name!r}"
            continue
        if member_value is None:
            continue
        yield from problems(member, member_value, f"{path}.{name}", allow_unknown=allow_unknown)


def _list_problems(
    shape: ListShape, value: object, path: str, *, allow_unknown: bool
) -> Iterator[str]:
    if not isinstance(value, list):
        yield f"{path}: expected a list, got {type(value).__name__}"
        return
    yield from _check_bounds(shape, len(value), "item count", path)
    for index, item in enumerate(value):
        yield from problems(shape.member, item, f"{path}[{index}]", allow_unknown=allow_unknown)


def _map_problems(
    shape: MapShape, value: object, path: str, *, allow_unknown: bool
) -> Iterator[str]:
    if not isinstance(value, dict):
        yield f"{path}: expected an object, got {type(value).__name__}"
        return
    yield from _check_bounds(shape, len(value), "entry count", path)
    for key, item in value.items():
        yield from problems(shape.key, key, f"{path} key", allow_unknown=allow_unknown)
        yield from problems(shape.value, item, f"{path}[{key!r}]", allow_unknown=allow_unknown)


def problems(
    shape: Shape, value: object, path: str, *, allow_unknown: bool = False
) -> Iterator[str]:
    """Yield one readable message per way `value` breaks `shape` (empty when it conforms).

    `allow_unknown` tolerates members the model does not know (clients built from a newer model
    may send them); responses are checked without it, since the stand-in must never invent members.
    """
    kind = shape.type_name
    if isinstance(shape, StructureShape):
        yield from _structure_problems(shape, value, path, allow_unknown=allow_unknown)
    elif isinstance(shape, ListShape):
        yield from _list_problems(shape, value, path, allow_unknown=allow_unknown)
    elif isinstance(shape, MapShape):
        yield from _map_problems(shape, value, path, allow_unknown=allow_unknown)
    elif kind == "string":
        yield from _string_problems(shape, value, path)
    elif kind in {"integer", "long", "float", "double"}:
        yield from _number_problems(shape, value, path)
    elif kind == "boolean":
        if not isinstance(value, bool):
            yield f"{path}: expected a boolean, got {type(value).__name__}"
    elif kind == "timestamp":
        # AWS JSON 1.1 sends timestamps as epoch seconds.
        if isinstance(value, bool) or not isinstance(value, int | float):
            yield f"{path}: expected a timestamp (epoch seconds), got {type(value).__name__}"
    elif kind == "blob" and not isinstance(value, str):
        yield f"{path}: expected a base64 string, got {type(value).__name__}"
    # Document and other open types carry no constraints in this model.


def input_problems(operation: str, body: dict[str, Any]) -> list[str]:
    shape = operation_model(operation).input_shape
    if shape is None:
        return [] if not body else ["this operation takes no input"]
    return list(problems(shape, body, operation, allow_unknown=True))


def output_problems(operation: str, body: dict[str, Any]) -> list[str]:
    shape = operation_model(operation).output_shape
    if shape is None:
        return [] if not body else [f"{operation}: output must be empty, got {sorted(body)}"]
    return list(problems(shape, body, f"{operation}(output)"))


def declared_errors(operation: str) -> frozenset[str]:
    return frozenset(error.name for error in operation_model(operation).error_shapes)
