"""`cpworker sandbox demo` (what `make sandbox` runs): the whole system, end to end, on loopback.

The local CodePipeline, S3 (moto), the local Kubernetes API and the real operator run in this
process. The demo plays the platform team: it creates a custom action type and a pipeline
(S3 source -> Build -> Test), `kubectl apply`s a CustomActionWorker, starts an execution and
shows live what happens until the execution ends.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from kubernetes import client as kclient
from kubernetes import config as kconfig
from kubernetes.client.exceptions import ApiException

from cpworker.sandbox.codepipeline.environment import client_config
from cpworker.sandbox.codepipeline.scenario import Scenario, create_scenario
from cpworker.sandbox.components import SANDBOX_NAMESPACE
from cpworker.sandbox.stack import SandboxStack

if TYPE_CHECKING:
    from mypy_boto3_codepipeline import CodePipelineClient
    from mypy_boto3_s3 import S3Client

WORKER = "demo-builds"
GROUP, VERSION, PLURAL = "cpworker.io", "v1alpha1", "customactionworkers"
# What the simulated containers "print" as their JSON termination message.
CONTAINER_RESULT = {
    "summary": "built and tested in the sandbox",
    "outputVariables": {"ImageTag": "sandbox-1", "Tests": "42 passed"},
}
# A secret configuration value: it reaches the pod only through the mounted Secret.
DEMO_SECRET = "demo-secret-value-never-logged"  # noqa: S105 - a canary, not a credential


def _step(number: int, text: str) -> None:
    print(f"[{number}] {text}", flush=True)


def _aws_clients(stack: SandboxStack) -> tuple[CodePipelineClient, S3Client]:
    env = stack.env
    common: dict[str, Any] = {
        "region_name": env["AWS_DEFAULT_REGION"],
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "config": client_config(),
    }
    cp = boto3.client("codepipeline", endpoint_url=env["AWS_ENDPOINT_URL_CODEPIPELINE"], **common)
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"], **common)
    return cp, s3


def worker_manifest(scenario: Scenario, region: str) -> dict[str, Any]:
    """The CustomActionWorker a platform team would write for this pipeline's action type."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CustomActionWorker",
        "metadata": {"name": WORKER, "namespace": SANDBOX_NAMESPACE},
        "spec": {
            "actionTypeId": dict(scenario.action_type_id),
            "queryParam": dict(scenario.query_param),
            "region": region,
            "maxInFlight": 5,
            "polling": {"minIntervalSeconds": 1, "maxIntervalSeconds": 2},
            "jobTemplate": {
                "spec": {
                    "template": {
                        "metadata": {
                            # The local Kubernetes API runs no containers: these script the pod.
                            "annotations": {
                                "sandbox.cpworker.io/duration": "1500ms",
                                "sandbox.cpworker.io/termination-message": json.dumps(
                                    CONTAINER_RESULT
                                ),
                            }
                        },
                        "spec": {
                            "containers": [
                                {
                                    "name": "build",
                                    "image": "ghcr.io/acme/builder:2026.11",
                                    "command": ["./ci/build.sh"],
                                }
                            ]
                        },
                    }
                }
            },
        },
    }


class Kubectl:
    """The real kubectl when it is on the PATH (as a user would run it), else the Python client."""

    def __init__(self, kubeconfig: str, cache_dir: Path) -> None:
        self.binary = shutil.which("kubectl")
        self.kubeconfig = kubeconfig
        self.cache_dir = cache_dir
        new_client: Any = kconfig.new_client_from_config  # the kubernetes client is untyped
        self.api = new_client(config_file=kubeconfig)

    def _run(self, *args: str, stdin: str | None = None) -> str:
        assert self.binary is not None
        done = subprocess.run(  # noqa: S603 - a fixed binary and our own arguments
            [
                self.binary,
                "--kubeconfig",
                self.kubeconfig,
                "--cache-dir",
                str(self.cache_dir),
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def apply(self, manifest: dict[str, Any]) -> str:
        if self.binary:
            return self._run("apply", "-f", "-", stdin=json.dumps(manifest)).strip()
        kclient.CustomObjectsApi(self.api).create_namespaced_custom_object(
            GROUP, VERSION, manifest["metadata"]["namespace"], PLURAL, manifest
        )
        return f"customactionworker.cpworker.io/{manifest['metadata']['name']} created"

    def get_workers(self) -> str:
        if self.binary:
            return self._run("get", "caw", "-n", SANDBOX_NAMESPACE)
        return "(kubectl is not on the PATH)"

    def worker(self) -> dict[str, Any]:
        objects: Any = kclient.CustomObjectsApi(self.api)  # the kubernetes client is untyped
        try:
            found: dict[str, Any] = objects.get_namespaced_custom_object(
                GROUP, VERSION, SANDBOX_NAMESPACE, PLURAL, WORKER
            )
        except ApiException:
            return {}
        return found

    def jobs(self) -> list[Any]:
        listed = kclient.BatchV1Api(self.api).list_namespaced_job(
            SANDBOX_NAMESPACE, label_selector="app.kubernetes.io/managed-by=cpworker"
        )
        return list(listed.items)


def _pipeline_line(cp: CodePipelineClient, scenario: Scenario) -> str:
    state = cp.get_pipeline_state(name=scenario.pipeline_name)
    parts = []
    for stage in state.get("stageStates", []):
        for action in stage.get("actionStates", []):
            status = action.get("latestExecution", {}).get("status", "-")
            parts.append(f"{action['actionName']}={status}")
    return " ".join(parts)


def _cluster_line(kube: Kubectl) -> str:
    jobs = []
    for job in kube.jobs():
        annotations = job.metadata.annotations or {}
        phase = annotations.get("cpworker.io/phase", "?")
        result = annotations.get("cpworker.io/result")
        jobs.append(f"{job.metadata.name[:12]}..({phase}{'/' + result if result else ''})")
    status = kube.worker().get("status") or {}
    return (
        f"jobs: {' '.join(jobs) or '-'} | worker: in-flight={status.get('inFlight', 0)}"
        f" succeeded={status.get('succeeded', 0)} failed={status.get('failed', 0)}"
    )


def _wait(what: str, check: Callable[[], bool], deadline: float) -> None:
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _ready(kube: Kubectl) -> bool:
    conditions = (kube.worker().get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _follow(
    cp: CodePipelineClient, scenario: Scenario, kube: Kubectl, execution_id: str, deadline: float
) -> str:
    """Print a line whenever the pipeline or the cluster changes; answer the final status."""
    started, last = time.monotonic(), ""
    while True:
        status = scenario.status(cp, execution_id)
        line = f"pipeline: {_pipeline_line(cp, scenario)} | {_cluster_line(kube)}"
        if line != last:
            print(f"    t+{time.monotonic() - started:4.1f}s {line}", flush=True)
            last = line
        if status not in {"InProgress", "Stopping"}:
            return status
        if time.monotonic() > deadline:
            raise TimeoutError(f"execution {execution_id} still {status}")
        time.sleep(0.25)


def _print_results(cp: CodePipelineClient, scenario: Scenario, execution_id: str) -> None:
    details = cp.list_action_executions(
        pipelineName=scenario.pipeline_name, filter={"pipelineExecutionId": execution_id}
    )["actionExecutionDetails"]
    for detail in reversed(details):
        result = detail.get("output", {}).get("executionResult", {})
        variables = detail.get("output", {}).get("outputVariables", {})
        print(
            f"    {detail['stageName']}/{detail['actionName']}: {detail['status']}"
            f" summary={result.get('externalExecutionSummary', '')!r}"
            f" externalExecutionId={result.get('externalExecutionId', '')!r}"
            f" variables={variables}",
            flush=True,
        )


def run_demo(stack: SandboxStack, timeout: float = 90.0) -> int:
    """Drive one pipeline through the stack and the operator; 0 when it Succeeded cleanly."""
    deadline = time.monotonic() + timeout
    cp, s3 = _aws_clients(stack)
    kube = Kubectl(stack.env["KUBECONFIG"], stack.directory / "kubectl-cache")
    try:
        _step(1, "create custom action type Build/Custom/SandboxDemo/1 (queryable property Pool)")
        scenario = create_scenario(
            cp,
            s3,
            name="sandbox-demo",
            provider="SandboxDemo",
            pool="demo",
            actions=("Build", "Test"),
            configuration={"Target": "release"},
            secret_configuration={"ApiToken": DEMO_SECRET},
        )
        _step(2, f"create pipeline {scenario.pipeline_name}: S3 source -> Build -> Test")
        _step(3, f"kubectl apply: {kube.apply(worker_manifest(scenario, stack.region))}")
        _wait("the worker to become Ready", lambda: _ready(kube), deadline)
        _step(4, "the operator reports the worker Ready and is polling")
        execution_id = scenario.start(cp)
        _step(5, f"StartPipelineExecution -> {execution_id}; following it live:")
        status = _follow(cp, scenario, kube, execution_id, deadline)
        _step(6, f"execution {execution_id}: {status}")
        _print_results(cp, scenario, execution_id)
        _wait(
            "the worker's counters",
            lambda: (kube.worker().get("status") or {}).get("succeeded") == 2,
            deadline,
        )
        _step(7, "kubectl get caw")
        print(kube.get_workers(), flush=True)
    except (BotoCoreError, ClientError, ApiException, TimeoutError, RuntimeError) as exc:
        print(f"demo FAILED: {exc}", flush=True)
        return 1
    assert stack.codepipeline is not None
    violations = stack.codepipeline.violations()
    for violation in violations:
        print(f"conformance violation: {violation}")
    ok = status == "Succeeded" and not violations
    print("demo succeeded" if ok else f"demo FAILED: execution ended {status}", flush=True)
    return 0 if ok else 1
