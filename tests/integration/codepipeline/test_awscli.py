"""The AWS CLI (the venv's awscli), pointed at the sandbox only through the env file."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cpworker.sandbox.codepipeline import CodePipelineStandIn
from cpworker.sandbox.codepipeline.scenario import Scenario, source_zip
from cpworker.sandbox.stack import render_env

AWS = Path(sys.executable).with_name("aws")
ScenarioFactory = Callable[..., Scenario]


class AwsCli:
    """Runs `aws ...` in bash after `source <env file>`, like a user of `cpworker sandbox up`."""

    def __init__(self, env_file: Path) -> None:
        self.env_file = env_file

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = (
            f"source {shlex.quote(str(self.env_file))} && exec {shlex.quote(str(AWS))} "
            + " ".join(shlex.quote(a) for a in args)
        )
        # A clean environment: everything the CLI knows about the sandbox comes from the env file.
        result = subprocess.run(
            ["bash", "-c", command],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "HOME": str(self.env_file.parent)},
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"aws {' '.join(args)} failed ({result.returncode}): {result.stderr}"
            )
        return result

    def json(self, *args: str) -> Any:
        output = self.run(*args, "--output", "json").stdout
        return json.loads(output) if output.strip() else {}


@pytest.fixture
def aws(aws_env: dict[str, str], tmp_path: Path) -> AwsCli:
    env_file = tmp_path / "env"
    env_file.write_text(render_env(aws_env))
    return AwsCli(env_file)


def poll(aws: AwsCli, type_id: dict[str, str], pool: str) -> list[Any]:
    type_arg = ",".join(f"{k}={v}" for k, v in type_id.items())
    deadline = time.monotonic() + 30
    while True:
        jobs: list[Any] = aws.json(
            "codepipeline",
            "poll-for-jobs",
            "--action-type-id",
            type_arg,
            "--query-param",
            f"Pool={pool}",
        )["jobs"]
        if jobs or time.monotonic() > deadline:
            return jobs
        time.sleep(0.1)


def wait(aws: AwsCli, pipeline: str, execution_id: str) -> str:
    deadline = time.monotonic() + 30
    while True:
        status = aws.json(
            "codepipeline",
            "get-pipeline-execution",
            "--pipeline-name",
            pipeline,
            "--pipeline-execution-id",
            execution_id,
        )["pipelineExecution"]["status"]
        if status not in {"InProgress", "Stopping"} or time.monotonic() > deadline:
            return str(status)
        time.sleep(0.1)


def test_whole_pipeline_with_the_cli(aws: AwsCli, tmp_path: Path) -> None:
    source = tmp_path / "app.zip"
    source.write_bytes(source_zip())
    aws.run("s3api", "create-bucket", "--bucket", "cli-source")
    aws.run("s3api", "create-bucket", "--bucket", "cli-artifacts")
    aws.run(
        "s3api", "put-object", "--bucket", "cli-source", "--key", "app.zip", "--body", str(source)
    )
    action_type = {
        "category": "Build",
        "provider": "CliBuild",
        "version": "1",
        "settings": {"executionUrlTemplate": "https://ci.example.com/{ExternalExecutionId}"},
        "configurationProperties": [
            {"name": "Pool", "required": True, "key": True, "secret": False, "queryable": True},
            {"name": "Password", "required": False, "key": False, "secret": True},
        ],
        "inputArtifactDetails": {"minimumCount": 1, "maximumCount": 1},
        "outputArtifactDetails": {"minimumCount": 0, "maximumCount": 1},
    }
    created = aws.json(
        "codepipeline", "create-custom-action-type", "--cli-input-json", json.dumps(action_type)
    )
    assert created["actionType"]["id"]["provider"] == "CliBuild"
    type_id = {"category": "Build", "owner": "Custom", "provider": "CliBuild", "version": "1"}
    pipeline = {
        "pipeline": {
            "name": "cli-pipeline",
            "roleArn": "arn:aws:iam::123456789012:role/pipeline",
            "artifactStore": {"type": "S3", "location": "cli-artifacts"},
            "stages": [
                {
                    "name": "Source",
                    "actions": [
                        {
                            "name": "Source",
                            "actionTypeId": {
                                "category": "Source",
                                "owner": "AWS",
                                "provider": "S3",
                                "version": "1",
                            },
                            "configuration": {"S3Bucket": "cli-source", "S3ObjectKey": "app.zip"},
                            "outputArtifacts": [{"name": "Src"}],
                        }
                    ],
                },
                {
                    "name": "Build",
                    "actions": [
                        {
                            "name": "Build",
                            "actionTypeId": type_id,
                            "configuration": {"Pool": "cli", "Password": "pa55"},
                            "inputArtifacts": [{"name": "Src"}],
                            "namespace": "BuildVariables",
                        }
                    ],
                },
            ],
        }
    }
    aws.run("codepipeline", "create-pipeline", "--cli-input-json", json.dumps(pipeline))
    execution_id = aws.json("codepipeline", "start-pipeline-execution", "--name", "cli-pipeline")[
        "pipelineExecutionId"
    ]
    (job,) = poll(aws, type_id, "cli")
    assert job["data"]["actionConfiguration"]["configuration"]["Password"] == "pa55"
    acked = aws.json(
        "codepipeline", "acknowledge-job", "--job-id", job["id"], "--nonce", job["nonce"]
    )
    assert acked["status"] == "InProgress"
    details = aws.json("codepipeline", "get-job-details", "--job-id", job["id"])["jobDetails"]
    assert (
        details["data"]["inputArtifacts"][0]["location"]["s3Location"]["bucketName"]
        == "cli-artifacts"
    )
    aws.run(
        "codepipeline",
        "put-job-success-result",
        "--job-id",
        job["id"],
        "--execution-details",
        "summary=built by the CLI,externalExecutionId=cli-1,percentComplete=100",
        "--output-variables",
        "Version=1.0.0,Commit=abc",
    )
    assert wait(aws, "cli-pipeline", execution_id) == "Succeeded"
    details = aws.json(
        "codepipeline",
        "list-action-executions",
        "--pipeline-name",
        "cli-pipeline",
        "--filter",
        f"pipelineExecutionId={execution_id}",
    )["actionExecutionDetails"]
    build = next(d for d in details if d["actionName"] == "Build")
    assert build["output"]["executionResult"]["externalExecutionId"] == "cli-1"
    assert build["output"]["executionResult"]["externalExecutionSummary"] == "built by the CLI"
    assert (
        build["output"]["executionResult"]["externalExecutionUrl"] == "https://ci.example.com/cli-1"
    )
    assert build["output"]["outputVariables"] == {"Version": "1.0.0", "Commit": "abc"}
    failed = aws.run(
        "codepipeline", "acknowledge-job", "--job-id", job["id"], "--nonce", "stale", check=False
    )
    assert failed.returncode != 0
    assert "InvalidNonceException" in failed.stderr


def _claim(aws: AwsCli, scenario: Scenario) -> dict[str, Any]:
    (job,) = poll(aws, scenario.action_type_id, scenario.query_param["Pool"])
    assert (
        aws.json("codepipeline", "acknowledge-job", "--job-id", job["id"], "--nonce", job["nonce"])[
            "status"
        ]
        == "InProgress"
    )
    return dict(job)


@pytest.mark.parametrize(
    "ending", ["failure", "continuation", "stop", "stop-abandon", "timeout", "race"]
)
def test_job_endings_with_the_cli(
    aws: AwsCli, codepipeline: CodePipelineStandIn, cp_scenario: ScenarioFactory, ending: str
) -> None:
    codepipeline.config.continuation_delay = 0.1
    codepipeline.config.job_timeout = 300.0
    codepipeline.config.redelivery_window = 0.0 if ending == "race" else 30.0
    scenario = cp_scenario()
    name = scenario.pipeline_name
    execution_id = aws.json("codepipeline", "start-pipeline-execution", "--name", name)[
        "pipelineExecutionId"
    ]
    if ending == "race":
        (first,) = poll(aws, scenario.action_type_id, "default")
        (second,) = poll(aws, scenario.action_type_id, "default")
        lost = aws.run(
            "codepipeline",
            "acknowledge-job",
            "--job-id",
            first["id"],
            "--nonce",
            first["nonce"],
            check=False,
        )
        assert "InvalidNonceException" in lost.stderr
        won = aws.json(
            "codepipeline", "acknowledge-job", "--job-id", second["id"], "--nonce", second["nonce"]
        )
        assert won["status"] == "InProgress"
        aws.run("codepipeline", "put-job-success-result", "--job-id", second["id"])
        expected = "Succeeded"
    else:
        job = _claim(aws, scenario)
        if ending == "failure":
            aws.run(
                "codepipeline",
                "put-job-failure-result",
                "--job-id",
                job["id"],
                "--failure-details",
                "type=JobFailed,message=tests failed",
            )
            expected = "Failed"
        elif ending == "continuation":
            aws.run(
                "codepipeline",
                "put-job-success-result",
                "--job-id",
                job["id"],
                "--continuation-token",
                "page-2",
            )
            again = _claim(aws, scenario)
            assert again["data"]["continuationToken"] == "page-2"
            aws.run("codepipeline", "put-job-success-result", "--job-id", again["id"])
            expected = "Succeeded"
        elif ending in {"stop", "stop-abandon"}:
            flags = ["--abandon"] if ending == "stop-abandon" else ["--no-abandon"]
            aws.run(
                "codepipeline",
                "stop-pipeline-execution",
                "--pipeline-name",
                name,
                "--pipeline-execution-id",
                execution_id,
                "--reason",
                "cli stop",
                *flags,
            )
            if ending == "stop":
                aws.run("codepipeline", "put-job-success-result", "--job-id", job["id"])
            expected = "Stopped"
        else:
            # Shortened only once the job is claimed: a timeout set before the poll raced the
            # CLI's own start-up (two awscli runs took over 2 s on a loaded CI machine).
            codepipeline.config.job_timeout = 0.0
            expected = "Failed"
    assert wait(aws, name, execution_id) == expected
