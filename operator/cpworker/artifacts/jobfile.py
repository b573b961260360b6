"""The job's artifacts, as `job.json` (written by the operator into the job's Secret) lists them."""

from __future__ import annotations

import json
from pathlib import Path

from cpworker.artifacts.failures import ArtifactFailure
from cpworker.jobdata import Artifact, InvalidJobDataError, JobData, S3Location, parse_job_details


def read_job(path: Path) -> JobData:
    """The job data of `path`; ConfigurationError when it is missing or malformed."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ArtifactFailure(
            "ConfigurationError",
            f"Cannot read the job file {path} ({error.strerror}): the artifact helper expects "
            "the job volume that the cpworker operator mounts.",
        ) from None
    except ValueError:
        raise ArtifactFailure("ConfigurationError", f"The job file {path} is not JSON.") from None
    try:
        return parse_job_details(raw).data
    except InvalidJobDataError as error:
        raise ArtifactFailure("ConfigurationError", error.message) from None


def location_of(artifact: Artifact, role: str) -> S3Location:
    """Where an artifact lives in S3; JobFailed when CodePipeline gave no S3 location."""
    location = artifact.location.s3_location if artifact.location else None
    if location is None:
        raise ArtifactFailure(
            "JobFailed",
            f"The {role} artifact {artifact.name!r} has no S3 location in the job data; "
            "CodePipeline stores artifacts in S3, so the pipeline's artifact store is "
            "misconfigured.",
        )
    return location
