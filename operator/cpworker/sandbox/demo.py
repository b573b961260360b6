"""`cpworker sandbox demo`: one pipeline, start to finish, with boto3 playing a simple worker.

The worker here is deliberately hand-rolled (poll -> acknowledge -> details -> success); the
project's operator replaces it once it can run against the local Kubernetes API.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from cpworker.sandbox.codepipeline.environment import client_config
from cpworker.sandbox.codepipeline.scenario import Scenario, create_scenario
from cpworker.sandbox.stack import SandboxStack

if TYPE_CHECKING:
    from mypy_boto3_codepipeline import CodePipelineClient
    from mypy_boto3_s3 import S3Client


def _step(number: int, text: str) -> None:
    print(f"[{number}] {text}", flush=True)


def _clients(stack: SandboxStack) -> tuple[CodePipelineClient, S3Client]:
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


def _work(cp: CodePipelineClient, scenario: Scenario, deadline: float) -> str:
    _step(4, f"worker: PollForJobs {scenario.action_type_id['provider']} {scenario.query_param}")
    jobs: list[Any] = []
    while not jobs:
        if time.monotonic() > deadline:
            raise TimeoutError("no job was delivered in time")
        jobs = scenario.poll(cp)
        if not jobs:
            time.sleep(0.1)
    job = jobs[0]
    data = job["data"]
    inputs = ", ".join(a["name"] for a in data["inputArtifacts"]) or "none"
    _step(5, f"worker: got job {job['id']} (inputs: {inputs})")
    status = cp.acknowledge_job(jobId=job["id"], nonce=job["nonce"])["status"]
    _step(6, f"worker: AcknowledgeJob -> {status}")
    if status != "InProgress":
        raise RuntimeError(f"the job was not ours to run (status {status})")
    details = cp.get_job_details(jobId=job["id"])["jobDetails"]
    config = details["data"]["actionConfiguration"]["configuration"]
    _step(7, f"worker: GetJobDetails -> configuration keys {sorted(config)}, fresh credentials")
    cp.put_job_success_result(
        jobId=job["id"],
        executionDetails={
            "summary": "demo build done",
            "externalExecutionId": "demo-1",
            "percentComplete": 100,
        },
        outputVariables={"ImageTag": "demo-1", "Result": "ok"},
    )
    _step(8, "worker: PutJobSuccessResult with output variables ImageTag, Result")
    return str(job["id"])


def run_demo(stack: SandboxStack, timeout: float = 60.0) -> int:
    """Drive one pipeline through the stack; 0 when the execution Succeeded."""
    deadline = time.monotonic() + timeout
    cp, s3 = _clients(stack)
    try:
        _step(1, "create custom action type Build/Custom/SandboxDemo/1 (queryable property Pool)")
        scenario = create_scenario(cp, s3, name="sandbox-demo", provider="SandboxDemo", pool="demo")
        _step(2, f"create pipeline {scenario.pipeline_name}: S3 source -> custom Build action")
        execution_id = scenario.start(cp)
        _step(3, f"StartPipelineExecution -> {execution_id}")
        _work(cp, scenario, deadline)
        status = scenario.wait(cp, execution_id, timeout=max(1.0, deadline - time.monotonic()))
        _step(9, f"execution {execution_id}: {status}")
        details = cp.list_action_executions(
            pipelineName=scenario.pipeline_name, filter={"pipelineExecutionId": execution_id}
        )["actionExecutionDetails"]
        for detail in reversed(details):
            result = detail.get("output", {}).get("executionResult", {})
            variables = detail.get("output", {}).get("outputVariables", {})
            print(
                f"    {detail['stageName']}/{detail['actionName']}: {detail['status']}"
                f" {result.get('externalExecutionSummary', '')!r} variables={variables}"
            )
    except (BotoCoreError, ClientError, TimeoutError, RuntimeError) as exc:
        print(f"demo FAILED: {exc}", flush=True)
        return 1
    assert stack.codepipeline is not None
    violations = stack.codepipeline.violations()
    for violation in violations:
        print(f"conformance violation: {violation}")
    ok = status == "Succeeded" and not violations
    print("demo succeeded" if ok else f"demo FAILED: execution ended {status}", flush=True)
    return 0 if ok else 1
