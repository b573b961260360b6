"""pytest fixtures for the local CodePipeline (register with `pytest_plugins = [...]`).

- `moto_server` (session): URL of moto's server (S3, STS, IAM, KMS, SQS) on loopback.
- `codepipeline` (function): a started `CodePipelineStandIn` in strict conformance mode; the
  test fails at teardown if any response broke the service model.
- `aws_env`: environment variables that point any AWS client (boto3, awscli, Terraform) here.
- `cp_client`, `s3_client`: boto3 clients for the stand-in and moto.
- `cp_scenario`: `create_scenario` bound to those clients (custom action type + pipeline).

A test changes its stand-in with a marker: `@pytest.mark.codepipeline_standin(sts_front=True,
config={"redelivery_window": 1.0})` (keywords go to `CodePipelineStandIn`; `config` overrides
`StandInConfig` fields).

Opt-in faults for a whole run (off unless set; docs/sandbox-codepipeline.md, "Faults on
demand"): `CPWORKER_SANDBOX_CODEPIPELINE_FAULTS="*:throttle_probability=0.1,error_probability=0.1"`
(rules in the `--fault` form, separated by `;` or spaces) and
`CPWORKER_SANDBOX_CODEPIPELINE_FAULT_SEED=7` apply to every `codepipeline` fixture. The test's
own clients (`cp_client`, `s3_client`; User-Agent `cpworker-test-harness`) are exempt: the
faults are for the system under test.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config

from cpworker.sandbox.codepipeline.environment import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    aws_environment,
    client_config,
)
from cpworker.sandbox.codepipeline.knobs import StandInConfig, parse_faults
from cpworker.sandbox.codepipeline.objectstore import MotoServer
from cpworker.sandbox.codepipeline.scenario import Scenario, create_scenario
from cpworker.sandbox.codepipeline.standin import CodePipelineStandIn

if TYPE_CHECKING:
    from mypy_boto3_codepipeline import CodePipelineClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient


FAULTS_VARIABLE = "CPWORKER_SANDBOX_CODEPIPELINE_FAULTS"
FAULT_SEED_VARIABLE = "CPWORKER_SANDBOX_CODEPIPELINE_FAULT_SEED"
HARNESS_AGENT = "cpworker-test-harness"  # the test's own clients, never faulted by the opt-in


class ConformanceError(AssertionError):
    pass


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "codepipeline_standin(config=None, **options): StandInConfig overrides and "
        "CodePipelineStandIn options for the `codepipeline` fixture",
    )


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
def codepipeline_options() -> dict[str, Any]:
    """Extra `CodePipelineStandIn` keywords for every `codepipeline` of the suite (a conftest
    may override this fixture; a test's marker comes on top)."""
    return {}


@pytest.fixture
def codepipeline(
    moto_server: str, request: pytest.FixtureRequest, codepipeline_options: dict[str, Any]
) -> Iterator[CodePipelineStandIn]:
    marker = request.node.get_closest_marker("codepipeline_standin")
    options: dict[str, Any] = {**codepipeline_options, **(marker.kwargs if marker else {})}
    config = StandInConfig(strict_conformance=True)
    config = dataclasses.replace(config, **(options.pop("config", None) or {}))
    standin = CodePipelineStandIn(moto_server, region=REGION, config=config, **options)
    with standin:
        apply_environment_faults(standin)
        yield standin
    assert_conformant(standin)


def apply_environment_faults(standin: CodePipelineStandIn) -> None:
    """The opt-in of a faulted run: the rules of $CPWORKER_SANDBOX_CODEPIPELINE_FAULTS, if set."""
    rules = parse_faults(os.environ.get(FAULTS_VARIABLE, ""))
    seed = os.environ.get(FAULT_SEED_VARIABLE)
    if seed:
        standin.faults.seed(int(seed))
    for operation, settings in rules:
        standin.faults.set(operation, **settings)
    if rules:
        standin.faults.exempt(HARNESS_AGENT)


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
    environment = aws_environment(codepipeline.url, moto_server)
    environment["AWS_ENDPOINT_URL_STS"] = codepipeline.sts_url
    return environment


def harness_config() -> Any:
    """The test's own clients' settings: they say who they are, so faults spare them."""
    return client_config().merge(Config(user_agent_extra=HARNESS_AGENT))


@pytest.fixture
def cp_client(codepipeline: CodePipelineStandIn) -> CodePipelineClient:
    return boto3.client(
        "codepipeline",
        endpoint_url=codepipeline.url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=harness_config(),
    )


@pytest.fixture
def s3_client(moto_server: str) -> S3Client:
    return boto3.client(
        "s3",
        endpoint_url=moto_server,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=harness_config(),
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
