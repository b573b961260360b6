"""Fixtures for the artifact helper against moto's S3 server (real HTTP, real boto3)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest

from cpworker.sandbox.codepipeline import CodePipelineStandIn, StandInConfig
from cpworker.sandbox.codepipeline.environment import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    client_config,
)
from cpworker.sandbox.codepipeline.pytest_plugin import assert_conformant
from tests.integration.artifacts.pod import Pod

if TYPE_CHECKING:
    from mypy_boto3_codepipeline import CodePipelineClient
    from mypy_boto3_s3 import S3Client

Clients = tuple["CodePipelineClient", "S3Client"]


@pytest.fixture
def pod(tmp_path: Path, moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Pod:
    """A job pod against moto; the helper run in this process sees the pod's environment."""
    created = Pod(tmp_path / "pod", moto_server)
    for name, value in created.env().items():
        monkeypatch.setenv(name, value)
    return created


@pytest.fixture
def guarded(moto_server: str) -> Iterator[CodePipelineStandIn]:
    """The CodePipeline stand-in with its S3 guard: expired job credentials are refused."""
    standin = CodePipelineStandIn(
        moto_server, config=StandInConfig(strict_conformance=True), s3_guard=True
    )
    with standin:
        yield standin
    assert_conformant(standin)


@pytest.fixture
def guarded_clients(guarded: CodePipelineStandIn) -> Clients:
    """CodePipeline (the stand-in) and S3 (moto directly, ordinary keys) for the test itself."""
    cp = boto3.client(
        "codepipeline",
        endpoint_url=guarded.url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=client_config(),
    )
    s3 = boto3.client(
        "s3",
        endpoint_url=guarded.s3_endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=client_config(),
    )
    return cp, s3
