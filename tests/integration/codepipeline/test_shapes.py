"""The model validator on its own: each kind of constraint, read from botocore's model."""

from __future__ import annotations

import pytest

from cpworker.sandbox.codepipeline import shapes

JOB_ID = "11111111-2222-3333-4444-555555555555"


@pytest.mark.parametrize(
    ("operation", "body", "fragment"),
    [
        ("AcknowledgeJob", {"jobId": JOB_ID}, "missing required member 'nonce'"),
        ("AcknowledgeJob", {"jobId": JOB_ID, "nonce": ""}, "length 0 is below the minimum of 1"),
        ("AcknowledgeJob", {"jobId": JOB_ID, "nonce": "n" * 51}, "above the maximum of 50"),
        ("AcknowledgeJob", {"jobId": "J", "nonce": "n"}, "does not match the pattern"),
        ("AcknowledgeJob", {"jobId": JOB_ID, "nonce": 5}, "expected a string"),
        (
            "PollForJobs",
            {
                "actionTypeId": {
                    "category": "Build",
                    "owner": "Custom",
                    "provider": "P",
                    "version": "1",
                },
                "maxBatchSize": 0,
            },
            "value 0 is below the minimum of 1",
        ),
        (
            "PollForJobs",
            {
                "actionTypeId": {
                    "category": "Build",
                    "owner": "Custom",
                    "provider": "P",
                    "version": "1",
                },
                "maxBatchSize": 1.5,
            },
            "expected an integer",
        ),
        (
            "PollForJobs",
            {
                "actionTypeId": {
                    "category": "Build",
                    "owner": "Custom",
                    "provider": "P",
                    "version": "1",
                },
                "maxBatchSize": True,
            },
            "expected a number",
        ),
        (
            "PollForJobs",
            {
                "actionTypeId": {
                    "category": "Build",
                    "owner": "Other",
                    "provider": "P",
                    "version": "1",
                }
            },
            "is not one of",
        ),
        (
            "PollForJobs",
            {
                "actionTypeId": {
                    "category": "Build",
                    "owner": "Custom",
                    "provider": "P",
                    "version": "1",
                },
                "queryParam": {"a": "1", "b": "2"},
            },
            "entry count 2 is above the maximum of 1",
        ),
        ("PollForJobs", {"actionTypeId": []}, "expected an object"),
        (
            "StopPipelineExecution",
            {"pipelineName": "p", "pipelineExecutionId": JOB_ID, "abandon": "yes"},
            "expected a boolean",
        ),
        ("ListPipelines", {"maxResults": 1001}, "above the maximum"),
        (
            "UntagResource",
            {"resourceArn": "arn:aws:codepipeline:us-east-1:123456789012:p", "tagKeys": "k"},
            "expected a list",
        ),
    ],
)
def test_input_problems(operation: str, body: dict[str, object], fragment: str) -> None:
    found = shapes.input_problems(operation, body)
    assert any(fragment in problem for problem in found), found


def test_valid_input_and_unknown_members() -> None:
    assert shapes.input_problems("AcknowledgeJob", {"jobId": JOB_ID, "nonce": "n"}) == []
    # Clients built from a newer model may send members this one lacks: tolerated on input.
    assert (
        shapes.input_problems("AcknowledgeJob", {"jobId": JOB_ID, "nonce": "n", "future": 1}) == []
    )
    assert shapes.input_problems("ListPipelines", {}) == []


def test_output_problems() -> None:
    assert shapes.output_problems("AcknowledgeJob", {"status": "InProgress"}) == []
    assert any(
        "is not one of" in p
        for p in shapes.output_problems("AcknowledgeJob", {"status": "Claimed"})
    )
    assert any(
        "unknown member 'extra'" in p
        for p in shapes.output_problems("AcknowledgeJob", {"status": "Failed", "extra": 1})
    )
    assert any(
        "expected a timestamp" in p
        for p in shapes.output_problems(
            "ListPipelines", {"pipelines": [{"name": "p", "created": "yesterday"}]}
        )
    )
    assert any(
        "output must be empty" in p for p in shapes.output_problems("PutJobSuccessResult", {"x": 1})
    )
    assert shapes.output_problems("PutJobSuccessResult", {}) == []


def test_malformed_credentials_are_reported_without_their_values() -> None:
    credentials = {"accessKeyId": "ASIAEXAMPLE", "secretAccessKey": 987654321, "sessionToken": "t"}
    body = {
        "jobDetails": {
            "id": JOB_ID,
            "accountId": "123456789012",
            "data": {"artifactCredentials": credentials},
        }
    }
    problems = shapes.output_problems("GetJobDetails", body)
    assert any("secretAccessKey: expected a string" in p for p in problems), problems
    assert "987654321" not in " ".join(problems)
    bad_account = {"jobDetails": {"id": JOB_ID, "accountId": "12", "data": {}}}
    assert any("accountId" in p for p in shapes.output_problems("GetJobDetails", bad_account))


def test_declared_errors() -> None:
    assert "InvalidNonceException" in shapes.declared_errors("AcknowledgeJob")
