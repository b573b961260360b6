"""Argo CD's health check for CustomActionWorker, run by a real Lua 5.1 runtime (Argo CD's
gopher-lua implements Lua 5.1) against every case of its health_test.yaml, the way Argo CD's
own resource_customizations tests run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from lupa import lua51

from tests.integration.helm.chart import REPO_ROOT

CUSTOMIZATION = (
    REPO_ROOT / "helm" / "argocd" / "resource_customizations" / "cpworker.io" / "CustomActionWorker"
)
HEALTH_LUA = CUSTOMIZATION / "health.lua"
CASES: list[dict[str, Any]] = yaml.safe_load(
    (CUSTOMIZATION / "health_test.yaml").read_text(encoding="utf-8")
)["tests"]


def _to_lua(runtime: Any, value: Any) -> Any:
    """Python data -> Lua values the way Argo CD hands an object to its scripts."""
    if isinstance(value, dict):
        return runtime.table_from({key: _to_lua(runtime, item) for key, item in value.items()})
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, item) for item in value])
    return value


def health(script: str, obj: dict[str, Any]) -> dict[str, Any]:
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = _to_lua(runtime, obj)
    result = runtime.execute(script)
    return dict(result.items())


@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_health_test_case(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((CUSTOMIZATION / case["inputPath"]).read_text(encoding="utf-8"))
    assert health(HEALTH_LUA.read_text(encoding="utf-8"), obj) == case["healthStatus"]


def test_every_testdata_file_is_a_case() -> None:
    files = {f"testdata/{p.name}" for p in (CUSTOMIZATION / "testdata").glob("*.yaml")}
    assert files == {case["inputPath"] for case in CASES}


def test_every_argo_cd_status_is_covered() -> None:
    statuses = {case["healthStatus"]["status"] for case in CASES}
    assert statuses == {"Healthy", "Degraded", "Progressing", "Suspended"}


def test_a_broken_script_fails_the_cases() -> None:
    """The cases can fail: a script that calls everything Healthy disagrees with them."""
    always_healthy = 'return {status = "Healthy", message = "ok"}'
    disagreements = [
        case
        for case in CASES
        if health(
            always_healthy,
            yaml.safe_load((CUSTOMIZATION / case["inputPath"]).read_text(encoding="utf-8")),
        )
        != case["healthStatus"]
    ]
    assert len(disagreements) == len(CASES)


def _crd_schema() -> dict[str, Any]:
    crd = yaml.safe_load((REPO_ROOT / "crds" / "cpworker.io_customactionworkers.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["storage"]]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_testdata_workers_match_the_crd(case: dict[str, Any]) -> None:
    """The cases describe workers the API would accept (the structural schema of the CRD,
    checked as JSON Schema; CEL rules are not evaluated here)."""
    obj = yaml.safe_load((CUSTOMIZATION / case["inputPath"]).read_text(encoding="utf-8"))
    for section in ("spec", "status"):
        if section in obj:
            jsonschema.validate(obj[section], _crd_schema()["properties"][section])
