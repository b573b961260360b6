"""Label and field selectors, parsed once per request and matched per object (pure)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


class SelectorError(ValueError):
    """A selector the real API server would refuse (answered as 400 BadRequest)."""


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str  # one of: in, notin, exists, !exists
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "exists":
            return self.key in labels
        if self.operator == "!exists":
            return self.key not in labels
        if self.operator == "in":
            return labels.get(self.key) in self.values
        # notin (and !=) also match objects that lack the label, as Kubernetes does.
        return labels.get(self.key) not in self.values


_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9./_-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ_RE = re.compile(r"^\s*([A-Za-z0-9./_-]+)\s*(==|!=|=)\s*([A-Za-z0-9._-]*)\s*$")


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside `in (...)` value lists."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part.strip()]


def parse_label_selector(text: str | None) -> tuple[Requirement, ...]:
    if not text:
        return ()
    requirements = []
    for clause in _split_top_level(text):
        equality = _EQ_RE.match(clause)
        if equality:
            key, op, value = equality.groups()
            requirements.append(
                Requirement(key, "notin" if op == "!=" else "in", frozenset({value}))
            )
            continue
        set_based = _SET_RE.match(clause)
        if not set_based:
            raise SelectorError(f"unable to parse requirement: {clause.strip()!r}")
        negated, key, op, values = set_based.groups()
        if op:
            if negated:
                raise SelectorError(f"unable to parse requirement: {clause.strip()!r}")
            items = frozenset(v.strip() for v in values.split(",") if v.strip())
            requirements.append(Requirement(key, op, items))
        else:
            requirements.append(Requirement(key, "!exists" if negated else "exists", frozenset()))
    return tuple(requirements)


def selector_from_match(selector: Mapping[str, Any] | None) -> tuple[Requirement, ...]:
    """A metav1.LabelSelector (matchLabels / matchExpressions) as requirements."""
    if not selector:
        return ()
    requirements = [
        Requirement(key, "in", frozenset({str(value)}))
        for key, value in (selector.get("matchLabels") or {}).items()
    ]
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    requirements.extend(
        Requirement(
            expression["key"],
            operators[expression["operator"]],
            frozenset(expression.get("values") or ()),
        )
        for expression in selector.get("matchExpressions") or []
    )
    return tuple(requirements)


def labels_match(requirements: tuple[Requirement, ...], obj: Obj) -> bool:
    if not requirements:
        return True
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(requirement.matches(labels) for requirement in requirements)


def _field_value(obj: Obj, path: str) -> str:
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, dict):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


# Field selectors the real server supports for every kind, plus the per-kind ones we use.
_COMMON_FIELDS = {"metadata.name", "metadata.namespace"}
_KIND_FIELDS: dict[str, set[str]] = {
    "Pod": {"status.phase", "spec.nodeName", "spec.restartPolicy", "spec.serviceAccountName"},
    "Event": {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
        "regarding.kind",
        "regarding.name",
        "regarding.namespace",
        "regarding.uid",
    },
    "Secret": {"type"},
    "Namespace": {"status.phase"},
    "Job": {"status.successful"},
}

FieldMatcher = Callable[[Obj], bool]


def parse_field_selector(text: str | None, kind: str) -> tuple[FieldMatcher, ...]:
    if not text:
        return ()
    allowed = _COMMON_FIELDS | _KIND_FIELDS.get(kind, set())
    matchers: list[FieldMatcher] = []
    for clause in _split_top_level(text):
        match = re.match(r"^\s*([A-Za-z.]+)\s*(==|!=|=)\s*(.*?)\s*$", clause)
        if not match:
            raise SelectorError(f"invalid selector: {clause!r}")
        field, op, value = match.groups()
        if field not in allowed:
            raise SelectorError(f'field label not supported: "{field}"')
        negate = op == "!="

        def matcher(
            obj: Obj, field: str = field, value: str = value, negate: bool = negate
        ) -> bool:
            return (_field_value(obj, field) == value) != negate

        matchers.append(matcher)
    return tuple(matchers)


def fields_match(matchers: tuple[FieldMatcher, ...], obj: Obj) -> bool:
    return all(matcher(obj) for matcher in matchers)
