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
from botocore.config import Config

from cpworker.sandbox.codepipeline.knobs import StandInConfig
from cpworker.sandbox.codepipeline.objectstore import MotoServer
from cpworker.sandbox.codepipeline.scenario import Scenario, create_scenario
from cpworker.sandbox.codepipeline.standin import CodePipelineStandIn

if TYPE_CHECKING:
    from mypy_boto3_codepipeline import CodePipelineClient
    from mypy_boto3_s3 import S3Client

REGION = "us-east-1"
ACCESS_KEY_ID = "AKIASANDBOXEXAMPLE00"
SECRET_ACCESS_KEY = "sandbox-secret-not-used-by-moto"  # noqa: S105 - moto ignores credentials


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


def client_config(max_attempts: int = 3) -> Config:
    return Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=5,
        read_timeout=30,
    )


def aws_environment(codepipeline_url: str, moto_url: str, region: str = REGION) -> dict[str, str]:
    """Variables that point AWS SDKs and tools at the sandbox, isolated from ~/.aws."""
    return {
        "AWS_ENDPOINT_URL_CODEPIPELINE": codepipeline_url,
        "AWS_ENDPOINT_URL_S3": moto_url,
        "AWS_ENDPOINT_URL_STS": moto_url,
        "AWS_ENDPOINT_URL_IAM": moto_url,
        "AWS_ENDPOINT_URL_KMS": moto_url,
        "AWS_ENDPOINT_URL_SQS": moto_url,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_PAGER": "",
    }


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
def cp_scenario(cp_client: CodePipelineClient, s3_client: S3Client) -> Callable[..., Scenario]:
    def build(**options: Any) -> Scenario:
        return create_scenario(cp_client, s3_client, **options)

    return build
