"""The control surface of the stand-in's faults: the `/_sandbox/` endpoint through
`kubectl --raw`, the `--kube-fault` flags of `cpworker sandbox up`, and the fixtures' opt-in
environment variable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cpworker.sandbox.cli import build_parser, build_stack
from cpworker.sandbox.components import KubeComponent
from cpworker.sandbox.kube import KubeStandIn
from cpworker.sandbox.kube.pytest_plugin import (
    FAULT_SEED_VARIABLE,
    FAULTS_VARIABLE,
    HARNESS_AGENT,
    apply_environment_faults,
)

CPWORKER = Path(sys.executable).with_name("cpworker")


def _raw(kubectl: Any, verb: str, path: str, body: Any = None, check: bool = True) -> Any:
    args = [verb, "--raw", path]
    if body is not None:
        args += ["-f", "-"]
    result = kubectl(*args, stdin=None if body is None else json.dumps(body), check=check)
    return json.loads(result.stdout) if result.returncode == 0 else result


def test_faults_through_kubectl_raw(kube: KubeStandIn, kubectl: Any) -> None:
    rules = {"list:secrets": {"status": 500, "next": 1}, "watch:jobs": {"watch": "cut", "next": 2}}
    plan = _raw(kubectl, "create", "/_sandbox/faults", rules)
    assert list(plan) == ["list:secrets", "watch:jobs"]
    assert plan["list:secrets"]["status"] == [500]
    assert _raw(kubectl, "get", "/_sandbox/faults") == plan
    failed = kubectl("get", "secrets", check=False)
    assert "InternalError" in failed.stderr
    injected = _raw(kubectl, "get", "/_sandbox/faults/injected")
    assert injected["counts"] == {"500": 1}
    assert injected["items"][0] | {"time": 0} == {
        "time": 0,
        "verb": "list",
        "resource": "secrets",
        "namespace": "default",
        "name": "",
        "fault": "500",
        "rule": "list:secrets",
    }
    assert _raw(kubectl, "delete", "/_sandbox/faults/injected") == {"counts": {}, "items": []}
    assert _raw(kubectl, "delete", "/_sandbox/faults") == {}
    assert kube.faults.as_dict() == {}


def test_a_bad_rule_is_refused_and_changes_nothing(kube: KubeStandIn, kubectl: Any) -> None:
    kube.faults.set("get:pods", latency=0.01)
    refused = _raw(
        kubectl,
        "create",
        "/_sandbox/faults",
        {"list:secrets": {"status": 500, "next": 1}, "get:pods": {"status": 409, "next": 1}},
        check=False,
    )
    assert refused.returncode == 1
    assert "409 Conflict is only answered to writes" in refused.stderr
    assert list(kube.faults.as_dict()) == ["get:pods"]  # neither rule applied


def test_compaction_config_and_watches_through_kubectl_raw(kube: KubeStandIn, kubectl: Any) -> None:
    kubectl("create", "configmap", "c")
    compacted = _raw(kubectl, "create", "/_sandbox/compact", {})
    assert int(compacted["resourceVersion"]) >= 2
    older = _raw(kubectl, "create", "/_sandbox/compact", {"resourceVersion": "1"})
    assert older == compacted  # compaction never goes back
    config = _raw(kubectl, "create", "/_sandbox/config", {"compaction_interval": 30})
    assert config["compaction_interval"] == 30
    assert _raw(kubectl, "get", "/_sandbox/config")["compaction_interval"] == 30
    assert (
        _raw(kubectl, "create", "/_sandbox/config", {"compaction_interval": None})[
            "compaction_interval"
        ]
        is None
    )
    assert _raw(kubectl, "create", "/_sandbox/config", {"fault_seed": 4})["compactions"] == 0
    exempt = _raw(kubectl, "create", "/_sandbox/config", {"exempt_agents": ["kopf/"]})
    assert exempt["exempt_agents"] == ["kopf/"]
    assert kube.faults.exempt_agents == ("kopf/",)
    unknown = _raw(kubectl, "create", "/_sandbox/config", {"interval": 3}, check=False)
    assert "unknown setting(s) ['interval']" in unknown.stderr
    assert _raw(kubectl, "delete", "/_sandbox/watches?resource=jobs") == {"closed": 0}
    missing = kubectl("get", "--raw", "/_sandbox/nothing", check=False)
    assert missing.returncode == 1


def test_the_control_endpoint_is_admin_only(kube: KubeStandIn, kube_api: Any) -> None:
    token = kube.service_account_token("default", "operator")
    response = kube_api.call_api(
        "GET", f"{kube.url}/_sandbox/faults", header_params={"Authorization": f"Bearer {token}"}
    )
    assert response.status == 403
    assert b"admin only" in response.read()
    kube.faults.set("get:pods", latency=0.01)
    admin = {"Authorization": f"Bearer {kube.token}"}
    answered = kube_api.call_api("GET", f"{kube.url}/_sandbox/faults", header_params=admin)
    assert json.loads(answered.read()) == kube.faults.as_dict()


def test_the_fixture_opt_in_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        FAULTS_VARIABLE,
        "*:*:status=429|500|503,probability=0.05; update,patch:*:status=409,probability=0.05 "
        "watch:*:watch=cut,probability=0.1",
    )
    monkeypatch.setenv(FAULT_SEED_VARIABLE, "11")
    standin = KubeStandIn()  # not started: the plan is plain data
    apply_environment_faults(standin)
    assert list(standin.faults.as_dict()) == ["*:*", "update,patch:*", "watch:*"]
    # the test's own clients are exempt: the faults are for the system under test
    assert standin.faults.exempt_agents == ("kubectl/", HARNESS_AGENT)
    monkeypatch.delenv(FAULTS_VARIABLE)
    unset = KubeStandIn()
    apply_environment_faults(unset)
    assert unset.faults.as_dict() == {}  # the default: no faults


def test_sandbox_up_flags_reach_the_local_kubernetes(tmp_path: Path) -> None:
    """`cpworker sandbox up --kube-fault ...` as parsed, wired into the stack's stand-in (the
    running `up` itself is tested in tests/integration/codepipeline/test_sandbox_cli.py)."""
    args = build_parser().parse_args(
        [
            "up",
            "--dir",
            str(tmp_path),
            "--kube-fault",
            "create,patch:jobs:status=500|503,probability=0.1",
            "--kube-fault",
            "watch:jobs:watch=cut,after_seconds=30,probability=1",
            "--kube-fault-seed",
            "5",
            "--kube-compaction-interval",
            "120",
        ]
    )
    stack = build_stack(args, tmp_path)
    kube = next(c for c in stack.components if isinstance(c, KubeComponent)).standin
    plan = kube.faults.as_dict()
    assert list(plan) == ["create,patch:jobs", "watch:jobs"]
    assert plan["create,patch:jobs"]["status"] == [500, 503]
    assert plan["watch:jobs"]["after_seconds"] == 30
    assert kube.server.compactor.interval == 120


def test_sandbox_up_refuses_a_bad_kube_fault(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(CPWORKER), "sandbox", "up", "--dir", str(tmp_path), "--kube-fault", "get:pods:x=1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown fault setting(s) ['x']" in result.stderr
