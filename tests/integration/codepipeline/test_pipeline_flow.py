"""Whole pipelines driven through boto3: success, failure, continuation, stop, timeout, races."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from cpworker.sandbox.codepipeline import CodePipelineStandIn
from cpworker.sandbox.codepipeline.scenario import Scenario

if TYPE_CHECKING:
    from mypy_boto3_codepipeline import CodePipelineClient
    from mypy_boto3_s3 import S3Client

ScenarioFactory = Callable[..., Scenario]


def claim(cp: CodePipelineClient, scenario: Scenario) -> dict[str, Any]:
    job = scenario.wait_for_jobs(cp)[0]
    assert cp.acknowledge_job(jobId=job["id"], nonce=job["nonce"])["status"] == "InProgress"
    return dict(job)


def action_detail(
    cp: CodePipelineClient, scenario: Scenario, execution_id: str, action: str
) -> dict[str, Any]:
    details = cp.list_action_executions(
        pipelineName=scenario.pipeline_name, filter={"pipelineExecutionId": execution_id}
    )["actionExecutionDetails"]
    return dict(next(d for d in details if d["actionName"] == action))


def test_whole_pipeline_succeeds_with_output_variables(
    cp_client: CodePipelineClient, s3_client: S3Client, cp_scenario: ScenarioFactory
) -> None:
    scenario = cp_scenario(
        configuration={"Target": "release"}, secret_configuration={"ApiToken": "tok-123"}
    )
    execution_id = scenario.start(cp_client)
    job = claim(cp_client, scenario)

    data = job["data"]
    assert data["actionTypeId"] == scenario.action_type_id
    # AWS delivers secret configuration in clear text to the worker.
    assert data["actionConfiguration"]["configuration"] == {
        "Pool": "default",
        "Target": "release",
        "ApiToken": "tok-123",
    }
    context = data["pipelineContext"]
    assert context["pipelineName"] == scenario.pipeline_name
    assert context["pipelineExecutionId"] == execution_id
    assert context["stage"]["name"] == "Build"
    assert context["action"]["name"] == "Build"
    assert (
        context["pipelineArn"]
        == f"arn:aws:codepipeline:us-east-1:123456789012:{scenario.pipeline_name}"
    )
    (source,) = data["inputArtifacts"]
    location = source["location"]["s3Location"]
    assert location["bucketName"] == scenario.artifact_bucket
    assert "." not in location["objectKey"].rsplit("/", 1)[-1]
    # The S3 source action copied the source object into the artifact store.
    copied = s3_client.get_object(Bucket=location["bucketName"], Key=location["objectKey"])[
        "Body"
    ].read()
    original = s3_client.get_object(Bucket=scenario.source_bucket, Key=scenario.source_key)[
        "Body"
    ].read()
    assert copied == original
    (output,) = data["outputArtifacts"]
    assert output["name"] == "BuildOutput"
    credentials = data["artifactCredentials"]
    assert credentials["accessKeyId"].startswith("ASIA")
    assert credentials["sessionToken"]
    assert "encryptionKey" not in data
    assert "continuationToken" not in data

    details = cp_client.get_job_details(jobId=job["id"])["jobDetails"]
    assert details["id"] == job["id"]
    assert details["accountId"] == "123456789012"
    assert details["data"]["artifactCredentials"]["accessKeyId"] != credentials["accessKeyId"]

    cp_client.put_job_success_result(
        jobId=job["id"],
        executionDetails={
            "summary": "built 3 images",
            "externalExecutionId": "run-42",
            "percentComplete": 100,
        },
        currentRevision={"revision": "abc123", "changeIdentifier": "change-1"},
        outputVariables={"ImageTag": "v1.2.3", "Digest": "sha256:0123"},
    )
    assert scenario.wait(cp_client, execution_id) == "Succeeded"

    detail = action_detail(cp_client, scenario, execution_id, "Build")
    assert detail["status"] == "Succeeded"
    result = detail["output"]["executionResult"]
    assert result["externalExecutionId"] == "run-42"
    assert result["externalExecutionSummary"] == "built 3 images"
    assert result["externalExecutionUrl"] == "https://ci.example.com/runs/run-42"
    assert detail["output"]["outputVariables"] == {"ImageTag": "v1.2.3", "Digest": "sha256:0123"}
    assert detail["input"]["configuration"]["ApiToken"] == "****"  # masked outside the job data
    state = cp_client.get_pipeline_state(name=scenario.pipeline_name)
    build = state["stageStates"][1]
    assert build["latestExecution"]["status"] == "Succeeded"
    assert build["actionStates"][0]["latestExecution"]["externalExecutionId"] == "run-42"
    assert cp_client.acknowledge_job(jobId=job["id"], nonce=job["nonce"])["status"] == "Succeeded"


def test_output_variables_resolve_in_later_actions(
    cp_client: CodePipelineClient, cp_scenario: ScenarioFactory
) -> None:
    scenario = cp_scenario(
        actions=("Build", "Deploy"), configuration={"Note": "from #{SourceVariables.ObjectKey}"}
    )
    execution_id = scenario.start(cp_client)
    first = claim(cp_client, scenario)
    assert (
        first["data"]["actionConfiguration"]["configuration"]["Note"]
        == f"from {scenario.source_key}"
    )
    cp_client.put_job_success_result(jobId=first["id"], outputVariables={"Tag": "t1"})
    # Update the pipeline under the running execution: the execution keeps its own snapshot.
    second = claim(cp_client, scenario)
    assert second["data"]["pipelineContext"]["action"]["name"] == "Deploy"
    assert [a["name"] for a in second["data"]["inputArtifacts"]] == ["BuildOutput"]
    cp_client.put_job_success_result(jobId=second["id"])
    assert scenario.wait(cp_client, execution_id) == "Succeeded"


def test_failure_fails_the_execution(
    cp_client: CodePipelineClient, cp_scenario: ScenarioFactory
) -> None:
    scenario = cp_scenario()
    execution_id = scenario.start(cp_client)
    job = claim(cp_client, scenario)
    cp_client.put_job_failure_result(
        jobId=job["id"],
        failureDetails={
            "type": "ConfigurationError",
            "message": "image not found",
            "externalExecutionId": "run-7",
        },
    )
    assert scenario.wait(cp_client, execution_id) == "Failed"
    detail = action_detail(cp_client, scenario, execution_id, "Build")
    assert detail["status"] == "Failed"
    assert detail["output"]["executionResult"]["errorDetails"] == {
        "code": "ConfigurationError",
        "message": "image not found",
    }
    assert detail["output"]["executionResult"]["externalExecutionId"] == "run-7"
    execution = cp_client.get_pipeline_execution(
        pipelineName=scenario.pipeline_name, pipelineExecutionId=execution_id
    )
    assert "image not found" in execution["pipelineExecution"]["statusSummary"]
    with pytest.raises(cp_client.exceptions.InvalidJobStateException):
        cp_client.put_job_success_result(jobId=job["id"])


def test_continuation_token_creates_a_new_job(
    codepipeline: CodePipelineStandIn, cp_client: CodePipelineClient, cp_scenario: ScenarioFactory
) -> None:
    codepipeline.config.continuation_delay = 0.2
    scenario = cp_scenario()
    execution_id = scenario.start(cp_client)
    first = claim(cp_client, scenario)
    assert "continuationToken" not in first["data"]
    with pytest.raises(cp_client.exceptions.ValidationException):
        cp_client.put_job_success_result(
            jobId=first["id"], continuationToken="t", outputVariables={"A": "b"}
        )
    cp_client.put_job_success_result(
        jobId=first["id"],
        continuationToken="step-2",
        executionDetails={"summary": "half way", "percentComplete": 50},
    )
    assert codepipeline.job_status(first["id"]) == "Succeeded"
    assert scenario.status(cp_client, execution_id) == "InProgress"
    second = claim(cp_client, scenario)
    assert second["id"] != first["id"]
    assert second["data"]["continuationToken"] == "step-2"
    assert (
        second["data"]["pipelineContext"]["action"]["actionExecutionId"]
        == (first["data"]["pipelineContext"]["action"]["actionExecutionId"])
    )
    cp_client.put_job_success_result(jobId=second["id"], outputVariables={"Done": "yes"})
    assert scenario.wait(cp_client, execution_id) == "Succeeded"


@pytest.mark.parametrize("abandon", [False, True])
def test_stop_in_the_middle_of_a_job(
    codepipeline: CodePipelineStandIn,
    cp_client: CodePipelineClient,
    cp_scenario: ScenarioFactory,
    *,
    abandon: bool,
) -> None:
    scenario = cp_scenario()
    execution_id = scenario.start(cp_client)
    job = claim(cp_client, scenario)
    cp_client.stop_pipeline_execution(
        pipelineName=scenario.pipeline_name,
        pipelineExecutionId=execution_id,
        abandon=abandon,
        reason="user stop",
    )
    if abandon:
        assert scenario.status(cp_client, execution_id) == "Stopped"
        # Stand-in choice (AWS documents none): an abandoned job ends as Failed.
        assert cp_client.acknowledge_job(jobId=job["id"], nonce=job["nonce"])["status"] == "Failed"
        with pytest.raises(cp_client.exceptions.InvalidJobStateException):
            cp_client.put_job_success_result(jobId=job["id"])
        assert action_detail(cp_client, scenario, execution_id, "Build")["status"] == "Abandoned"
    else:
        assert scenario.status(cp_client, execution_id) == "Stopping"
        with pytest.raises(cp_client.exceptions.DuplicatedStopRequestException):
            cp_client.stop_pipeline_execution(
                pipelineName=scenario.pipeline_name, pipelineExecutionId=execution_id
            )
        # Stop-and-wait lets the running job finish; nothing after it starts.
        assert (
            cp_client.acknowledge_job(jobId=job["id"], nonce=job["nonce"])["status"] == "InProgress"
        )
        cp_client.put_job_success_result(jobId=job["id"])
        assert scenario.wait(cp_client, execution_id) == "Stopped"
    summaries = cp_client.list_pipeline_executions(pipelineName=scenario.pipeline_name)[
        "pipelineExecutionSummaries"
    ]
    assert summaries[0]["stopTrigger"]["reason"] == "user stop"
    with pytest.raises(cp_client.exceptions.PipelineExecutionNotStoppableException):
        cp_client.stop_pipeline_execution(
            pipelineName=scenario.pipeline_name, pipelineExecutionId=execution_id
        )


def test_job_timeout_fails_the_action(
    codepipeline: CodePipelineStandIn, cp_client: CodePipelineClient, cp_scenario: ScenarioFactory
) -> None:
    scenario = cp_scenario()
    execution_id = scenario.start(cp_client)
    job = claim(cp_client, scenario)
    # Shortened only once the job is claimed, so a slow machine cannot time it out mid-claim.
    codepipeline.config.job_timeout = 0.0
    assert scenario.wait(cp_client, execution_id) == "Failed"
    assert codepipeline.job_status(job["id"]) == "TimedOut"
    assert cp_client.acknowledge_job(jobId=job["id"], nonce=job["nonce"])["status"] == "TimedOut"
    with pytest.raises(cp_client.exceptions.InvalidJobStateException):
        cp_client.put_job_failure_result(
            jobId=job["id"], failureDetails={"type": "JobFailed", "message": "late"}
        )
    error = action_detail(cp_client, scenario, execution_id, "Build")["output"]["executionResult"][
        "errorDetails"
    ]
    assert error["code"] == "JobTimedOut"


def test_two_workers_racing_for_one_job(
    codepipeline: CodePipelineStandIn, cp_client: CodePipelineClient, cp_scenario: ScenarioFactory
) -> None:
    codepipeline.config.redelivery_window = 0.0  # the job is offered again at once: both see it
    scenario = cp_scenario()
    execution_id = scenario.start(cp_client)
    (first,) = scenario.wait_for_jobs(cp_client)
    (second,) = scenario.wait_for_jobs(cp_client)
    assert first["id"] == second["id"]
    assert first["nonce"] != second["nonce"]
    # Only the latest delivery's nonce claims the job; the earlier one is stale.
    with pytest.raises(cp_client.exceptions.InvalidNonceException):
        cp_client.acknowledge_job(jobId=first["id"], nonce=first["nonce"])
    assert (
        cp_client.acknowledge_job(jobId=second["id"], nonce=second["nonce"])["status"]
        == "InProgress"
    )
    # Once claimed, the job is no longer offered, and a foreign nonce is refused.
    assert scenario.poll(cp_client, max_batch=5) == []
    with pytest.raises(cp_client.exceptions.InvalidNonceException):
        cp_client.acknowledge_job(jobId=second["id"], nonce="someone-elses-nonce")
    cp_client.put_job_success_result(jobId=second["id"])
    assert scenario.wait(cp_client, execution_id) == "Succeeded"
    (timeline,) = codepipeline.jobs()
    assert timeline.job_id == second["id"]
    assert timeline.status == "Succeeded"
    assert timeline.deliveries == 2
    assert timeline.first_delivered is not None
    assert timeline.acknowledged is not None
    assert timeline.finished is not None
    assert (
        timeline.created <= timeline.first_delivered <= timeline.acknowledged <= timeline.finished
    )


def test_unacknowledged_job_is_redelivered_after_the_window(
    codepipeline: CodePipelineStandIn, cp_client: CodePipelineClient, cp_scenario: ScenarioFactory
) -> None:
    codepipeline.config.redelivery_window = 300.0
    scenario = cp_scenario()
    scenario.start(cp_client)
    (first,) = scenario.wait_for_jobs(cp_client)
    assert scenario.poll(cp_client) == []  # within the window: not offered again
    assert codepipeline.job_status(first["id"]) == "Dispatched"
    # The window closes (shortened here rather than slept through, so a slow machine cannot
    # close it before the poll above).
    codepipeline.config.redelivery_window = 0.0
    (again,) = scenario.wait_for_jobs(cp_client, timeout=10)
    assert again["id"] == first["id"]
    assert again["nonce"] != first["nonce"]


def test_batch_and_query_param_select_jobs(
    cp_client: CodePipelineClient, cp_scenario: ScenarioFactory
) -> None:
    scenario = cp_scenario(pool="gpu")
    executions = [scenario.start(cp_client) for _ in range(3)]
    assert scenario.poll(cp_client, max_batch=5, query={"Pool": "cpu"}) == []
    jobs = scenario.wait_for_jobs(cp_client, count=2)
    assert len(jobs) == 2
    assert len({job["data"]["pipelineContext"]["pipelineExecutionId"] for job in jobs}) == 2
    rest = scenario.wait_for_jobs(cp_client, count=1)
    assert {j["data"]["pipelineContext"]["pipelineExecutionId"] for j in jobs + rest} == set(
        executions
    )


def test_kms_artifact_store_is_in_the_job(
    cp_client: CodePipelineClient, s3_client: S3Client, cp_scenario: ScenarioFactory
) -> None:
    key_id = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    scenario = cp_scenario(kms_key_id=key_id)
    scenario.start(cp_client)
    job = claim(cp_client, scenario)
    assert job["data"]["encryptionKey"] == {"id": key_id, "type": "KMS"}


def test_source_failure_and_get_job_details_on_any_job(
    cp_client: CodePipelineClient, s3_client: S3Client, cp_scenario: ScenarioFactory
) -> None:
    scenario = cp_scenario()
    s3_client.delete_object(Bucket=scenario.source_bucket, Key=scenario.source_key)
    execution_id = scenario.start(cp_client)
    assert scenario.wait(cp_client, execution_id) == "Failed"
    assert (
        "NoSuchKey"
        in action_detail(cp_client, scenario, execution_id, "Source")["output"]["executionResult"][
            "errorDetails"
        ]["message"]
    )


def test_credentials_are_fresh_on_every_call(
    codepipeline: CodePipelineStandIn, cp_client: CodePipelineClient, cp_scenario: ScenarioFactory
) -> None:
    codepipeline.config.credential_lifetime = 1
    scenario = cp_scenario()
    scenario.start(cp_client)
    job = claim(cp_client, scenario)
    seen = {
        cp_client.get_job_details(jobId=job["id"])["jobDetails"]["data"]["artifactCredentials"][
            "accessKeyId"
        ]
        for _ in range(3)
    }
    assert len(seen) == 3


def test_delete_pipeline_ends_its_jobs(
    cp_client: CodePipelineClient, cp_scenario: ScenarioFactory
) -> None:
    scenario = cp_scenario()
    scenario.start(cp_client)
    job = claim(cp_client, scenario)
    cp_client.delete_pipeline(name=scenario.pipeline_name)
    assert cp_client.acknowledge_job(jobId=job["id"], nonce=job["nonce"])["status"] == "Failed"
    with pytest.raises(cp_client.exceptions.PipelineNotFoundException):
        cp_client.get_pipeline(name=scenario.pipeline_name)


def test_parallel_actions_run_together_and_the_stage_waits_for_all(
    cp_client: CodePipelineClient, cp_scenario: ScenarioFactory
) -> None:
    scenario = cp_scenario()
    declaration: Any = dict(cp_client.get_pipeline(name=scenario.pipeline_name)["pipeline"])
    declaration.pop("version")
    build = declaration["stages"][1]["actions"][0]
    twin = {
        **build,
        "name": "Lint",
        "namespace": "LintVariables",
        "outputArtifacts": [{"name": "LintOutput"}],
    }
    declaration["stages"][1]["actions"] = [build, twin]  # both runOrder 1
    assert cp_client.update_pipeline(pipeline=declaration)["pipeline"]["version"] == 2
    execution_id = scenario.start(cp_client)
    jobs = scenario.wait_for_jobs(cp_client, count=2)
    by_action = {job["data"]["pipelineContext"]["action"]["name"]: job for job in jobs}
    assert set(by_action) == {"Build", "Lint"}
    for job in jobs:
        cp_client.acknowledge_job(jobId=job["id"], nonce=job["nonce"])
    cp_client.put_job_failure_result(
        jobId=by_action["Lint"]["id"],
        failureDetails={"type": "JobFailed", "message": "lint errors"},
    )
    assert scenario.status(cp_client, execution_id) == "InProgress"  # Build still runs
    cp_client.put_job_success_result(jobId=by_action["Build"]["id"])
    assert scenario.wait(cp_client, execution_id) == "Failed"
    states = cp_client.get_pipeline_state(name=scenario.pipeline_name)["stageStates"][1]
    assert {s["actionName"]: s["latestExecution"]["status"] for s in states["actionStates"]} == {
        "Build": "Succeeded",
        "Lint": "Failed",
    }


def test_client_request_token_makes_starts_idempotent(
    cp_client: CodePipelineClient, cp_scenario: ScenarioFactory
) -> None:
    scenario = cp_scenario()
    name = scenario.pipeline_name
    first = cp_client.start_pipeline_execution(name=name, clientRequestToken="deploy-42")
    again = cp_client.start_pipeline_execution(name=name, clientRequestToken="deploy-42")
    other = cp_client.start_pipeline_execution(name=name, clientRequestToken="deploy-43")
    assert first["pipelineExecutionId"] == again["pipelineExecutionId"]
    assert other["pipelineExecutionId"] != first["pipelineExecutionId"]
    summaries = cp_client.list_pipeline_executions(pipelineName=name)["pipelineExecutionSummaries"]
    assert len(summaries) == 2
