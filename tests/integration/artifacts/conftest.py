"""Fixtures for the artifact helper against moto's S3 server (real HTTP, real boto3)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest

from cpworker.sandbox.codepipeline import CodePipelineStandIn
from cpworker.sandbox.codepipeline.environment import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    client_config,
)
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
