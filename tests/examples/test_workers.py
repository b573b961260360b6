"""examples/workers and examples/codepipeline: valid, consistent with each other, and working.

Offline: each worker passes the operator's own checks; every worker serves an action of the
example pipeline (same action type, same Pool) and every custom action has a worker; the
scripts parse and use only variables, files and artifacts the job really gets.

Against `cpworker sandbox up --operator`, as a user would with the AWS CLI and kubectl: the
action types and the pipeline are created from the JSON files, the workers applied in a new
namespace become Ready, and an execution runs Build -> Test -> Deploy through them.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from cpworker import jobmanifest, jobsecret, jobtemplate
from cpworker.jobdata import parse_job
from cpworker.jobmanifest import WorkerRef
from cpworker.models import parse_spec
from tests.examples.conftest import (
    ACTION_TYPES,
    EXAMPLES,
    NAMESPACE,
    PIPELINE,
    WORKERS,
    load_json,
    load_worker,
    relative,
)
from tests.unit.operator import samples
from tests.usershell import REPO_ROOT, Shell

CONTRACT = (REPO_ROOT / "docs" / "job-contract.md").read_text()
# examples/sandbox/build-report.yaml: in the sandbox the Build container is simulated and
# reports what the example's script writes, with this output variable.
REPORT = EXAMPLES / "sandbox" / "build-report.yaml"
BUILD_TAG = "1.4.2-sandbox"
VARIABLE = re.compile(r"\$\{?(CPWORKER_[A-Z0-9_]+)")
INPUT = re.compile(r"\$\{?CPWORKER_INPUT_DIR\}?/([A-Za-z0-9_-]+)")
OUTPUT = re.compile(r"\$\{?CPWORKER_OUTPUT_DIR\}?/([A-Za-z0-9_-]+)")
SECRET_FILE = re.compile(r"secret-config\.[A-Za-z0-9._-]+")


def _action_types() -> dict[tuple[str, str, str], dict[str, Any]]:
    found = {}
    for path in ACTION_TYPES:
        definition = load_json(path)
        found[(definition["category"], definition["provider"], definition["version"])] = definition
    return found


def _custom_actions() -> list[dict[str, Any]]:
    pipeline = load_json(PIPELINE)["pipeline"]
    return [
        action
        for stage in pipeline["stages"]
        for action in stage["actions"]
        if action["actionTypeId"]["owner"] == "Custom"
    ]


def _key(action_type_id: dict[str, str]) -> tuple[str, str, str]:
    return (action_type_id["category"], action_type_id["provider"], action_type_id["version"])


def _served_action(worker: dict[str, Any]) -> dict[str, Any]:
    """The pipeline action this worker's polls match (action type and queryable value)."""
    spec = worker["spec"]
    matches = [
        action
        for action in _custom_actions()
        if _key(action["actionTypeId"]) == _key(spec["actionTypeId"])
        and all(action["configuration"].get(k) == v for k, v in spec["queryParam"].items())
    ]
    assert len(matches) == 1, f"{worker['metadata']['name']}: serves {len(matches)} actions"
    return matches[0]


def _scripts(worker: dict[str, Any]) -> list[str]:
    pod = worker["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    containers = [*pod.get("initContainers", []), *pod["containers"]]
    return [text for c in containers for text in [*c.get("command", []), *c.get("args", [])]]


def _container_env(worker: dict[str, Any], action: dict[str, Any]) -> set[str]:
    """The environment the operator gives the worker's containers for a job of `action`."""
    definition = _action_types()[_key(action["actionTypeId"])]
    secret = {p["name"] for p in definition["configurationProperties"] if p["secret"]}
    raw = samples.raw_job()
    raw["data"]["actionTypeId"] = {**action["actionTypeId"]}
    raw["data"]["actionConfiguration"] = {"configuration": dict(action["configuration"])}
    job = jobmanifest.build_job(
        worker=WorkerRef(name=worker["metadata"]["name"], namespace=NAMESPACE, uid="uid-1"),
        spec=parse_spec(worker["spec"]),
        job=parse_job(raw),
        secret_property_names=frozenset(secret),
        settings=samples.settings(),
        now=samples.NOW,
    )
    pod = job["spec"]["template"]["spec"]
    return {e["name"] for c in pod["containers"] for e in c.get("env", [])}


@pytest.mark.parametrize("path", WORKERS, ids=lambda p: p.name)
def test_the_worker_passes_the_operators_checks(path: Path) -> None:
    worker = load_worker(path)
    assert worker["metadata"]["namespace"] == NAMESPACE
    spec = parse_spec(worker["spec"])
    assert jobtemplate.validate_job_template(spec.job_template) == []


@pytest.mark.parametrize("path", WORKERS, ids=lambda p: p.name)
def test_the_worker_serves_an_action_of_the_example_pipeline(path: Path) -> None:
    worker = load_worker(path)
    definition = _action_types()[_key(worker["spec"]["actionTypeId"])]
    queryable = [p["name"] for p in definition["configurationProperties"] if p.get("queryable")]
    # PollForJobs matches on the type's queryable property: any other key finds no job.
    assert list(worker["spec"]["queryParam"]) == queryable
    _served_action(worker)


def test_every_custom_action_of_the_pipeline_has_a_worker_and_a_type() -> None:
    served = sorted(_served_action(load_worker(path))["name"] for path in WORKERS)
    actions = _custom_actions()
    assert served == sorted(action["name"] for action in actions)
    assert {_key(action["actionTypeId"]) for action in actions} == set(_action_types())


@pytest.mark.parametrize("path", WORKERS, ids=lambda p: p.name)
def test_the_scripts_use_only_what_the_job_gets(path: Path) -> None:
    worker = load_worker(path)
    action = _served_action(worker)
    env = _container_env(worker, action)
    scripts = [text for text in _scripts(worker) if "\n" in text]
    assert scripts, "the example shows its container's script"
    definition = _action_types()[_key(action["actionTypeId"])]
    secret_files = set(
        jobsecret.secret_file_names(
            [p["name"] for p in definition["configurationProperties"] if p["secret"]]
        ).values()
    )
    for script in scripts:
        parsed = subprocess.run(
            ["sh", "-n"], input=script, text=True, capture_output=True, check=False
        )
        assert parsed.returncode == 0, parsed.stderr
        for variable in VARIABLE.findall(script):
            # Set by the operator today, or promised by the job contract (the artifact
            # directories, set once the artifact helper runs in the pod).
            assert variable in env or f"`{variable}`" in CONTRACT, variable
        inputs = {a["name"] for a in action.get("inputArtifacts", [])}
        outputs = {a["name"] for a in action.get("outputArtifacts", [])}
        assert set(INPUT.findall(script)) <= inputs
        assert set(OUTPUT.findall(script)) <= outputs
        assert set(SECRET_FILE.findall(script)) <= secret_files


def test_every_example_file_is_covered_by_a_test() -> None:
    files = {
        relative(p) for p in EXAMPLES.rglob("*") if p.is_file() and ".terraform" not in p.parts
    }
    here = {relative(p) for p in [*WORKERS, *ACTION_TYPES, PIPELINE, REPORT]}
    # The Terraform root and the Helm values have test files of their own; the README is a doc.
    elsewhere = ("examples/terraform/", "examples/helm/", "examples/README.md")
    assert sorted(f for f in files - here if not f.startswith(elsewhere)) == []


def _wait_for_execution(shell: Shell, pipeline: str, execution: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = shell(
            f"aws codepipeline get-pipeline-execution --pipeline-name {pipeline} "
            f"--pipeline-execution-id {execution} --query pipelineExecution.status --output text"
        ).strip()
        if status not in {"InProgress", "Stopping"} or time.monotonic() > deadline:
            return status
        time.sleep(1)


def test_the_examples_run_a_pipeline_in_the_sandbox(operator_shell: Shell, tmp_path: Path) -> None:
    shell = operator_shell
    pipeline = load_json(PIPELINE)["pipeline"]
    shell(f"kubectl create namespace {NAMESPACE}")
    # Pod Security admission at its strictest: the operator's Jobs must pass it as they are.
    shell(f"kubectl label namespace {NAMESPACE} pod-security.kubernetes.io/enforce=restricted")
    for path in ACTION_TYPES:
        shell(
            f"aws codepipeline create-custom-action-type --cli-input-json file://{relative(path)}"
        )

    # Accepted by the CRD, and Ready with the real operator now that the types exist.
    shell("kubectl apply -f examples/workers/")
    shell(f"kubectl wait -n {NAMESPACE} caw --all --for=condition=Ready --timeout=90s")
    workers = json.loads(shell(f"kubectl get caw -n {NAMESPACE} -o json"))["items"]
    assert sorted(w["metadata"]["name"] for w in workers) == sorted(
        load_worker(p)["metadata"]["name"] for p in WORKERS
    )

    # The Build container's report, as its script writes it (the sandbox simulates it).
    shell(f"kubectl patch caw build -n {NAMESPACE} --type merge --patch-file {relative(REPORT)}")

    # The buckets and the source object the pipeline names.
    source = pipeline["stages"][0]["actions"][0]["configuration"]
    (tmp_path / "README.md").write_text("hello\n")
    shell(f"cd {tmp_path} && python -m zipfile -c app.zip README.md")
    shell(f"aws s3 mb s3://{pipeline['artifactStore']['location']}")
    shell(f"aws s3 mb s3://{source['S3Bucket']}")
    shell(f"aws s3 cp {tmp_path / 'app.zip'} s3://{source['S3Bucket']}/{source['S3ObjectKey']}")

    shell(f"aws codepipeline create-pipeline --cli-input-json file://{relative(PIPELINE)}")
    execution = shell(
        f"aws codepipeline start-pipeline-execution --name {pipeline['name']} "
        "--query pipelineExecutionId --output text"
    ).strip()
    status = _wait_for_execution(shell, pipeline["name"], execution, timeout=120)
    details = json.loads(
        shell(f"aws codepipeline list-action-executions --pipeline-name {pipeline['name']}")
    )["actionExecutionDetails"]
    assert status == "Succeeded", json.dumps(details, indent=1)[-3000:]

    by_action = {d["actionName"]: d for d in details}
    for action in _custom_actions():
        detail = by_action[action["name"]]
        assert detail["status"] == "Succeeded"
        assert detail["output"]["executionResult"]["externalExecutionId"].startswith(
            f"{NAMESPACE}/cpw-"
        )
    assert by_action["Build"]["output"]["outputVariables"] == {"IMAGE_TAG": BUILD_TAG}
    deploy = by_action["Deploy"]["input"]
    assert deploy["resolvedConfiguration"]["ImageTag"] == BUILD_TAG

    # The secret configuration value: masked by CodePipeline, and nowhere in what the
    # operator wrote to Kubernetes that outlives the job (the Secret is gone once reported).
    token = next(
        action["configuration"]["DeployToken"]
        for action in _custom_actions()
        if action["name"] == "Deploy"
    )
    assert deploy["configuration"]["DeployToken"] == "****"
    declared = shell(f"aws codepipeline get-pipeline --name {pipeline['name']}")
    assert token not in declared
    written = shell(f"kubectl get jobs,pods,events,secrets,caw -n {NAMESPACE} -o yaml")
    assert "kind: Job" in written
    assert token not in written
    counters = json.loads(shell(f"kubectl get caw -n {NAMESPACE} -o json"))["items"]
    assert {w["metadata"]["name"]: w["status"].get("succeeded") for w in counters} == {
        "build": 1,
        "gpu-test": 1,
        "deploy": 1,
    }
