"""Sample inputs shared by the unit tests of the operator's pure modules.

The canary values are recognisable strings that must never leave the Secret's data.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from cpworker.jobmanifest import WorkerRef
from cpworker.settings import OperatorSettings

CANARY_ACCESS_KEY = "AKIACANARY0ACCESS0KEY"
CANARY_SECRET_KEY = "canary-secret-access-key-7f3a9c"
CANARY_SESSION_TOKEN = "canary-session-token-b81e44"
CANARY_CONFIG_VALUE = "canary-config-password-55d0e1"
CANARIES = (CANARY_ACCESS_KEY, CANARY_SECRET_KEY, CANARY_SESSION_TOKEN, CANARY_CONFIG_VALUE)

JOB_ID = "4f0d3c1e-2b7a-4c55-9e1d-0a1b2c3d4e5f"
NOW = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)
WORKER = WorkerRef(name="gpu-builds", namespace="ci", uid="0b6d6a7e-1111-2222-3333-444455556666")
SECRET_PROPERTIES = frozenset({"ApiToken"})

RAW_JOB: dict[str, Any] = {
    "id": JOB_ID,
    "nonce": "3",
    "accountId": "111122223333",
    "data": {
        "actionTypeId": {
            "category": "Build",
            "owner": "Custom",
            "provider": "AcmeGpuBuild",
            "version": "1",
        },
        "actionConfiguration": {
            "configuration": {
                "Pool": "gpu-a100",
                "Make Target": "all",
                "ApiToken": CANARY_CONFIG_VALUE,
            }
        },
        "pipelineContext": {
            "pipelineName": "acme-main",
            "stage": {"name": "Build"},
            "action": {"name": "GpuBuild", "actionExecutionId": "ae-0001"},
            "pipelineArn": "arn:aws:codepipeline:us-east-1:111122223333:acme-main",
            "pipelineExecutionId": "0e0e0e0e-1111-4222-8333-444455556666",
        },
        "inputArtifacts": [
            {
                "name": "SourceOutput",
                "revision": "abc123",
                "location": {
                    "type": "S3",
                    "s3Location": {"bucketName": "artifacts", "objectKey": "acme/Source/x1"},
                },
            }
        ],
        "outputArtifacts": [
            {
                "name": "BuildOutput",
                "location": {
                    "type": "S3",
                    "s3Location": {"bucketName": "artifacts", "objectKey": "acme/Build/y2"},
                },
            }
        ],
        "artifactCredentials": {
            "accessKeyId": CANARY_ACCESS_KEY,
            "secretAccessKey": CANARY_SECRET_KEY,
            "sessionToken": CANARY_SESSION_TOKEN,
        },
        "encryptionKey": {"id": "arn:aws:kms:us-east-1:111122223333:key/abcd", "type": "KMS"},
    },
}

SPEC: dict[str, Any] = {
    "actionTypeId": {
        "category": "Build",
        "owner": "Custom",
        "provider": "AcmeGpuBuild",
        "version": "1",
    },
    "queryParam": {"Pool": "gpu-a100"},
    "maxInFlight": 20,
    "jobTemplate": {
        "metadata": {"labels": {"team": "acme"}, "annotations": {"note": "hello"}},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "build",
                            "image": "ghcr.io/acme/builder:2026.11",
                            "command": ["./ci/build.sh"],
                            "env": [{"name": "MODE", "value": "release"}],
                        }
                    ]
                }
            }
        },
    },
}


def raw_job(**changes: Any) -> dict[str, Any]:
    """A deep copy of RAW_JOB with top-level changes."""
    job = copy.deepcopy(RAW_JOB)
    job.update(changes)
    return job


def spec(**changes: Any) -> dict[str, Any]:
    """A deep copy of SPEC with top-level changes."""
    result = copy.deepcopy(SPEC)
    result.update(changes)
    return result


def settings(**overrides: Any) -> OperatorSettings:
    """Settings independent of the test process's environment."""
    values: dict[str, Any] = {"default_region": "us-east-1", "namespaces": ()}
    values.update(overrides)
    return OperatorSettings(**values)


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON document, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, child in value.items():
            yield str(key)
            yield from strings(child)
    elif isinstance(value, list):
        for child in value:
            yield from strings(child)
