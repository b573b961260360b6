"""Render the CustomActionWorker CRD (apiextensions.k8s.io/v1) from `cpworker.models`.

`cpworker crd` prints it; `cpworker crd --output DIR` writes
`DIR/cpworker.io_customactionworkers.yaml` (what `make crds` commits to `crds/`).

Pydantic's JSON schema is not a Kubernetes *structural* schema, so it is rewritten: `$ref`s
inlined, `anyOf [X, null]` (optional fields) reduced to X, titles and `default: null`
dropped, `additionalProperties` removed next to `properties`, `propertyNames` dropped (its
checks are CEL rules in the models). Any keyword outside the structural subset makes the
render fail, so pydantic changes cannot slip junk into the CRD.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel

from cpworker import names
from cpworker.models import SPEC_VALIDATIONS, CustomActionWorkerSpec, CustomActionWorkerStatus

FILE_NAME: Final = f"{names.GROUP}_{names.PLURAL}.yaml"

# Keywords a structural schema may carry (apiextensions.k8s.io/v1 JSONSchemaProps, minus the
# ones structural schemas forbid or we never need).
_ALLOWED: Final = frozenset(
    {
        "type",
        "description",
        "properties",
        "required",
        "items",
        "additionalProperties",
        "enum",
        "format",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "default",
        "nullable",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-validations",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-map-type",
        "x-kubernetes-int-or-string",
        "x-kubernetes-embedded-resource",
    }
)
_DROPPED: Final = frozenset({"title", "propertyNames"})


class SchemaError(ValueError):
    """The models produced something that is not a structural schema."""


def _resolve(node: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    """Inline a `$ref` (keeping sibling keys such as the field's description)."""
    result = dict(node)
    ref = result.pop("$ref", None)
    if ref is not None:
        target = defs[str(ref).rsplit("/", 1)[-1]]
        result = {**_resolve(target, defs), **result}
    return result


def _without_null(node: dict[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    """`anyOf: [X, {type: null}]` (an optional field) becomes X with the outer keys."""
    options = node.get("anyOf")
    if options is None:
        return node
    concrete = [o for o in options if o.get("type") != "null"]
    if len(concrete) != 1 or len(options) - len(concrete) > 1:
        raise SchemaError(f"unsupported anyOf in the models: {options}")
    outer = {k: v for k, v in node.items() if k != "anyOf"}
    return {**_resolve(concrete[0], defs), **outer}


def _key_order(key: str) -> tuple[int, str]:
    """type and description first, then the rest alphabetically: a readable, stable file."""
    first = {"type": 0, "description": 1}
    return (first.get(key, 2), key)


def _structural(
    node: Mapping[str, Any], defs: Mapping[str, Any], *, defaults: bool, field: bool = True
) -> Any:
    """Rewrite one schema node; `field`: a named field, which `kubectl explain` describes."""
    result = _without_null(_resolve(node, defs), defs)
    out: dict[str, Any] = {}
    for key, value in result.items():
        if key in _DROPPED or (key == "default" and (value is None or not defaults)):
            continue
        if key not in _ALLOWED:
            raise SchemaError(f"keyword {key!r} is not allowed in a structural schema")
        if key == "properties":
            out[key] = {
                name: _structural(child, defs, defaults=defaults) for name, child in value.items()
            }
        elif key in {"items", "additionalProperties"} and isinstance(value, Mapping):
            out[key] = _structural(value, defs, defaults=defaults, field=False)
        else:
            out[key] = copy.deepcopy(value)
    if "properties" in out or out.get("additionalProperties") is True:
        # Structural schemas forbid additionalProperties next to properties (and `true`);
        # unknown fields are pruned by the API server instead.
        out.pop("additionalProperties", None)
    if out.get("x-kubernetes-preserve-unknown-fields"):
        out["type"] = "object"
    out = {key: out[key] for key in sorted(out, key=_key_order)}
    if "type" not in out:
        raise SchemaError(f"schema without a type: {sorted(out)}")
    if field and "description" not in out:
        raise SchemaError(f"schema without a description: {sorted(out)}")
    return out


def model_schema(model: type[BaseModel], *, defaults: bool = True) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a pydantic model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    if "description" not in raw and model.__doc__:
        raw["description"] = model.__doc__.strip().splitlines()[0]
    schema: dict[str, Any] = _structural(raw, defs, defaults=defaults)
    return schema


def _spec_schema() -> dict[str, Any]:
    schema = model_schema(CustomActionWorkerSpec)
    schema["x-kubernetes-validations"] = copy.deepcopy(SPEC_VALIDATIONS)
    return schema


def _column(
    name: str, type_: str, path: str, description: str, priority: int = 0
) -> dict[str, Any]:
    column: dict[str, Any] = {
        "name": name,
        "type": type_,
        "jsonPath": path,
        "description": description,
    }
    if priority:
        column["priority"] = priority
    return column


_READY: Final = '.status.conditions[?(@.type=="Ready")]'
PRINTER_COLUMNS: Final = [
    _column("Ready", "string", f"{_READY}.status", "Whether the worker is polling."),
    _column("Reason", "string", f"{_READY}.reason", "Why (when not ready)."),
    _column("In-flight", "integer", ".status.inFlight", "Jobs running now."),
    _column("Succeeded", "integer", ".status.succeeded", "Jobs reported as succeeded."),
    _column("Failed", "integer", ".status.failed", "Jobs reported as failed."),
    _column("Last poll", "date", ".status.lastPollTime", "Last successful PollForJobs."),
    _column("Age", "date", ".metadata.creationTimestamp", "Age of the worker."),
    _column("Provider", "string", ".spec.actionTypeId.provider", "Action provider.", 1),
    _column("Version", "string", ".spec.actionTypeId.version", "Action version.", 1),
]


def render_crd() -> dict[str, Any]:
    """The CRD as a dict."""
    root = {
        "type": "object",
        "description": "A CustomActionWorker makes this namespace a CodePipeline job worker for "
        "one custom action type: every job for it runs as a Kubernetes Job.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": "APIVersion defines the versioned schema of this representation "
                "of an object.",
            },
            "kind": {
                "type": "string",
                "description": "Kind is a string value representing the REST resource this "
                "object represents.",
            },
            "metadata": {"type": "object"},
            "spec": _spec_schema(),
            "status": model_schema(CustomActionWorkerStatus, defaults=False),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": names.CRD_NAME,
            "labels": {
                "app.kubernetes.io/name": "cpworker",
                "app.kubernetes.io/part-of": "cpworker",
            },
        },
        "spec": {
            "group": names.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": names.KIND,
                "listKind": f"{names.KIND}List",
                "plural": names.PLURAL,
                "singular": names.SINGULAR,
                "shortNames": [names.SHORT_NAME],
                "categories": [names.CATEGORY],
            },
            "versions": [
                {
                    "name": names.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": copy.deepcopy(PRINTER_COLUMNS),
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def render_yaml() -> str:
    """The CRD as YAML, byte-for-byte stable (what `crds/` holds)."""
    header = "# Generated by `cpworker crd` from operator/cpworker/models.py: do not edit.\n"
    return header + yaml.safe_dump(render_crd(), sort_keys=False, width=100, allow_unicode=True)


def main(argv: Sequence[str]) -> int:
    """`cpworker crd [--output DIR]`."""
    parser = argparse.ArgumentParser(prog="cpworker crd", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, help=f"write DIR/{FILE_NAME} instead of printing")
    args = parser.parse_args(list(argv))
    text = render_yaml()
    if args.output is None:
        sys.stdout.write(text)
        return 0
    args.output.mkdir(parents=True, exist_ok=True)
    target = args.output / FILE_NAME
    target.write_text(text, encoding="utf-8")
    sys.stderr.write(f"wrote {target}\n")
    return 0
