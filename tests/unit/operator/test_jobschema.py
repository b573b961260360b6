"""The shipped batch/v1 Job schema (tools/jobschema.py): current, self-contained, light to use."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import kubernetes_validate
import pytest

from tools import jobschema


def test_the_committed_schema_is_a_fresh_render() -> None:
    committed = jobschema.DEFAULT_OUTPUT.read_text(encoding="utf-8")
    assert committed == jobschema.render(), (
        f"{jobschema.DEFAULT_OUTPUT} differs from kubernetes-validate's Job schema: "
        "run `python -m tools.jobschema`"
    )
    assert jobschema.main(["--check"]) == 0


def test_the_schema_is_self_contained_and_without_descriptions() -> None:
    schema = json.loads(jobschema.DEFAULT_OUTPUT.read_text(encoding="utf-8"))
    assert schema["$schema"] == jobschema.DRAFT
    assert f"Kubernetes v{kubernetes_validate.latest_version()}" in schema["$comment"]
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            assert not isinstance(node.get("description"), str), node
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    # Every reference resolves inside the file, and every definition is referred to.
    names = {ref.removeprefix("#/$defs/") for ref in refs}
    assert all(ref.startswith("#/$defs/") for ref in refs)
    assert names == set(schema["$defs"])


def test_an_unknown_reference_form_stops_the_tool() -> None:
    job = {"$schema": jobschema.DRAFT, "properties": {"spec": {"$ref": "other.json#/x"}}}
    with pytest.raises(ValueError, match="unexpected \\$ref"):
        jobschema.extract(job, {"$schema": jobschema.DRAFT, "$defs": {}}, version="1.0.0")


def test_validating_imports_neither_kubernetes_nor_kubernetes_validate() -> None:
    probe = (
        "import sys\n"
        "from cpworker.jobtemplate import validate_job_template\n"
        "from tests.unit.operator import samples\n"
        "broken = {'spec': {'template': {'spec': {'containers': [{'image': 'i'}]}}}}\n"
        "assert validate_job_template(samples.SPEC['jobTemplate']) == []\n"
        "assert validate_job_template(broken)\n"
        "assert 'jsonschema' in sys.modules\n"
        "print(sorted(m for m, v in sys.modules.items() if v is not None and "
        "m.split('.')[0] in {'kubernetes', 'kubernetes_validate'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=jobschema.REPO_ROOT,
    ).stdout
    assert out.strip().splitlines()[-1] == "[]", out
