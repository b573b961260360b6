"""operator/cpworker/schemas/job-batch-v1.json: the strict batch/v1 Job schema, self-contained.

`python -m tools.jobschema` writes it; `--check` exits 1 when the file differs from a fresh
render (tests/unit/operator/test_jobschema.py does the same). The source is kubernetes-validate's
newest strict schema (`job-batch-v1.json` and the `_definitions.json` it refers to): a
development dependency of about 100 MiB, so the operator ships this extract instead and
`cpworker.jobtemplate` checks templates against it, the same in development and production.

The extract holds the Job schema and only the definitions it reaches, under `$defs` with the
references rewritten to point there, without `description`s (validation never reads them),
with sorted keys and no whitespace: about 60 kB, where the source is 1.8 MB.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import kubernetes_validate.utils

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT: Final = REPO_ROOT / "operator" / "cpworker" / "schemas" / "job-batch-v1.json"
# cpworker.jobtemplate validates with jsonschema's Draft202012Validator.
DRAFT: Final = "https://json-schema.org/draft/2020-12/schema"
# The forms the source's references take: from the Job's file into _definitions.json (relative
# to the Job's $id, https://kubernetes.io/api/job/batch/v1), and within _definitions.json.
_REF_PREFIXES: Final = ("/api/_definitions.json#/$defs/", "#/$defs/")
_LOCAL_REF: Final = "#/$defs/"

# JSON Schema keywords by what their value is: a schema, a map of names to schemas, a list of
# schemas, or plain data (copied as is). A keyword none of these name stops the tool, as it may
# hold subschemas (with references or descriptions) that would otherwise be missed.
_SCHEMA_KEYWORDS: Final = frozenset(
    {
        "additionalItems",
        "additionalProperties",
        "contains",
        "else",
        "if",
        "items",
        "not",
        "propertyNames",
        "then",
        "unevaluatedItems",
        "unevaluatedProperties",
    }
)
_SCHEMA_MAP_KEYWORDS: Final = frozenset(
    {"$defs", "definitions", "dependentSchemas", "patternProperties", "properties"}
)
_SCHEMA_LIST_KEYWORDS: Final = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_DATA_KEYWORDS: Final = frozenset(
    {
        "$anchor",
        "$id",
        "$schema",
        "const",
        "default",
        "dependentRequired",
        "enum",
        "examples",
        "exclusiveMaximum",
        "exclusiveMinimum",
        "format",
        "maxContains",
        "maxItems",
        "maxLength",
        "maxProperties",
        "maximum",
        "minContains",
        "minItems",
        "minLength",
        "minProperties",
        "minimum",
        "multipleOf",
        "nullable",
        "pattern",
        "required",
        "title",
        "type",
        "uniqueItems",
    }
)


def _definition_name(ref: str) -> str:
    for prefix in _REF_PREFIXES:
        if ref.startswith(prefix):
            return ref.removeprefix(prefix)
    raise ValueError(f"unexpected $ref {ref!r}: teach tools/jobschema.py its form")


class _Extract:
    """Rewrites schemas and collects the names of the definitions they refer to."""

    def __init__(self) -> None:
        self.referenced: list[str] = []

    def schema(self, node: Any) -> Any:
        if not isinstance(node, Mapping):
            return node  # a boolean schema
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "description":
                continue
            if key == "$ref":
                name = _definition_name(value)
                self.referenced.append(name)
                out[key] = _LOCAL_REF + name
            elif key in _SCHEMA_KEYWORDS:
                out[key] = self.schema(value)
            elif key in _SCHEMA_MAP_KEYWORDS:
                out[key] = {name: self.schema(sub) for name, sub in value.items()}
            elif key in _SCHEMA_LIST_KEYWORDS:
                out[key] = [self.schema(sub) for sub in value]
            elif key in _DATA_KEYWORDS or key.startswith("x-"):
                out[key] = value
            else:
                raise ValueError(
                    f"unknown schema keyword {key!r}: teach tools/jobschema.py whether it "
                    "holds subschemas"
                )
        return out


def extract(
    job: Mapping[str, Any], definitions: Mapping[str, Any], *, version: str
) -> dict[str, Any]:
    """The Job schema with the definitions it reaches, transitively, as one document."""
    for name, document in (("job-batch-v1.json", job), ("_definitions.json", definitions)):
        if document.get("$schema") != DRAFT:
            raise ValueError(f"{name} declares {document.get('$schema')!r}, not {DRAFT}")
    available: Mapping[str, Any] = definitions["$defs"]
    extract = _Extract()
    root = extract.schema(job)
    defs: dict[str, Any] = {}
    while extract.referenced:
        name = extract.referenced.pop()
        if name not in defs:
            defs[name] = extract.schema(available[name])
    if "$defs" in root or "$comment" in root:
        raise ValueError("job-batch-v1.json has its own $defs or $comment: check the extract")
    return {
        **root,
        "$comment": (
            "generated by `python -m tools.jobschema` from kubernetes-validate, "
            f"Kubernetes v{version}; do not edit"
        ),
        "$defs": defs,
    }


def render(version: str | None = None) -> str:
    """The file's text, from the installed kubernetes-validate (its newest version by default)."""
    version = version or kubernetes_validate.utils.latest_version()
    folder = f"kubernetes-json-schema/v{version}-local-strict"
    job = kubernetes_validate.utils.schema_contents(f"{folder}/job-batch-v1.json", version)
    definitions = kubernetes_validate.utils.schema_contents(f"{folder}/_definitions.json", version)
    schema = extract(job, definitions, version=version)
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.jobschema", description=__doc__)
    parser.add_argument("output", nargs="?", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the file differs from a fresh render"
    )
    args = parser.parse_args(argv)
    output: Path = args.output
    text = render()
    if args.check:
        current = output.read_text(encoding="utf-8") if output.is_file() else None
        if current != text:
            sys.stderr.write(f"{output} is stale: run `python -m tools.jobschema`\n")
            return 1
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
