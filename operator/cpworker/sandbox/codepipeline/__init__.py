"""A local AWS CodePipeline: custom action types, pipelines, executions and the job API.

It speaks AWS JSON 1.1 on 127.0.0.1, validates every request (and, in strict conformance mode,
every response) against botocore's service model, and keeps artifacts in a real S3-protocol
store (moto's server). See docs/sandbox-codepipeline.md.
"""

from cpworker.sandbox.codepipeline.engine import JobTimeline
from cpworker.sandbox.codepipeline.knobs import Faults, OperationFaults, StandInConfig
from cpworker.sandbox.codepipeline.requestlog import RequestRecord
from cpworker.sandbox.codepipeline.standin import DEFAULT_ACCOUNT_ID, CodePipelineStandIn

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "CodePipelineStandIn",
    "Faults",
    "JobTimeline",
    "OperationFaults",
    "RequestRecord",
    "StandInConfig",
]
