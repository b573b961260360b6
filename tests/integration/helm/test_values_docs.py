"""values.yaml is documented helm-docs style and agrees with values.schema.json."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from tests.integration.helm.chart import CHART_DIR

VALUES_FILE = CHART_DIR / "values.yaml"
SCHEMA_FILE = CHART_DIR / "values.schema.json"
# Kubernetes objects passed through whole: documented (and validated) as one value.
OPAQUE = {"resources", "podSecurityContext", "securityContext", "artifacts.resources"}


def _leaf_paths(values: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted paths of the values a user sets (a non-empty mapping is walked into)."""
    paths = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path not in OPAQUE:
            paths |= _leaf_paths(value, f"{path}.")
        else:
            paths.add(path)
    return paths


def _documented_paths(text: str) -> set[str]:
    """Paths whose key line follows a `# --` comment block (helm-docs' convention)."""
    documented: set[str] = set()
    stack: list[str] = []
    pending = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            pending = True
            continue
        if stripped.startswith("#") or not stripped:
            continue
        match = re.match(r"^( *)([A-Za-z][\w.-]*):", line)
        if not match:
            continue
        depth = len(match.group(1)) // 2
        stack[depth:] = [match.group(2)]
        if pending:
            documented.add(".".join(stack))
        pending = False
    return documented


def test_every_value_is_documented() -> None:
    text = VALUES_FILE.read_text(encoding="utf-8")
    undocumented = _leaf_paths(yaml.safe_load(text)) - _documented_paths(text)
    assert undocumented == set(), "add a `# --` comment above each of these in values.yaml"


def _schema_paths(schema: dict[str, Any], prefix: str = "") -> set[str]:
    paths = set()
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        if sub.get("additionalProperties") is False and path not in OPAQUE:
            paths |= _schema_paths(sub, f"{path}.")
        else:
            paths.add(path)
    return paths


def test_schema_describes_exactly_the_values() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    values = yaml.safe_load(VALUES_FILE.read_text(encoding="utf-8"))
    schema_paths = _schema_paths(schema) - {"global"}  # Helm's own, passed by parent charts
    assert schema_paths == _leaf_paths(values)


def test_schema_is_draft_07_and_closed() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["additionalProperties"] is False


def test_an_undocumented_value_is_found() -> None:
    text = "a:\n  # -- documented\n  b: 1\n  c: 2\n# -- top\nd: {}\n"
    assert _leaf_paths(yaml.safe_load(text)) - _documented_paths(text) == {"a.c"}
