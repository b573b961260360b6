"""Build a custom action type and an `S3 source -> custom action(s)` pipeline in the stand-in.

Used by this package's tests, the operator's end-to-end tests and the demo, so that all of them
drive CodePipeline through its public API (boto3) exactly as a user's setup would.
"""

from __future__ import annotations

import dataclasses
import io
import time
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from mypy_boto3_codepipeline import CodePipelineClient
    from mypy_boto3_codepipeline.type_defs import PipelineDeclarationTypeDef
    from mypy_boto3_s3 import S3Client

TERMINAL_EXECUTION_STATES = frozenset({"Succeeded", "Failed", "Stopped", "Superseded", "Cancelled"})


def source_zip(files: Mapping[str, str] | None = None) -> bytes:
    """A small ZIP archive, the usual shape of a CodePipeline artifact."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in (files or {"README.md": "hello from the sandbox\n"}).items():
            archive.writestr(name, text)
    return buffer.getvalue()


@dataclasses.dataclass(frozen=True)
class Scenario:
    """What was created: enough to start executions, poll for the jobs and find the artifacts."""

    pipeline_name: str
    action_type_id: dict[str, str]
    query_param: dict[str, str]
    artifact_bucket: str
    source_bucket: str
    source_key: str
    action_names: tuple[str, ...]

    def start(self, client: CodePipelineClient) -> str:
        return client.start_pipeline_execution(name=self.pipeline_name)["pipelineExecutionId"]

    def poll(
        self, client: CodePipelineClient, max_batch: int = 1, query: dict[str, str] | None = None
    ) -> list[Any]:
        """One PollForJobs for this scenario's action type (and pool, unless `query` is given)."""
        answer = client.poll_for_jobs(
            actionTypeId=self.action_type_id,  # type: ignore[arg-type]
            maxBatchSize=max_batch,
            queryParam=self.query_param if query is None else query,
        )
        return list(answer["jobs"])

    def status(self, client: CodePipelineClient, execution_id: str) -> str:
        execution = client.get_pipeline_execution(
            pipelineName=self.pipeline_name, pipelineExecutionId=execution_id
        )
        return execution["pipelineExecution"]["status"]

    def wait(self, client: CodePipelineClient, execution_id: str, timeout: float = 30.0) -> str:
        """Wait until the execution ends; return its status (raise TimeoutError if it does not)."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(client, execution_id)
            if status in TERMINAL_EXECUTION_STATES:
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {execution_id} still {status} after {timeout} s")
            time.sleep(0.05)

    def wait_for_jobs(
        self, client: CodePipelineClient, count: int = 1, timeout: float = 30.0
    ) -> list[Any]:
        """Poll until `count` jobs were delivered (raise TimeoutError otherwise)."""
        deadline = time.monotonic() + timeout
        jobs: list[Any] = []
        while len(jobs) < count:
            jobs += self.poll(client, max_batch=count - len(jobs))
            if len(jobs) < count:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{len(jobs)} of {count} jobs delivered after {timeout} s")
                time.sleep(0.05)
        return jobs


def s3_source_stage(bucket: str, key: str) -> dict[str, Any]:
    """The first stage: the S3 source action, its output `SourceArtifact` (namespace
    `SourceVariables`), started explicitly rather than by polling S3 for changes."""
    return {
        "name": "Source",
        "actions": [
            {
                "name": "Source",
                "actionTypeId": {
                    "category": "Source",
                    "owner": "AWS",
                    "provider": "S3",
                    "version": "1",
                },
                "configuration": {
                    "S3Bucket": bucket,
                    "S3ObjectKey": key,
                    "PollForSourceChanges": "false",
                },
                "outputArtifacts": [{"name": "SourceArtifact"}],
                "namespace": "SourceVariables",
                "runOrder": 1,
            }
        ],
    }


def create_scenario(
    cp: CodePipelineClient,
    s3: S3Client,
    *,
    name: str | None = None,
    provider: str | None = None,
    category: str = "Build",
    version: str = "1",
    configuration: Mapping[str, str] | None = None,
    secret_configuration: Mapping[str, str] | None = None,
    pool: str = "default",
    actions: Sequence[str] = ("Build",),
    output_artifacts: bool = True,
    kms_key_id: str | None = None,
    execution_url_template: str = "https://ci.example.com/runs/{ExternalExecutionId}",
    source_files: Mapping[str, str] | None = None,
) -> Scenario:
    """Create buckets, a source object, a custom action type (queryable `Pool`) and a pipeline.

    Every custom action in `actions` runs in the second stage, one after the other (runOrder),
    each consuming the previous one's output (the first consumes the source). Names are unique
    unless given, so tests can share one stand-in and one moto server.
    """
    suffix = uuid.uuid4().hex[:8]
    name = name or f"pipeline-{suffix}"
    provider = provider or f"Acme{suffix}"
    configuration = dict(configuration or {})
    secret_configuration = dict(secret_configuration or {})
    artifact_bucket, source_bucket, source_key = (
        f"artifacts-{suffix}",
        f"source-{suffix}",
        "source/app.zip",
    )
    s3.create_bucket(Bucket=artifact_bucket)
    s3.create_bucket(Bucket=source_bucket)
    s3.put_object(Bucket=source_bucket, Key=source_key, Body=source_zip(source_files))

    properties: list[dict[str, Any]] = [
        {
            "name": "Pool",
            "required": True,
            "key": True,
            "secret": False,
            "queryable": True,
            "type": "String",
        }
    ]
    properties += [
        {"name": key, "required": False, "key": False, "secret": False, "type": "String"}
        for key in configuration
    ]
    properties += [
        {"name": key, "required": False, "key": False, "secret": True, "type": "String"}
        for key in secret_configuration
    ]
    cp.create_custom_action_type(
        category=category,  # type: ignore[arg-type]
        provider=provider,
        version=version,
        settings={"executionUrlTemplate": execution_url_template},
        configurationProperties=properties,  # type: ignore[arg-type]
        inputArtifactDetails={"minimumCount": 0, "maximumCount": 5},
        outputArtifactDetails={"minimumCount": 0, "maximumCount": 5},
    )
    action_type_id = {
        "category": category,
        "owner": "Custom",
        "provider": provider,
        "version": version,
    }
    stages: list[dict[str, Any]] = [s3_source_stage(source_bucket, source_key)]
    custom_actions = []
    previous = "SourceArtifact"
    for order, action_name in enumerate(actions, start=1):
        action: dict[str, Any] = {
            "name": action_name,
            "actionTypeId": action_type_id,
            "configuration": {"Pool": pool, **configuration, **secret_configuration},
            "inputArtifacts": [{"name": previous}],
            "namespace": f"{action_name}Variables",
            "runOrder": order,
        }
        if output_artifacts:
            previous = f"{action_name}Output"
            action["outputArtifacts"] = [{"name": previous}]
        custom_actions.append(action)
    stages.append({"name": "Build", "actions": custom_actions})
    artifact_store: dict[str, Any] = {"type": "S3", "location": artifact_bucket}
    if kms_key_id is not None:
        artifact_store["encryptionKey"] = {"id": kms_key_id, "type": "KMS"}
    declaration: dict[str, Any] = {
        "name": name,
        "roleArn": "arn:aws:iam::123456789012:role/cpworker-sandbox-pipeline",
        "artifactStore": artifact_store,
        "stages": stages,
    }
    cp.create_pipeline(pipeline=cast("PipelineDeclarationTypeDef", declaration))
    return Scenario(
        pipeline_name=name,
        action_type_id=action_type_id,
        query_param={"Pool": pool},
        artifact_bucket=artifact_bucket,
        source_bucket=source_bucket,
        source_key=source_key,
        action_names=tuple(actions),
    )
