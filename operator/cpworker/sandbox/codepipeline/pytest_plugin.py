"""pytest fixtures for the local CodePipeline (register with `pytest_plugins = [...]`).

- `moto_server` (session): URL of moto's server (S3, STS, IAM, KMS, SQS) on loopback.
- `codepipeline` (function): a started `CodePipelineStandIn` in strict conformance mode; the
  test fails at teardown if any response broke the service model.
- `aws_env`: environment variables that point any AWS client (boto3, awscli, Terraform) here.
- `cp_client`, `s3_client`: boto3 clients for the stand-in and moto.
- `cp_scenario`: `create_scenario` bound to those clients (custom action type + pipeline).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from cpworker.sandbox.codepipeline.environment import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    aws_environment,
    client_config,
)
from cpworker.sandbox.codepipeline.knobs import StandInConfig
from cpworker.sandbox.codepipeline.objectstore import MotoServer
from cpworker.sandbox.codepipeline.scenario import Scenario, create_scenario
from cpworker.sandbox.codepipeline.standin import CodePipelineStandIn

if TYPE_CHECKING:
    from mypy_boto3_codepipeline import CodePipelineClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient


class ConformanceError(AssertionError):
    pass


def assert_conformant(standin: CodePipelineStandIn) -> None:
    """Raise ConformanceError listing the responses that broke the service model."""
    violations = standin.violations()
    if violations:
        listed = "\n  ".join(violations[:20])
        raise ConformanceError(
            f"the CodePipeline stand-in sent {len(violations)} non-conformant answer(s):"
            f"\n  {listed}"
        )


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    with MotoServer() as server:
        yield server.url


@pytest.fixture
def codepipeline(moto_server: str) -> Iterator[CodePipelineStandIn]:
    standin = CodePipelineStandIn(
        moto_server, region=REGION, config=StandInConfig(strict_conformance=True)
    )
    with standin:
        yield standin
    assert_conformant(standin)


@pytest.fixture
def guarded(moto_server: str) -> Iterator[CodePipelineStandIn]:
    """The local CodePipeline with its S3 guard: expired job credentials are refused."""
    standin = CodePipelineStandIn(
        moto_server, region=REGION, config=StandInConfig(strict_conformance=True), s3_guard=True
    )
    with standin:
        yield standin
    assert_conformant(standin)


@pytest.fixture
def aws_env(codepipeline: CodePipelineStandIn, moto_server: str) -> dict[str, str]:
    return aws_environment(codepipeline.url, moto_server)


@pytest.fixture
def cp_client(codepipeline: CodePipelineStandIn) -> CodePipelineClient:
    return boto3.client(
        "codepipeline",
        endpoint_url=codepipeline.url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=client_config(),
    )


@pytest.fixture
def s3_client(moto_server: str) -> S3Client:
    return boto3.client(
        "s3",
        endpoint_url=moto_server,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=client_config(),
    )


@pytest.fixture
def sqs_client(moto_server: str) -> SQSClient:
    """SQS in moto (the events queue the local CodePipeline can deliver to)."""
    return boto3.client(
        "sqs",
        endpoint_url=moto_server,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=client_config(),
    )


@pytest.fixture
def cp_scenario(cp_client: CodePipelineClient, s3_client: S3Client) -> Callable[..., Scenario]:
    def build(**options: Any) -> Scenario:
        return create_scenario(cp_client, s3_client, **options)

    return build
