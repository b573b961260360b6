"""One stand-in is one regional endpoint: a request signed for another region is refused the
way AWS refuses it, so a client configured for the wrong region cannot see its jobs."""

from __future__ import annotations

from typing import Any

import boto3
import botocore.exceptions
import pytest

from cpworker.sandbox.codepipeline import CodePipelineStandIn
from cpworker.sandbox.codepipeline.environment import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    client_config,
)


def _client(standin: CodePipelineStandIn, region: str) -> Any:
    return boto3.client(
        "codepipeline",
        endpoint_url=standin.url,
        region_name=region,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=client_config(max_attempts=1),
    )


def test_requests_signed_for_another_region_are_refused(codepipeline: CodePipelineStandIn) -> None:
    assert _client(codepipeline, REGION).list_action_types()["actionTypes"] is not None
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        _client(codepipeline, "eu-west-1").list_action_types()
    error = refused.value.response
    assert error["Error"]["Code"] == "InvalidSignatureException"
    assert "scoped to a valid region, not 'eu-west-1'" in error["Error"]["Message"]
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
