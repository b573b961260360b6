"""docs/reference.md: the configuration reference, generated from the models and the settings.

`make docs` (`python -m tools.docs.reference docs/reference.md`) writes it; `--check` exits 1
when the file differs from a fresh render (tests/unit/test_reference_doc.py does the same).
Every CustomActionWorker field comes from the CRD schema that `cpworker.crd` renders from
`cpworker.models` (type, default, limits, CEL rules, description: what `kubectl explain` and
the API server see), and every `CPWORKER_*` setting from `cpworker.settings.OperatorSettings`
(its JSON schema and field aliases). Only the prose around the tables is written here.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pydantic import AliasChoices

from cpworker import crd, names
from cpworker.settings import ENV_PREFIX, OperatorSettings

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT: Final = REPO_ROOT / "docs" / "reference.md"
# The example worker shown on the page: the build worker users copy first.
EXAMPLE_WORKER: Final = REPO_ROOT / "examples" / "workers" / "build.yaml"
# Settings the Helm chart sets from one of its values (a test renders the chart with each value
# set and checks the variable follows it: tests/docs/test_reference.py).
CHART_VALUES: Final = {
    "default_region": "aws.region",
    "log_format": "logging.format",
    "log_level": "logging.level",
    "health_port": "liveness.port",
    "artifacts_image": "artifacts.image",
}


@dataclass(frozen=True)
class Row:
    """One documented field or setting."""

    name: str
    type: str
    default: str
    limits: str
    description: str


def _code(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return f"`{text}`" if text != "" else '`""`'


def _cell(text: str) -> str:
    """Markdown table cell: pipes escaped, one line."""
    return " ".join(text.replace("|", "\\|").split())


def _type(node: Mapping[str, Any], *, required: bool = False) -> str:
    kind = str(node.get("type", "object"))
    if kind == "array":
        kind = f"list of {_type(node.get('items', {}))}"
    elif kind == "object" and isinstance(node.get("additionalProperties"), Mapping):
        kind = f"map of string to {_type(node['additionalProperties'])}"
    elif kind == "object" and node.get("x-kubernetes-preserve-unknown-fields"):
        kind = "object (any fields)"
    return f"{kind}, required" if required else kind


def _limits(node: Mapping[str, Any]) -> str:
    """The schema's constraints in words (the CRD's and pydantic's keywords)."""
    parts = []
    if "enum" in node:
        parts.append("one of " + ", ".join(_code(v) for v in node["enum"]))
    low = node.get("minimum")
    high = node.get("maximum")
    if "exclusiveMinimum" in node:
        parts.append(f"> {node['exclusiveMinimum']}")
    if low is not None and high is not None:
        parts.append(f"{low}-{high}")
    elif low is not None:
        parts.append(f"≥ {low}")
    elif high is not None:
        parts.append(f"≤ {high}")
    if "minLength" in node and "maxLength" in node:
        parts.append(f"{node['minLength']}-{node['maxLength']} characters")
    elif "maxLength" in node:
        parts.append(f"at most {node['maxLength']} characters")
    elif "minLength" in node:
        parts.append(f"at least {node['minLength']} characters")
    if "pattern" in node:
        parts.append(f"pattern {_code(node['pattern'])}")
    if "maxProperties" in node:
        count = node["maxProperties"]
        parts.append(f"at most {count} {'entry' if count == 1 else 'entries'}")
    item = node.get("additionalProperties")
    if isinstance(item, Mapping) and _limits(item):
        parts.append(f"values: {_limits(item)}")
    parts.extend(f"rule: {rule['message']}" for rule in node.get("x-kubernetes-validations", []))
    return "; ".join(parts)


def _default(node: Mapping[str, Any]) -> str:
    return _code(node["default"]) if "default" in node else "—"


def schema_rows(node: Mapping[str, Any], prefix: str) -> Iterator[Row]:
    """A row for `prefix` and each field below it, depth first in declaration order."""
    required = set(node.get("required", []))
    for name, child in node.get("properties", {}).items():
        path = f"{prefix}.{name}"
        yield Row(
            name=path,
            type=_type(child, required=name in required),
            default=_default(child),
            limits=_limits(child),
            description=str(child.get("description", "")),
        )
        if child.get("type") == "array" and "properties" in child.get("items", {}):
            yield from schema_rows(child["items"], f"{path}[]")
        yield from schema_rows(child, path)


def _crd_schema() -> dict[str, Any]:
    (version,) = crd.render_crd()["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def spec_rows() -> list[Row]:
    spec = _crd_schema()["properties"]["spec"]
    # Rules on the spec object itself (for example maxBatchSize <= maxInFlight).
    own = Row("spec", "object, required", "—", _limits(spec), str(spec.get("description", "")))
    return [own, *schema_rows(spec, "spec")]


def status_rows() -> list[Row]:
    return list(schema_rows(_crd_schema()["properties"]["status"], "status"))


def _setting_type(node: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """(type, the node carrying the limits) of a settings field; optional fields say so."""
    options = node.get("anyOf")
    if options is None:
        kind = _type(node)
        return ("comma-separated list" if kind.startswith("list") else kind), node
    concrete = [o for o in options if o.get("type") != "null"]
    (only,) = concrete
    return f"{_type(only)} (optional)", only


def setting_rows() -> list[Row]:
    schema = OperatorSettings.model_json_schema()
    rows = []
    for name, node in schema["properties"].items():
        field = OperatorSettings.model_fields[name]
        variable = f"{ENV_PREFIX}{name.upper()}"
        others = []
        if isinstance(field.validation_alias, AliasChoices):
            others = [
                str(choice)
                for choice in field.validation_alias.choices
                if isinstance(choice, str) and choice not in {name, variable}
            ]
        kind, limited = _setting_type(node)
        default = node.get("default")
        description = str(node.get("description", ""))
        if others:
            description += " Also read from " + ", ".join(f"`{o}`" for o in others) + "."
        if name in CHART_VALUES:
            description += f" Chart value: `{CHART_VALUES[name]}`."
        rows.append(
            Row(
                name=variable,
                type=kind,
                default="—" if default is None else "empty" if default == [] else _code(default),
                limits=_limits(limited),
                description=description,
            )
        )
    return rows


def table(rows: Sequence[Row], first: str) -> str:
    lines = [
        f"| {first} | type | default | limits and rules | description |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| `{r.name}` | {_cell(r.type)} | {_cell(r.default)} | {_cell(r.limits)} | "
        f"{_cell(r.description)} |"
        for r in rows
    ]
    return "\n".join(lines)


def columns_table() -> str:
    lines = ["| column | shows | `-o wide` only |", "|---|---|---|"]
    for column in crd.PRINTER_COLUMNS:
        wide = "yes" if column.get("priority") else ""
        lines.append(
            f"| {column['name']} | {_cell(column['description'])} (`{column['jsonPath']}`) | "
            f"{wide} |"
        )
    return "\n".join(lines)


def render() -> str:
    example = EXAMPLE_WORKER.read_text(encoding="utf-8")
    return f"""<!-- Generated by `make docs` (tools/docs/reference.py) from
operator/cpworker/models.py and operator/cpworker/settings.py: do not edit; change the models
or the settings and regenerate. A test fails when this file is stale. -->
# Configuration reference

Everything you can set: the fields of a `{names.KIND}` (what `kubectl explain caw.spec` shows,
generated from the same models) and the operator's `{ENV_PREFIX}*` settings. What a job's
containers get and how they report is in [job-contract.md](job-contract.md); what each Ready
reason means and what to do about it, in [troubleshooting.md](troubleshooting.md).

## The {names.KIND} resource

Group `{names.GROUP}`, version `{names.VERSION}`, namespaced, short name `{names.SHORT_NAME}`,
category `{names.CATEGORY}` (`kubectl get {names.CATEGORY}` lists every cpworker resource). A
worker makes its namespace a CodePipeline job worker for one custom action type (and one value
of its queryable property): every job of it becomes a Kubernetes Job in that namespace.

The build worker of [examples/](../examples/README.md) (`examples/workers/build.yaml`):

```yaml
{example.rstrip()}
```

### spec

Each rule is checked twice: by the API server (the CRD's schema and CEL rules, so
`kubectl apply` refuses a bad value with the field's path) and by the operator (so a cluster
without CEL, or an older CRD, cannot make it act on a bad spec). A spec the operator cannot
serve — a rule broken, or a `jobTemplate` that sets what the operator owns
([job-contract.md](job-contract.md#what-every-container-gets)) — sets `Ready=False` with reason
`InvalidSpec` and a message naming each problem (never the offending values), and the worker
does not poll until it is fixed.

{table(spec_rows(), "field")}

### status

Written by the operator through the status subresource; `kubectl get caw -o yaml` shows it.

{table(status_rows(), "field")}

### `kubectl get caw` columns

{columns_table()}

## Operator settings

Environment variables of the operator's container, validated at start-up
(`cpworker.settings.load_settings`): a bad value stops `cpworker run` (and `cpworker check`)
with exit status 2 and one line per problem, naming the variable. The chart sets those that
name a chart value from it (and `{ENV_PREFIX}HEALTH_HOST` to `0.0.0.0`); set any other through
its `extraEnv` ([install.md](install.md)).

{table(setting_rows(), "variable")}
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.docs.reference", description=__doc__)
    parser.add_argument("output", nargs="?", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            sys.stderr.write(f"{args.output} is stale: run `make docs`\n")
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    sys.stderr.write(f"wrote {args.output}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
