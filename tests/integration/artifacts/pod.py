"""A job pod's view of the world, on local disk: the job volume, the workspace, the env.

`JobVolume` lays out and updates the credentials and job files the way the kubelet's
AtomicWriter does for a Secret volume (kubernetes/kubernetes pkg/volume/util/atomic_writer.go):
each version in a fresh `..<timestamp>` directory, `..data` a symlink to the current one,
every file a symlink through `..data`, and an update a rename of a new `..data` symlink over
the old one. A reader opening `credentials` therefore sees the old or the new file, never half.
The job file and credentials file are written with the operator's own functions.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cpworker import jobsecret
from cpworker.artifacts.settings import HelperSettings
from cpworker.jobdata import AwsSessionCredentials, JobData, job_document
from cpworker.results import ContainerReport, parse_container_report
from cpworker.sandbox.codepipeline.environment import REGION

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

JOB_ID = "0d9c4b7e-5a61-4f0e-9d3b-2c1a0f9e8d7c"
ACCOUNT_ID = "123456789012"
# Recognisable credentials: moto accepts any, and no log or report may ever show them.
CANARY_KEY_ID = "ASIACANARYKEY0000001"
CANARY_SECRET = "canary-artifact-secret-3c9e1f0a7b"
CANARY_TOKEN = "canary-artifact-session-token-5d2b8e"
CANARIES = (CANARY_SECRET, CANARY_TOKEN)


def canary_credentials() -> dict[str, str]:
    return {
        "accessKeyId": CANARY_KEY_ID,
        "secretAccessKey": CANARY_SECRET,
        "sessionToken": CANARY_TOKEN,
    }


class JobVolume:
    """The job's Secret volume: `credentials` and `job.json`, updated atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, str] = {}

    @property
    def credentials(self) -> Path:
        return self.root / jobsecret.CREDENTIALS_KEY

    @property
    def job_file(self) -> Path:
        return self.root / jobsecret.JOB_KEY

    def write(self, **files: str) -> None:
        """Publish a new version holding `files` (merged into the previous version's files)."""
        self._files.update(files)
        version = self.root / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{uuid.uuid4().hex[:8]}"
        version.mkdir()
        for name, text in self._files.items():
            (version / name).write_text(text, encoding="utf-8")
        staged = self.root / "..data_tmp"
        staged.unlink(missing_ok=True)
        staged.symlink_to(version.name)
        old = (self.root / "..data").resolve() if (self.root / "..data").exists() else None
        staged.replace(self.root / "..data")
        for name in self._files:
            link = self.root / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")
        if old is not None:
            for stale in old.iterdir():
                stale.unlink()
            old.rmdir()

    def publish_credentials(self, wire: Mapping[str, Any] | None) -> None:
        """What the operator writes after PollForJobs or GetJobDetails (a boto3 dict)."""
        creds = AwsSessionCredentials.model_validate(wire) if wire is not None else None
        self.write(**{jobsecret.CREDENTIALS_KEY: jobsecret.credentials_file(creds)})

    def publish_job(self, data: JobData) -> None:
        document = job_document(JOB_ID, ACCOUNT_ID, data, frozenset())
        self.write(**{jobsecret.JOB_KEY: json.dumps(document, indent=2, sort_keys=True)})


@dataclasses.dataclass
class Pod:
    """The job volume, the workspace and the environment of one job pod, under `root`."""

    root: Path
    s3_url: str

    def __post_init__(self) -> None:
        self.volume = JobVolume(self.root / "var-run-cpworker")
        self.input_dir = self.root / "workspace" / "in"
        self.output_dir = self.root / "workspace" / "out"
        self.result_file = self.root / "termination-log"

    def env(self) -> dict[str, str]:
        """The variables the operator gives a job's containers, pointing at this pod's files."""
        return {
            "CPWORKER_JOB_FILE": str(self.volume.job_file),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.volume.credentials),
            "CPWORKER_INPUT_DIR": str(self.input_dir),
            "CPWORKER_OUTPUT_DIR": str(self.output_dir),
            "CPWORKER_RESULT_FILE": str(self.result_file),
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL_S3": self.s3_url,
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def settings(self, **overrides: Any) -> HelperSettings:
        values: dict[str, Any] = {
            "job_file": self.volume.job_file,
            "credentials_file": self.volume.credentials,
            "input_dir": self.input_dir,
            "output_dir": self.output_dir,
            "result_file": self.result_file,
            "region": REGION,
        }
        return HelperSettings(**(values | overrides))

    def report(self) -> ContainerReport:
        """The termination message, read with the operator's own parser."""
        text = self.result_file.read_text(encoding="utf-8") if self.result_file.exists() else ""
        return parse_container_report(text)

    def run(
        self, *args: str, extra_env: Mapping[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """`cpworker artifacts ARGS` in a process of its own, as a container runs it."""
        env = {"PATH": os.environ.get("PATH", ""), **self.env(), **(extra_env or {})}
        return subprocess.run(
            [sys.executable, "-m", "cpworker.cli", "artifacts", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def artifact_wire(name: str, bucket: str, key: str) -> dict[str, Any]:
    return {
        "name": name,
        "location": {"type": "S3", "s3Location": {"bucketName": bucket, "objectKey": key}},
    }


def make_job(
    s3: S3Client,
    *,
    inputs: Mapping[str, bytes] | None = None,
    outputs: Sequence[str] = (),
    kms_key_id: str | None = None,
    input_keys: Mapping[str, str] | None = None,
) -> tuple[JobData, str]:
    """A bucket holding `inputs`, and job data naming them and `outputs` (as CodePipeline does:
    keys `<pipeline>/<artifact>/<random>`, no extension). Returns the data and the bucket."""
    bucket = f"artifacts-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    wire_inputs = []
    for name, body in (inputs or {}).items():
        key = (input_keys or {}).get(name, f"pipeline/{name[:10]}/{uuid.uuid4().hex[:7]}")
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        wire_inputs.append(artifact_wire(name, bucket, key))
    wire_outputs = [
        artifact_wire(name, bucket, f"pipeline/{name[:10]}/{uuid.uuid4().hex[:7]}")
        for name in outputs
    ]
    wire: dict[str, Any] = {"inputArtifacts": wire_inputs, "outputArtifacts": wire_outputs}
    if kms_key_id is not None:
        wire["encryptionKey"] = {"id": kms_key_id, "type": "KMS"}
    return JobData.model_validate(wire), bucket


def output_location(data: JobData, name: str) -> tuple[str, str]:
    (artifact,) = [a for a in data.output_artifacts if a.name == name]
    assert artifact.location is not None
    assert artifact.location.s3_location is not None
    return artifact.location.s3_location.bucket_name, artifact.location.s3_location.object_key
