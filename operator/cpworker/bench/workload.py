"""The benchmark's workload, made the way a user makes it: through the public APIs.

CodePipeline side (boto3 against the local CodePipeline): one custom action type per phase
(so that no phase can take another's jobs), with the queryable property `Pool`, one pipeline
per pool, and executions that each queue one job. Kubernetes side: a namespace per phase and
its CustomActionWorkers, one per pool, written straight into the stand-in's store (creating
10,000 workers over HTTP would only measure the benchmark).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from cpworker import models, names
from cpworker.sandbox.codepipeline.scenario import s3_source_stage, source_zip
from cpworker.sandbox.kube import KubeStandIn

if TYPE_CHECKING:
    from mypy_boto3_codepipeline import CodePipelineClient
    from mypy_boto3_codepipeline.type_defs import PipelineDeclarationTypeDef
    from mypy_boto3_s3 import S3Client

REGION = "us-east-1"
POOL_PROPERTY = "Pool"
DURATION_ANNOTATION = "sandbox.cpworker.io/duration"
SOURCE_KEY = "source/app.zip"


def pool_name(index: int) -> str:
    return f"p{index:05d}"  # a pipeline's queryable value is at most 20 characters


def worker_name(index: int) -> str:
    return f"w{index:05d}"


@dataclass
class Workload:
    cp: CodePipelineClient
    s3: S3Client
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    _pipelines: dict[tuple[str, str], str] = field(default_factory=dict)
    _buckets_ready: bool = False

    @property
    def artifact_bucket(self) -> str:
        return f"bench-artifacts-{self.suffix}"

    @property
    def source_bucket(self) -> str:
        return f"bench-source-{self.suffix}"

    def _buckets(self) -> None:
        if self._buckets_ready:
            return
        self.s3.create_bucket(Bucket=self.artifact_bucket)
        self.s3.create_bucket(Bucket=self.source_bucket)
        self.s3.put_object(Bucket=self.source_bucket, Key=SOURCE_KEY, Body=source_zip())
        self._buckets_ready = True

    def action_type(self, provider: str) -> dict[str, str]:
        """A custom action type with the queryable property `Pool`; its actionTypeId."""
        self.cp.create_custom_action_type(
            category="Build",
            provider=provider,
            version="1",
            settings={"executionUrlTemplate": "https://ci.example.com/runs/{ExternalExecutionId}"},
            configurationProperties=[
                {
                    "name": POOL_PROPERTY,
                    "required": True,
                    "key": True,
                    "secret": False,
                    "queryable": True,
                    "type": "String",
                }
            ],
            inputArtifactDetails={"minimumCount": 0, "maximumCount": 5},
            outputArtifactDetails={"minimumCount": 0, "maximumCount": 5},
        )
        return {"category": "Build", "owner": "Custom", "provider": provider, "version": "1"}

    def pipeline(self, action_type_id: dict[str, str], pool: str) -> str:
        """The pipeline `S3 source -> custom action (Pool=pool)`, created on first use."""
        key = (action_type_id["provider"], pool)
        if key in self._pipelines:
            return self._pipelines[key]
        self._buckets()
        name = f"bench-{action_type_id['provider']}-{pool}"
        declaration: dict[str, Any] = {
            "name": name,
            "roleArn": "arn:aws:iam::123456789012:role/cpworker-bench-pipeline",
            "artifactStore": {"type": "S3", "location": self.artifact_bucket},
            "stages": [
                s3_source_stage(self.source_bucket, SOURCE_KEY),
                {
                    "name": "Build",
                    "actions": [
                        {
                            "name": "Build",
                            "actionTypeId": action_type_id,
                            "configuration": {POOL_PROPERTY: pool},
                            "inputArtifacts": [{"name": "SourceArtifact"}],
                            "outputArtifacts": [{"name": "BuildOutput"}],
                            "runOrder": 1,
                        }
                    ],
                },
            ],
        }
        self.cp.create_pipeline(pipeline=cast("PipelineDeclarationTypeDef", declaration))
        self._pipelines[key] = name
        return name

    def start(self, action_type_id: dict[str, str], pool: str) -> str:
        """Start one execution: the stand-in copies the source, then queues one job."""
        name = self.pipeline(action_type_id, pool)
        return self.cp.start_pipeline_execution(name=name)["pipelineExecutionId"]


def worker_manifest(
    index: int,
    namespace: str,
    action_type_id: dict[str, str],
    *,
    max_in_flight: int = models.DEFAULT_MAX_IN_FLIGHT,
    max_interval: int | None = None,
    job_duration: float = 1.0,
    paused: bool = False,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A CustomActionWorker for pool `index`; polling at the defaults unless `max_interval`."""
    spec: dict[str, Any] = {
        "actionTypeId": dict(action_type_id),
        "queryParam": {POOL_PROPERTY: pool_name(index)},
        "region": REGION,
        "maxInFlight": max_in_flight,
        "paused": paused,
        "jobTemplate": {
            "spec": {
                "template": {
                    "metadata": {"annotations": {DURATION_ANNOTATION: f"{job_duration:g}s"}},
                    "spec": {"containers": [{"name": "build", "image": "example.com/builder:1"}]},
                }
            }
        },
    }
    if max_interval is not None:
        spec["polling"] = {
            "minIntervalSeconds": min(models.DEFAULT_MIN_INTERVAL_SECONDS, max_interval),
            "maxIntervalSeconds": max_interval,
        }
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {
            "name": worker_name(index),
            "namespace": namespace,
            **({"labels": dict(labels)} if labels else {}),
        },
        "spec": spec,
    }


def create_fleet(kube: KubeStandIn, namespace: str, workers: Sequence[dict[str, Any]]) -> None:
    """The namespace and its workers, in chunks (each chunk is one call on the server's loop)."""
    kube.apply_manifests(
        [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}]
    )
    chunk = 200
    for start in range(0, len(workers), chunk):
        kube.apply_manifests(workers[start : start + chunk])


def set_paused(kube: KubeStandIn, namespace: str, workers: Sequence[str], paused: bool) -> None:
    """Pause or resume workers with a merge patch on the server's loop (not an HTTP call, so
    the audit log of the measured processes stays theirs)."""
    api = kube.server.api
    rtype = kube.server.registry.by_kind(names.API_VERSION, names.KIND)
    assert rtype is not None
    patch = {"spec": {"paused": paused}}

    def apply() -> None:
        for name in workers:
            api.patch(rtype, namespace, name, "application/merge-patch+json", patch)

    kube.call(apply)
