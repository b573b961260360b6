"""`cpworker sandbox demo` (what `make sandbox` runs): the whole system on loopback, one command.

The local CodePipeline, S3 (moto, behind the S3 guard), the local Kubernetes API and the real
operator run in this process. The demo plays the platform team and shows what they would see:

1. a custom action type and a pipeline: S3 source -> Build -> Test, artifacts SSE-KMS;
2. `kubectl create namespace ci` and `kubectl apply -n ci` of a CustomActionWorker whose pods
   run as real local processes (local-exec) and move real artifacts: a file of the source is
   read by Build, Build's output by Test, and Test's output lands in S3 as a zip;
3. every job live, as it goes queued -> claimed -> dispatched -> running -> reported;
4. a second execution started while the worker idles (its next poll minutes away): the
   action's event wakes the worker at once;
5. a third execution whose source breaks the tests: Test fails with its type and reason;
6. a summary: jobs and outcomes, dispatch and report latency, the CodePipeline calls the
   operator made, and `kubectl get caw`.

It exits 0 only when every step went as expected (the third execution is expected to fail).
"""

from __future__ import annotations

import io
import json
import shutil
import statistics
import subprocess
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from kubernetes import client as kclient
from kubernetes import config as kconfig
from kubernetes.client.exceptions import ApiException

from cpworker import names, timestamps
from cpworker.sandbox.codepipeline.environment import client_config
from cpworker.sandbox.codepipeline.scenario import Scenario, create_scenario, source_zip
from cpworker.sandbox.stack import SandboxStack
from cpworker.settings import OperatorSettings

if TYPE_CHECKING:
    from mypy_boto3_codepipeline import CodePipelineClient
    from mypy_boto3_s3 import S3Client

NAMESPACE = "ci"
WORKER = "demo-builds"
GROUP, VERSION, PLURAL = "cpworker.io", "v1alpha1", "customactionworkers"
# The artifact store's key (moto accepts any key id for SSE-KMS; a real store names a key).
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/5a1d6b0e-0000-4000-8000-00000000d3m0"
# A secret configuration value: it reaches the pod only through the mounted Secret.
DEMO_SECRET = "demo-secret-value-never-logged"  # noqa: S105 - a canary, not a credential
SOURCE = {"VERSION": "1.4.2\n", "src/app.c": 'int main(void) { puts("hello"); return 0; }\n'}
BROKEN = {"VERSION": "1.4.3-broken\n", "src/app.c": "int main(void) { return 1; }\n"}
# The operator's events ceiling while events work: the worker idles this long between polls.
IDLE_POLL_SECONDS = int(OperatorSettings.model_fields["events_idle_ceiling_seconds"].default)

# One script for both actions (one worker serves the action type), run as a local process
# with the job's environment: inputs under $CPWORKER_INPUT_DIR, outputs under
# $CPWORKER_OUTPUT_DIR, the result as JSON in $CPWORKER_RESULT_FILE (docs/job-contract.md).
STEP = r"""
set -eu
out="$CPWORKER_OUTPUT_DIR/${CPWORKER_ACTION_NAME}Output"
case "$CPWORKER_ACTION_NAME" in
Build)
  src="$CPWORKER_INPUT_DIR/SourceArtifact"
  version=$(cat "$src/VERSION")
  mkdir -p "$out"
  { echo "app $version"; cat "$src/src/app.c"; } > "$out/app.txt"
  printf '{"summary": "built app %s", "outputVariables": {"Version": "%s"}}' \
    "$version" "$version" > "$CPWORKER_RESULT_FILE"
  ;;
Test)
  built="$CPWORKER_INPUT_DIR/BuildOutput/app.txt"
  if grep -q broken "$built"; then
    printf '{"failure": {"type": "JobFailed", "message": "2 of 42 tests failed: %s"}}' \
      "$(head -1 "$built") is not releasable" > "$CPWORKER_RESULT_FILE"
    exit 1
  fi
  { echo "42 tests passed on:"; cat "$built"; } > "$out/report.txt"
  echo '{"summary": "42 tests passed", "outputVariables": {"Tests": "42"}}' \
    > "$CPWORKER_RESULT_FILE"
  ;;
esac
"""


def _step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _say(text: str) -> None:
    print(f"   {text}", flush=True)


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
        "metadata": {"name": WORKER, "namespace": NAMESPACE},
        "spec": {
            "actionTypeId": dict(scenario.action_type_id),
            "queryParam": dict(scenario.query_param),
            "region": region,
            "maxInFlight": 5,
            # Idle polls a minute apart, and ten while events work: an event wakes it anyway.
            "polling": {"minIntervalSeconds": 1, "maxIntervalSeconds": 60},
            "jobTemplate": {
                "spec": {
                    "template": {
                        # The local Kubernetes runs the containers' commands as local processes.
                        "metadata": {"annotations": {"sandbox.cpworker.io/exec": "local"}},
                        "spec": {
                            "containers": [
                                {
                                    "name": "step",
                                    "image": "ghcr.io/acme/builder:2026.11",
                                    "command": ["/bin/sh", "-c", STEP],
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

    def run(self, *args: str, stdin: str | None = None) -> str:
        if self.binary is None:
            raise RuntimeError("kubectl is not on the PATH")
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

    def create_namespace(self) -> str:
        if self.binary:
            return self.run("create", "namespace", NAMESPACE).strip()
        namespace = kclient.V1Namespace(metadata=kclient.V1ObjectMeta(name=NAMESPACE))
        kclient.CoreV1Api(self.api).create_namespace(namespace)
        return f"namespace/{NAMESPACE} created"

    def apply(self, manifest: dict[str, Any]) -> str:
        if self.binary:
            return self.run("apply", "-n", NAMESPACE, "-f", "-", stdin=json.dumps(manifest)).strip()
        kclient.CustomObjectsApi(self.api).create_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, manifest
        )
        return f"customactionworker.cpworker.io/{manifest['metadata']['name']} created"

    def get_workers(self) -> str:
        if self.binary:
            return self.run("get", "caw", "-n", NAMESPACE)
        return "(kubectl is not on the PATH)"

    def worker(self) -> dict[str, Any]:
        objects: Any = kclient.CustomObjectsApi(self.api)  # the kubernetes client is untyped
        try:
            found: dict[str, Any] = objects.get_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, PLURAL, WORKER
            )
        except ApiException:
            return {}
        return found

    def jobs(self) -> list[dict[str, Any]]:
        listed = kclient.BatchV1Api(self.api).list_namespaced_job(
            NAMESPACE, label_selector=names.managed_selector()
        )
        # The API's own JSON (camelCase), as kubectl -o json shows it.
        return [self.api.sanitize_for_serialization(job) for job in listed.items]

    def running_pods(self) -> set[str]:
        pods = kclient.CoreV1Api(self.api).list_namespaced_pod(
            NAMESPACE, label_selector=names.managed_selector()
        )
        return {
            str((p.metadata.labels or {}).get("job-name", ""))
            for p in pods.items
            if p.metadata is not None and p.status is not None and p.status.phase == "Running"
        }


def _wait(what: str, check: Callable[[], Any], deadline: float) -> Any:
    while not (value := check()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return value


def _ready(kube: Kubectl) -> dict[str, Any] | None:
    conditions = (kube.worker().get("status") or {}).get("conditions") or []
    return next(
        (c for c in conditions if c.get("type") == "Ready" and c.get("status") == "True"), None
    )


# --- following jobs live --------------------------------------------------------------------

STAGES = ("queued", "claimed", "dispatched", "running", "reported")


@dataclass
class JobLine:
    """One CodePipeline job as the demo follows it (the stages it has reached, and when)."""

    action: str
    seen: dict[str, float] = field(default_factory=dict)
    job: dict[str, Any] = field(default_factory=dict)

    def reach(self, stage: str, at: float) -> bool:
        if stage in self.seen:
            return False
        self.seen[stage] = at
        return True


def _stage_of(job: dict[str, Any], running: set[str]) -> str:
    annotations = job["metadata"].get("annotations") or {}
    phase = annotations.get(names.ANNOTATION_PHASE)
    if phase == names.Phase.REPORTED:
        return "reported"
    if job["metadata"]["name"] in running:
        return "running"
    if phase == names.Phase.RUNNING:
        return "dispatched"
    return "claimed"


def follow(
    cp: CodePipelineClient,
    scenario: Scenario,
    kube: Kubectl,
    execution_id: str,
    deadline: float,
) -> tuple[str, dict[str, JobLine]]:
    """Print each job's progress as it happens; answer the execution's end and the jobs."""
    started = time.monotonic()
    lines: dict[str, JobLine] = {}

    def note(line: JobLine, stage: str) -> None:
        if line.reach(stage, time.monotonic()):
            _say(f"t+{time.monotonic() - started:5.1f}s  {line.action:<5} {stage}")

    while True:
        # The execution's status first: what is read after it is at least as new, so an
        # execution seen ended has every job it ran among `statuses` and the Jobs below.
        status = scenario.status(cp, execution_id)
        statuses = _action_statuses(cp, scenario, execution_id)
        for action, action_status in statuses.items():
            if action_status == "InProgress" and action not in lines:
                lines[action] = JobLine(action)
                note(lines[action], "queued")
        running = kube.running_pods()
        for job in kube.jobs():
            annotations = job["metadata"].get("annotations") or {}
            if annotations.get(names.ANNOTATION_PIPELINE_EXECUTION_ID) != execution_id:
                continue
            action = str(annotations.get(names.ANNOTATION_ACTION))
            if action not in lines:  # its queued moment fell between two looks
                lines[action] = JobLine(action)
                note(lines[action], "queued")
            line = lines[action]
            line.job = job
            reached = _stage_of(job, running)
            for stage in STAGES[1 : STAGES.index(reached) + 1]:
                note(line, stage)
        ran = {action for action, state in statuses.items() if state != "InProgress"}
        settled = all("reported" in lines[a].seen for a in ran if a in lines) and ran <= set(lines)
        if status not in {"InProgress", "Stopping"} and settled:
            return status, lines
        if time.monotonic() > deadline:
            raise TimeoutError(f"execution {execution_id} still {status}")
        time.sleep(0.1)


def _action_statuses(
    cp: CodePipelineClient, scenario: Scenario, execution_id: str
) -> dict[str, str]:
    details = cp.list_action_executions(
        pipelineName=scenario.pipeline_name, filter={"pipelineExecutionId": execution_id}
    )["actionExecutionDetails"]
    return {
        d["actionName"]: d["status"] for d in details if d["actionName"] in scenario.action_names
    }


def _print_results(cp: CodePipelineClient, scenario: Scenario, execution_id: str) -> dict[str, Any]:
    details = cp.list_action_executions(
        pipelineName=scenario.pipeline_name, filter={"pipelineExecutionId": execution_id}
    )["actionExecutionDetails"]
    by_action = {}
    for detail in reversed(details):
        by_action[detail["actionName"]] = detail
        if detail["actionName"] not in scenario.action_names:
            continue
        result = detail.get("output", {}).get("executionResult", {})
        if detail["status"] == "Succeeded":
            outcome = f"summary={result.get('externalExecutionSummary', '')!r}"
            outcome += f" variables={detail.get('output', {}).get('outputVariables', {})}"
        else:
            errors = result.get("errorDetails") or {}
            outcome = f"{errors.get('code')}: {errors.get('message', '')!r}"
        _say(f"{detail['actionName']}: {detail['status']}  {outcome}")
    return by_action


def _show_output_artifact(s3: S3Client, detail: dict[str, Any]) -> str:
    """Test's output in S3: a zip of what the container wrote, encrypted with SSE-KMS."""
    (artifact,) = detail["output"]["outputArtifacts"]
    location = artifact["s3location"]
    head = s3.head_object(Bucket=location["bucket"], Key=location["key"])
    body = s3.get_object(Bucket=location["bucket"], Key=location["key"])["Body"].read()
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        report = archive.read("report.txt").decode()
        listed = archive.namelist()
    _say(f"{artifact['name']}: s3://{location['bucket']}/{location['key']} = zip {listed}")
    _say(
        f"  encrypted: {head.get('ServerSideEncryption')} with {head.get('SSEKMSKeyId')}; "
        f"report.txt starts {report.splitlines()[0]!r}"
    )
    return report


# --- the summary ----------------------------------------------------------------------------


def _latency(job: dict[str, Any], start: str, end: str) -> float | None:
    annotations = job["metadata"].get("annotations") or {}
    began, ended = timestamps.parse(annotations.get(start)), timestamps.parse(annotations.get(end))
    return (ended - began).total_seconds() if began and ended else None


def _figures(values: list[float]) -> str:
    if not values:
        return "-"
    return f"median {statistics.median(values):.2f} s, max {max(values):.2f} s (n={len(values)})"


def _mean_stage_seconds(stack: SandboxStack, stage: str) -> float | None:
    """The mean of a stage's latency, from the in-process operator's own metrics."""
    labels = {"namespace": NAMESPACE, "worker": WORKER, "stage": stage}
    for component in stack.components:
        operator = getattr(component, "operator", None)
        metrics = getattr(operator, "metrics", None)
        if metrics is None:
            continue
        total = metrics.registry.get_sample_value("cpworker_job_stage_duration_seconds_sum", labels)
        count = metrics.registry.get_sample_value(
            "cpworker_job_stage_duration_seconds_count", labels
        )
        if total is not None and count:
            return float(total) / float(count)
    return None


OPERATOR_CALLS = (
    "PollForJobs",
    "AcknowledgeJob",
    "GetJobDetails",
    "PutJobSuccessResult",
    "PutJobFailureResult",
    "ListActionTypes",
    "GetPipeline",
)


def summary(stack: SandboxStack, jobs: list[dict[str, Any]], kube: Kubectl) -> None:
    assert stack.codepipeline is not None
    results = Counter(
        (j["metadata"].get("annotations") or {}).get(names.ANNOTATION_RESULT, "?") for j in jobs
    )
    _say(f"jobs: {len(jobs)} ({', '.join(f'{n} {r}' for r, n in sorted(results.items()))})")
    dispatch = [
        v
        for j in jobs
        if (v := _latency(j, names.ANNOTATION_AVAILABLE_AT, names.ANNOTATION_RELEASED_AT))
        is not None
    ]
    _say(f"dispatch latency (polled -> Job released): {_figures(dispatch)}")
    report = _mean_stage_seconds(stack, "report")
    if report is not None:
        _say(f"report latency (Job finished -> result accepted): mean {report:.2f} s")
    calls = Counter(r.operation for r in stack.codepipeline.requests())
    made = ", ".join(f"{op} {calls[op]}" for op in OPERATOR_CALLS if calls[op])
    _say(f"CodePipeline calls the operator made: {made}")
    print(kube.get_workers(), end="", flush=True)


# --- the demo -------------------------------------------------------------------------------


@dataclass
class Demo:
    """The demo's clients and what went other than expected."""

    stack: SandboxStack
    cp: CodePipelineClient
    s3: S3Client
    kube: Kubectl
    deadline: float
    problems: list[str] = field(default_factory=list)

    def setup(self) -> Scenario:
        _step("a custom action type and a pipeline")
        scenario = create_scenario(
            self.cp,
            self.s3,
            name="sandbox-demo",
            provider="SandboxDemo",
            pool="demo",
            actions=("Build", "Test"),
            configuration={"Target": "release"},
            secret_configuration={"ApiToken": DEMO_SECRET},
            kms_key_id=KMS_KEY,
            source_files=SOURCE,
        )
        _say("action type Build/Custom/SandboxDemo/1 (queryable property Pool, secret ApiToken)")
        _say(f"pipeline {scenario.pipeline_name}: S3 source -> Build -> Test, artifacts SSE-KMS")
        _step("a worker in a new namespace, with kubectl")
        _say(self.kube.create_namespace())
        _say(self.kube.apply(worker_manifest(scenario, self.stack.region)))
        condition = _wait("the worker to become Ready", lambda: _ready(self.kube), self.deadline)
        _say(f"Ready: {condition.get('reason')}: {condition.get('message')}")
        return scenario

    def artifacts(self, scenario: Scenario) -> None:
        _step("execution 1: real artifacts through Build and Test")
        execution = scenario.start(self.cp)
        status, _ = follow(self.cp, scenario, self.kube, execution, self.deadline)
        details = _print_results(self.cp, scenario, execution)
        if status != "Succeeded":
            self.problems.append(f"execution 1 ended {status}")
            return
        if "Test" not in details:
            self.problems.append("Test never ran")
            return
        report = _show_output_artifact(self.s3, details["Test"])
        if "app 1.4.2" not in report:
            self.problems.append("Test's output does not carry the source's version")

    def wake_up(self, scenario: Scenario) -> None:
        _step("execution 2, started while the worker idles")
        time.sleep(2)  # the worker is idle now: its next poll is minutes away
        _say(f"idle: next poll within {IDLE_POLL_SECONDS} s; CodePipeline's event wakes it")
        execution = scenario.start(self.cp)
        status, lines = follow(self.cp, scenario, self.kube, execution, self.deadline)
        _print_results(self.cp, scenario, execution)
        woke = [
            line.seen["claimed"] - line.seen["queued"]
            for line in lines.values()
            if {"claimed", "queued"} <= set(line.seen)
        ]
        _say(f"queued -> claimed: {_figures(woke)} (as seen by this demo's 0.1 s polling)")
        if status != "Succeeded":
            self.problems.append(f"execution 2 ended {status}")

    def failure(self, scenario: Scenario) -> None:
        _step("execution 3, with a source that breaks the tests")
        self.s3.put_object(
            Bucket=scenario.source_bucket, Key=scenario.source_key, Body=source_zip(BROKEN)
        )
        execution = scenario.start(self.cp)
        status, _ = follow(self.cp, scenario, self.kube, execution, self.deadline)
        details = _print_results(self.cp, scenario, execution)
        result = details.get("Test", {}).get("output", {}).get("executionResult") or {}
        code = (result.get("errorDetails") or {}).get("code")
        if status != "Failed" or code != "JobFailed":
            self.problems.append(f"execution 3 ended {status} ({code}), not a JobFailed")
        else:
            _say("as expected: the failure type and the container's reason reach the pipeline")

    def close(self) -> None:
        _step("summary")
        _wait(
            "the worker's counters",
            lambda: (self.kube.worker().get("status") or {}).get("failed") == 1,
            self.deadline,
        )
        summary(self.stack, self.kube.jobs(), self.kube)


def run_demo(stack: SandboxStack, timeout: float = 150.0) -> int:
    """Drive three executions through the stack and the operator; 0 when all went as expected."""
    cp, s3 = _aws_clients(stack)
    kube = Kubectl(stack.env["KUBECONFIG"], stack.directory / "kubectl-cache")
    demo = Demo(stack, cp, s3, kube, deadline=time.monotonic() + timeout)
    try:
        scenario = demo.setup()
        demo.artifacts(scenario)
        demo.wake_up(scenario)
        demo.failure(scenario)
        demo.close()
    except (BotoCoreError, ClientError, ApiException, TimeoutError, RuntimeError, KeyError) as exc:
        print(f"demo FAILED: {exc}", flush=True)
        return 1
    assert stack.codepipeline is not None
    problems = demo.problems + [
        f"conformance violation: {v}" for v in stack.codepipeline.violations()
    ]
    for problem in problems:
        print(f"unexpected: {problem}", flush=True)
    print("demo succeeded" if not problems else "demo FAILED", flush=True)
    return 0 if not problems else 1
