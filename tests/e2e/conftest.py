"""End-to-end helpers: the real operator (kopf) against both stand-ins, driven by kubectl/boto3.

The operator runs either in-process (`operator_thread`, fast) or as `cpworker run` in a
subprocess (`operator_process`, for crash/restart tests and captured logs). Stand-in timings
are short so that every test finishes in seconds.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml

from cpworker.runner import OperatorThread
from tests import canaries

NAMESPACE = "default"
REGION = "us-east-1"

# Operator settings for tests: short probes and grace periods, text logs.
FAST_SETTINGS: dict[str, Any] = {
    "default_region": REGION,
    "cancel_probe_seconds": 0.5,
    # Short enough for fast tests of pods that never start, long enough that a starved job
    # controller on a loaded 2-core machine does not look like one.
    "never_started_grace_seconds": 3.0,
    "credentials_refresh_seconds": 600.0,
    "log_format": "text",
    "log_level": "INFO",
    "health_host": "127.0.0.1",
    "health_port": 0,
    "rate_per_second": 200.0,
    "rate_burst": 200,
}


def env_settings(overrides: dict[str, Any]) -> dict[str, str]:
    """`CPWORKER_*` environment for a subprocess operator."""
    return {f"CPWORKER_{key.upper()}": str(value) for key, value in overrides.items()}


def wait_for(
    predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1, what: str = ""
) -> Any:
    """Poll `predicate` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def worker_manifest(
    scenario: Any,
    name: str = "builds",
    *,
    annotations: dict[str, str] | None = None,
    spec: dict[str, Any] | None = None,
    container: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A CustomActionWorker for a cp_scenario, its pods scripted by sandbox annotations."""
    return {
        "apiVersion": "cpworker.io/v1alpha1",
        "kind": "CustomActionWorker",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "actionTypeId": dict(scenario.action_type_id),
            "queryParam": dict(scenario.query_param),
            "region": REGION,
            "maxInFlight": 5,
            "polling": {"minIntervalSeconds": 1, "maxIntervalSeconds": 1},
            "jobTemplate": {
                "spec": {
                    "template": {
                        "metadata": {"annotations": annotations or {}},
                        "spec": {
                            "containers": [
                                container or {"name": "build", "image": "example.com/builder:1"}
                            ]
                        },
                    }
                }
            },
            **(spec or {}),
        },
    }


class Cluster:
    """The Kubernetes stand-in through the real kubernetes client (raw JSON requests)."""

    def __init__(self, api: Any, kubectl: Any) -> None:
        self.api = api
        self.kubectl = kubectl

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        accept: str = "application/json",
        **query: str,
    ) -> Any:
        content = "application/merge-patch+json" if method == "PATCH" else "application/json"
        headers = {"Accept": accept, "Content-Type": content}
        _, url, headers, _, _ = self.api.param_serialize(
            method, path, header_params=headers, auth_settings=["BearerToken"]
        )
        if query:
            url += "?" + urlencode(query)
        response = self.api.call_api(method, url, header_params=headers, body=body)
        raw = response.read()
        if response.status == 404:
            return None
        if response.status >= 400:
            raise AssertionError(f"{method} {path}: {response.status} {raw[:500]!r}")
        return json.loads(raw) if raw else {}

    def apply(self, manifest: dict[str, Any]) -> None:
        """`kubectl apply` the manifest, as a user would."""
        self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest))

    def delete_worker(self, name: str = "builds") -> None:
        self.request("DELETE", f"{WORKERS}/{name}")

    def worker(self, name: str = "builds") -> Any:
        return self.request("GET", f"{WORKERS}/{name}")

    def jobs(self) -> list[dict[str, Any]]:
        return list(self.request("GET", f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs")["items"])

    def secrets(self) -> list[dict[str, Any]]:
        items = self.request("GET", f"/api/v1/namespaces/{NAMESPACE}/secrets")["items"]
        return [s for s in items if s["metadata"]["name"].startswith("cpw-")]

    def pods(self) -> list[dict[str, Any]]:
        return list(self.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods")["items"])

    def events(self) -> list[dict[str, Any]]:
        return list(self.request("GET", f"/api/v1/namespaces/{NAMESPACE}/events")["items"])

    def reasons_once(self, *awaited: str, timeout: float = 30.0) -> list[str]:
        """Every Event's reason, once each awaited reason was posted as often as it is named.

        The operator posts an Event after the write a test usually waits on (a report's Event
        follows the count, the record and the Secret's deletion), so reading the Events at
        once races it on a loaded machine."""
        wanted = Counter(awaited)

        def arrived() -> list[str] | None:
            reasons = [event["reason"] for event in self.events()]
            posted = Counter(reasons)
            return reasons if all(posted[r] >= n for r, n in wanted.items()) else None

        return list(wait_for(arrived, timeout=timeout, what=f"the Events {sorted(awaited)}"))

    def table(self) -> dict[str, str]:
        """The worker's printer columns as `kubectl get caw` shows them (the Table API)."""
        table = self.request("GET", WORKERS, accept="application/json;as=Table;v=v1;g=meta.k8s.io")
        names = [column["name"] for column in table["columnDefinitions"]]
        return {
            name: str(cell) for name, cell in zip(names, table["rows"][0]["cells"], strict=True)
        }

    def condition(self, name: str = "builds") -> dict[str, Any] | None:
        body = self.worker(name) or {}
        for condition in (body.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "Ready":
                return dict(condition)
        return None


WORKERS = f"/apis/cpworker.io/v1alpha1/namespaces/{NAMESPACE}/customactionworkers"


@pytest.fixture
def cluster(kube_api: Any, kubectl: Any) -> Cluster:
    return Cluster(kube_api, kubectl)


@pytest.fixture
def operator_env(
    aws_env: dict[str, str], kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Point this process (boto3, kopf's login) at the stand-ins."""
    for key, value in aws_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    for key in [k for k in os.environ if k.startswith("CPWORKER_")]:
        monkeypatch.delenv(key)
    return {**aws_env, "KUBECONFIG": str(kubeconfig)}


@pytest.fixture
def operator_thread(
    operator_env: dict[str, str], kubeconfig: Path
) -> Iterator[Callable[..., OperatorThread]]:
    """Start in-process operators: `start(**settings_overrides)`; all stopped at teardown."""
    started: list[OperatorThread] = []

    def start(**overrides: Any) -> OperatorThread:
        options = {k: overrides.pop(k) for k in ("priority", "peering") if k in overrides}
        operator = OperatorThread(
            {**FAST_SETTINGS, **overrides},
            namespaces=[NAMESPACE],
            kubeconfig=str(kubeconfig),
            **options,
        )
        started.append(operator)
        return operator.start()

    yield start
    for operator in started:
        operator.stop()


class OperatorProcess:
    """`cpworker run` in a subprocess, its combined output captured to a file."""

    def __init__(self, env: dict[str, str], log_path: Path, args: Sequence[str] = ()) -> None:
        self.env = env
        self.log_path = log_path
        self.args = list(args)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        log = self.log_path.open("ab")
        command = [sys.executable, "-m", "cpworker.cli", "run", "--namespace", NAMESPACE]
        self.proc = subprocess.Popen(
            [*command, "--standalone", *self.args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def wait_exit(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def operator_process(
    operator_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., OperatorProcess]]:
    """Start `cpworker run` subprocesses: `start(crash_at=None, args=(), **settings)`."""
    started: list[OperatorProcess] = []

    def start(
        crash_at: str | None = None, args: Sequence[str] = (), **overrides: Any
    ) -> OperatorProcess:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CPWORKER_")},
            **operator_env,
            **env_settings({**FAST_SETTINGS, **overrides}),
        }
        if crash_at:
            env["CPWORKER_TEST_CRASH_AT"] = crash_at
        process = OperatorProcess(env, tmp_path / "operator.log", args).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
    if started:  # every life of the operator wrote into the one log file
        canaries.WATCH.scan("the operator's log", started[0].output)


@dataclasses.dataclass
class Stack:
    """Both stand-ins, the cluster view and the operator starter, in one fixture."""

    cp_scenario: Callable[..., Any]
    cp_client: Any
    cluster: Cluster
    start_operator: Callable[..., OperatorThread]
    codepipeline: Any

    def calls(self, operation: str) -> int:
        """How many requests of `operation` the CodePipeline stand-in answered."""
        return sum(1 for r in self.codepipeline.requests() if r.operation == operation)


@pytest.fixture
def stack(
    cp_scenario: Callable[..., Any],
    cp_client: Any,
    cluster: Cluster,
    operator_thread: Callable[..., OperatorThread],
    codepipeline: Any,
) -> Stack:
    return Stack(cp_scenario, cp_client, cluster, operator_thread, codepipeline)
