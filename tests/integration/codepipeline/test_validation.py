"""The service model's rules and the ones it cannot express, each answered with the right error."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from cpworker.sandbox.codepipeline import CodePipelineStandIn
from cpworker.sandbox.codepipeline.environment import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    client_config,
)
from cpworker.sandbox.codepipeline.scenario import Scenario

if TYPE_CHECKING:
    from mypy_boto3_codepipeline import CodePipelineClient

ScenarioFactory = Callable[..., Scenario]


@pytest.fixture
def unchecked(codepipeline: CodePipelineStandIn) -> CodePipelineClient:
    """A client that skips botocore's own parameter validation, so the server's is what answers."""
    return boto3.client(
        "codepipeline",
        endpoint_url=codepipeline.url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=client_config().merge(Config(parameter_validation=False)),
    )


ARTIFACTS = {"minimumCount": 0, "maximumCount": 1}


def error_of(call: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call()
    error = raised.value.response["Error"]
    return error["Code"], error["Message"]


def prop(name: str, **flags: bool) -> dict[str, Any]:
    return {"name": name, "required": False, "key": False, "secret": False} | flags


def create_type(cp: CodePipelineClient, provider: str, version: str = "1", **extra: Any) -> Any:
    arguments: dict[str, Any] = {
        "category": "Build",
        "provider": provider,
        "version": version,
        "inputArtifactDetails": ARTIFACTS,
        "outputArtifactDetails": ARTIFACTS,
    } | extra
    return cp.create_custom_action_type(**arguments)


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({"provider": "has space"}, "does not match the pattern"),
        ({"provider": "x" * 36}, "above the maximum of 35"),
        ({"version": "1.0"}, "does not match the pattern"),
        ({"version": ""}, "below the minimum of 1"),
        (
            {"inputArtifactDetails": {"minimumCount": 0, "maximumCount": 6}},
            "above the maximum of 5",
        ),
        ({"settings": {"executionUrlTemplate": ""}}, "below the minimum of 1"),
    ],
)
def test_model_patterns_lengths_and_ranges(
    unchecked: CodePipelineClient, arguments: dict[str, Any], fragment: str
) -> None:
    base: dict[str, Any] = {
        "category": "Build",
        "provider": "Fine",
        "version": "1",
        "inputArtifactDetails": ARTIFACTS,
        "outputArtifactDetails": ARTIFACTS,
    }
    code, message = error_of(lambda: unchecked.create_custom_action_type(**(base | arguments)))
    assert code == "ValidationException"
    assert fragment in message


def test_enum_and_required_members_checked_server_side(codepipeline: CodePipelineStandIn) -> None:
    """botocore validates client-side too, so send raw requests to prove the server checks."""

    def send(operation: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            codepipeline.url,
            data=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": f"CodePipeline_20150709.{operation}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    status, body = send(
        "PollForJobs",
        {"actionTypeId": {"category": "Nope", "owner": "Custom", "provider": "P", "version": "1"}},
    )
    assert status == 400
    assert body["__type"] == "ValidationException"
    assert "'Nope' is not one of" in body["message"]
    status, body = send("AcknowledgeJob", {"jobId": "not-a-uuid"})
    assert status == 400
    assert "missing required member 'nonce'" in body["message"]
    assert "does not match the pattern" in body["message"]
    status, body = send("PollForJobs", {"actionTypeId": "Build", "maxBatchSize": True})
    assert status == 400
    assert "expected an object" in body["message"]


def test_action_type_rules(cp_client: CodePipelineClient, unchecked: CodePipelineClient) -> None:
    too_many = [prop(f"P{i}") for i in range(11)]
    assert error_of(lambda: create_type(unchecked, "TooMany", configurationProperties=too_many))[
        0
    ] == ("ValidationException")
    two_queryable = [
        prop("A", queryable=True, required=True),
        prop("B", queryable=True, required=True),
    ]
    code, message = error_of(
        lambda: create_type(cp_client, "TwoQ", configurationProperties=two_queryable)
    )
    assert code == "ValidationException"
    assert "at most one queryable" in message
    secret_queryable = [prop("A", queryable=True, required=True, secret=True)]
    code, message = error_of(
        lambda: create_type(cp_client, "SecretQ", configurationProperties=secret_queryable)
    )
    assert "must be required and not secret" in message
    optional_queryable = [prop("A", queryable=True)]
    assert error_of(
        lambda: create_type(cp_client, "OptQ", configurationProperties=optional_queryable)
    )[0] == ("ValidationException")
    inverted = {"minimumCount": 3, "maximumCount": 1}
    assert (
        error_of(lambda: create_type(cp_client, "Inv", inputArtifactDetails=inverted))[0]
        == "ValidationException"
    )
    code, _ = error_of(
        lambda: create_type(cp_client, "Tags", tags=[{"key": "aws:reserved", "value": "x"}])
    )
    assert code == "InvalidTagsException"
    many_tags = [{"key": f"k{i}", "value": "v"} for i in range(51)]
    assert (
        error_of(lambda: create_type(unchecked, "Tags", tags=many_tags))[0]
        == "TooManyTagsException"
    )


def test_deleted_version_cannot_be_recreated(cp_client: CodePipelineClient) -> None:
    create_type(cp_client, "Recreate")
    assert error_of(lambda: create_type(cp_client, "Recreate"))[0] == "ValidationException"
    cp_client.delete_custom_action_type(category="Build", provider="Recreate", version="1")
    code, message = error_of(lambda: create_type(cp_client, "Recreate"))
    assert code == "ValidationException"
    assert "cannot be re-created" in message
    create_type(cp_client, "Recreate", version="2")
    code, _ = error_of(
        lambda: cp_client.delete_custom_action_type(
            category="Build", provider="Recreate", version="1"
        )
    )
    assert code == "ActionTypeNotFoundException"


def test_limit_of_custom_action_types(
    codepipeline: CodePipelineStandIn, cp_client: CodePipelineClient
) -> None:
    codepipeline.config.max_custom_action_types = 3
    for index in range(3):
        create_type(cp_client, f"Limit{index}")
    assert error_of(lambda: create_type(cp_client, "Limit3"))[0] == "LimitExceededException"


def test_default_limit_is_fifty(cp_client: CodePipelineClient) -> None:
    for index in range(50):
        create_type(cp_client, f"Fifty{index}")
    assert error_of(lambda: create_type(cp_client, "Fifty50"))[0] == "LimitExceededException"
    listed = [
        t["id"]["provider"]
        for page in cp_client.get_paginator("list_action_types").paginate(
            actionOwnerFilter="Custom"
        )
        for t in page["actionTypes"]
    ]
    assert sorted(listed) == sorted(f"Fifty{index}" for index in range(50))


def test_list_action_types_filters_and_pages(
    codepipeline: CodePipelineStandIn, cp_client: CodePipelineClient
) -> None:
    codepipeline.config.list_page_size = 2
    for index in range(3):
        create_type(cp_client, f"Page{index}")
    first = cp_client.list_action_types(actionOwnerFilter="Custom")
    assert len(first["actionTypes"]) == 2
    second = cp_client.list_action_types(actionOwnerFilter="Custom", nextToken=first["nextToken"])
    assert len(second["actionTypes"]) == 1
    assert "nextToken" not in second
    aws_types = cp_client.list_action_types(actionOwnerFilter="AWS")["actionTypes"]
    assert [t["id"]["provider"] for t in aws_types] == ["S3"]
    assert (
        error_of(lambda: cp_client.list_action_types(nextToken="bogus"))[0]
        == "InvalidNextTokenException"
    )


def test_query_param_rules(
    cp_client: CodePipelineClient, unchecked: CodePipelineClient, cp_scenario: ScenarioFactory
) -> None:
    scenario = cp_scenario()
    type_id: Any = scenario.action_type_id
    code, message = error_of(lambda: cp_client.poll_for_jobs(actionTypeId=type_id))
    assert code == "ValidationException"
    assert "queryParam must name the queryable property 'Pool'" in message
    code, _ = error_of(
        lambda: cp_client.poll_for_jobs(actionTypeId=type_id, queryParam={"Other": "x"})
    )
    assert code == "ValidationException"
    code, _ = error_of(
        lambda: cp_client.poll_for_jobs(actionTypeId=type_id, queryParam={"Pool": "a b"})
    )
    assert code == "ValidationException"
    code, _ = error_of(
        lambda: unchecked.poll_for_jobs(actionTypeId=type_id, queryParam={"A": "1", "B": "2"})
    )
    assert code == "ValidationException"
    create_type(cp_client, "NoQuery")
    no_query: Any = {"category": "Build", "owner": "Custom", "provider": "NoQuery", "version": "1"}
    code, message = error_of(
        lambda: cp_client.poll_for_jobs(actionTypeId=no_query, queryParam={"Pool": "x"})
    )
    assert code == "ValidationException"
    assert "no queryable property" in message
    assert cp_client.poll_for_jobs(actionTypeId=no_query)["jobs"] == []
    missing: Any = {"category": "Build", "owner": "Custom", "provider": "Missing", "version": "1"}
    assert (
        error_of(lambda: cp_client.poll_for_jobs(actionTypeId=missing))[0]
        == "ActionTypeNotFoundException"
    )
    aws_owned: Any = {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"}
    assert (
        error_of(lambda: cp_client.poll_for_jobs(actionTypeId=aws_owned))[0]
        == "ActionTypeNotFoundException"
    )
    code, _ = error_of(
        lambda: unchecked.poll_for_jobs(
            actionTypeId=type_id, maxBatchSize=0, queryParam={"Pool": "x"}
        )
    )
    assert code == "ValidationException"


def test_job_errors(cp_client: CodePipelineClient, cp_scenario: ScenarioFactory) -> None:
    unknown = "00000000-0000-0000-0000-000000000000"
    assert (
        error_of(lambda: cp_client.acknowledge_job(jobId=unknown, nonce="1"))[0]
        == "JobNotFoundException"
    )
    assert error_of(lambda: cp_client.get_job_details(jobId=unknown))[0] == "JobNotFoundException"
    assert (
        error_of(lambda: cp_client.put_job_success_result(jobId=unknown))[0]
        == "JobNotFoundException"
    )
    failure: Any = {"type": "JobFailed", "message": "x"}
    code, _ = error_of(
        lambda: cp_client.put_job_failure_result(jobId=unknown, failureDetails=failure)
    )
    assert code == "JobNotFoundException"
    scenario = cp_scenario()
    scenario.start(cp_client)
    (job,) = scenario.wait_for_jobs(cp_client)
    # Reporting before acknowledging: the job is not in progress.
    assert (
        error_of(lambda: cp_client.put_job_success_result(jobId=job["id"]))[0]
        == "InvalidJobStateException"
    )
    assert cp_client.acknowledge_job(jobId=job["id"], nonce=job["nonce"])["status"] == "InProgress"
    big = {f"Var{i}": "x" * 1000 for i in range(123)}
    code, _ = error_of(
        lambda: cp_client.put_job_success_result(jobId=job["id"], outputVariables=big)
    )
    assert code == "OutputVariablesSizeExceededException"
    bad_key = {"not ok": "v"}
    assert error_of(
        lambda: cp_client.put_job_success_result(jobId=job["id"], outputVariables=bad_key)
    )[0] == ("ValidationException")
    bad_failure: Any = {"type": "Whatever", "message": "x"}
    code, _ = error_of(
        lambda: cp_client.put_job_failure_result(jobId=job["id"], failureDetails=bad_failure)
    )
    assert code == "ValidationException"
    # Exactly at the limit is fine: 122,880 bytes of keys and values together.
    at_limit = {"K": "x" * (122_880 - 1)}
    cp_client.put_job_success_result(jobId=job["id"], outputVariables=at_limit)
    assert (
        error_of(lambda: cp_client.put_job_success_result(jobId=job["id"]))[0]
        == "InvalidJobStateException"
    )


def _declaration(scenario: Scenario, cp: CodePipelineClient) -> dict[str, Any]:
    return dict(cp.get_pipeline(name=scenario.pipeline_name)["pipeline"])


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.update(stages=d["stages"][:1]), "InvalidStructureException"),
        (lambda d: d["stages"][1].update(name="Source"), "InvalidStageDeclarationException"),
        (
            lambda d: d["stages"][1]["actions"][0]["configuration"].update(Unknown="x"),
            "InvalidActionDeclarationException",
        ),
        (
            lambda d: d["stages"][1]["actions"][0]["configuration"].pop("Pool"),
            "InvalidActionDeclarationException",
        ),
        (
            lambda d: d["stages"][1]["actions"][0]["configuration"].update(Pool="x" * 21),
            "InvalidActionDeclarationException",
        ),
        (
            lambda d: d["stages"][1]["actions"][0]["actionTypeId"].update(provider="Nope"),
            "InvalidActionDeclarationException",
        ),
        (
            lambda d: d["stages"][1]["actions"][0].update(inputArtifacts=[{"name": "Nowhere"}]),
            "InvalidStructureException",
        ),
        (
            lambda d: d["stages"][1]["actions"][0].update(namespace="SourceVariables"),
            "InvalidActionDeclarationException",
        ),
        (lambda d: d["stages"].reverse(), "InvalidStructureException"),
        (lambda d: d.pop("artifactStore"), "InvalidStructureException"),
        (
            lambda d: d["stages"][0]["actions"][0]["configuration"].pop("S3Bucket"),
            "InvalidActionDeclarationException",
        ),
        (lambda d: d.update(name="bad name"), "ValidationException"),
    ],
)
def test_pipeline_declaration_rules(
    cp_client: CodePipelineClient,
    cp_scenario: ScenarioFactory,
    mutate: Callable[[dict[str, Any]], Any],
    expected: str,
) -> None:
    scenario = cp_scenario(secret_configuration={"Token": "s"})
    declaration = _declaration(scenario, cp_client)
    declaration["stages"][1]["actions"][0]["configuration"]["Token"] = "s"
    declaration.pop("version")
    mutate(declaration)
    code, _ = error_of(lambda: cp_client.update_pipeline(pipeline=declaration))  # type: ignore[arg-type]
    assert code == expected


def test_pipeline_crud_and_errors(
    cp_client: CodePipelineClient, cp_scenario: ScenarioFactory
) -> None:
    scenario = cp_scenario(secret_configuration={"Token": "hunter2"})
    got = cp_client.get_pipeline(name=scenario.pipeline_name)
    assert got["pipeline"]["version"] == 1
    assert got["pipeline"]["stages"][1]["actions"][0]["configuration"]["Token"] == "****"
    assert got["metadata"]["pipelineArn"].endswith(f":{scenario.pipeline_name}")
    declaration: Any = dict(got["pipeline"])
    declaration.pop("version")
    declaration["stages"][1]["actions"][0]["configuration"]["Token"] = "new-secret"
    assert cp_client.update_pipeline(pipeline=declaration)["pipeline"]["version"] == 2
    assert (
        error_of(lambda: cp_client.create_pipeline(pipeline=declaration))[0]
        == "PipelineNameInUseException"
    )
    names = [p["name"] for p in cp_client.list_pipelines()["pipelines"]]
    assert scenario.pipeline_name in names
    assert error_of(lambda: cp_client.get_pipeline(name="absent"))[0] == "PipelineNotFoundException"
    assert error_of(lambda: cp_client.get_pipeline(name=scenario.pipeline_name, version=1))[0] == (
        "PipelineVersionNotFoundException"
    )
    assert (
        error_of(lambda: cp_client.start_pipeline_execution(name="absent"))[0]
        == "PipelineNotFoundException"
    )
    assert (
        error_of(lambda: cp_client.get_pipeline_state(name="absent"))[0]
        == "PipelineNotFoundException"
    )
    unknown = "00000000-0000-0000-0000-000000000000"
    code, _ = error_of(
        lambda: cp_client.get_pipeline_execution(
            pipelineName=scenario.pipeline_name, pipelineExecutionId=unknown
        )
    )
    assert code == "PipelineExecutionNotFoundException"
    code, _ = error_of(
        lambda: cp_client.list_action_executions(
            pipelineName=scenario.pipeline_name, filter={"pipelineExecutionId": unknown}
        )
    )
    assert code == "PipelineExecutionNotFoundException"
    code, _ = error_of(
        lambda: cp_client.stop_pipeline_execution(
            pipelineName=scenario.pipeline_name, pipelineExecutionId=unknown
        )
    )
    assert code == "PipelineExecutionNotStoppableException"
    cp_client.delete_pipeline(name=scenario.pipeline_name)
    cp_client.delete_pipeline(name=scenario.pipeline_name)  # deleting what is gone is not an error


def test_tags_on_action_types_and_pipelines(
    cp_client: CodePipelineClient, cp_scenario: ScenarioFactory
) -> None:
    scenario = cp_scenario()
    provider = scenario.action_type_id["provider"]
    arn = f"arn:aws:codepipeline:us-east-1:123456789012:actiontype:Custom/Build/{provider}/1"
    assert cp_client.list_tags_for_resource(resourceArn=arn)["tags"] == []
    cp_client.tag_resource(
        resourceArn=arn, tags=[{"key": "team", "value": "ci"}, {"key": "env", "value": "dev"}]
    )
    cp_client.untag_resource(resourceArn=arn, tagKeys=["env"])
    assert cp_client.list_tags_for_resource(resourceArn=arn)["tags"] == [
        {"key": "team", "value": "ci"}
    ]
    # Terraform's provider with skip_requesting_account_id builds ARNs without an account.
    no_account = f"arn:aws:codepipeline:us-east-1::actiontype:Custom/Build/{provider}/1"
    assert cp_client.list_tags_for_resource(resourceArn=no_account)["tags"] == [
        {"key": "team", "value": "ci"}
    ]
    pipeline_arn = f"arn:aws:codepipeline:us-east-1:123456789012:{scenario.pipeline_name}"
    cp_client.tag_resource(resourceArn=pipeline_arn, tags=[{"key": "owner", "value": "me"}])
    assert cp_client.list_tags_for_resource(resourceArn=pipeline_arn)["tags"] == [
        {"key": "owner", "value": "me"}
    ]
    missing = "arn:aws:codepipeline:us-east-1:123456789012:nothing-here"
    assert (
        error_of(lambda: cp_client.list_tags_for_resource(resourceArn=missing))[0]
        == "ResourceNotFoundException"
    )
    code, _ = error_of(lambda: cp_client.list_tags_for_resource(resourceArn="arn:aws:s3:::bucket"))
    assert code == "ValidationException"
    code, _ = error_of(
        lambda: cp_client.tag_resource(resourceArn=arn, tags=[{"key": "aws:x", "value": "v"}])
    )
    assert code == "InvalidTagsException"
