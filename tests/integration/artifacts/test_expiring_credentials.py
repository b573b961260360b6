"""Credentials that expire in the middle of a transfer: the helper waits for the refreshed file
and carries on, as in a pod whose operator refreshes the Secret and whose kubelet updates the
mounted file a little later.

The CodePipeline stand-in mints the job's credentials with a short lifetime and its S3 guard
refuses them once expired (ExpiredToken, as S3 does). The test plays the operator: when the
guard has refused a request, it waits (the kubelet's delay), calls GetJobDetails for fresh
credentials and publishes them into the job volume the way the kubelet swaps a Secret volume.
The helper runs as a process of its own with one part in flight at a time and a bandwidth cap,
so the transfer outlasts the credentials whatever the machine's speed.
"""

from __future__ import annotations

import io
import os
import threading
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cpworker.jobdata import parse_job
from cpworker.sandbox.codepipeline import CodePipelineStandIn
from cpworker.sandbox.codepipeline.scenario import create_scenario
from tests.integration.artifacts.conftest import Clients
from tests.integration.artifacts.pod import JobVolume, Pod, output_location

if TYPE_CHECKING:
    from mypy_boto3_codepipeline import CodePipelineClient

MIB = 1024 * 1024
LIFETIME = 6.0  # seconds the job's credentials live
KUBELET_DELAY = 1.0  # from the operator's refresh to the updated file in the pod
PAYLOAD = 20 * MIB  # at 2 MiB/s: ten seconds of transfer, in four 5 MiB parts
SLOW = {
    "CPWORKER_ARTIFACTS_MAX_BANDWIDTH": str(2 * MIB),
    "CPWORKER_ARTIFACTS_MAX_CONCURRENCY": "1",
    "CPWORKER_ARTIFACTS_PART_BYTES": str(5 * MIB),
    "CPWORKER_ARTIFACTS_CREDENTIALS_WAIT_SECONDS": "60",
}


class Operator(threading.Thread):
    """Refreshes the job's credentials file after the guard refused expired ones."""

    def __init__(
        self, standin: CodePipelineStandIn, cp: CodePipelineClient, job_id: str, volume: JobVolume
    ) -> None:
        super().__init__(name="operator-refresh", daemon=True)
        self._standin, self._cp, self._job_id, self._volume = standin, cp, job_id, volume
        self.stopped = threading.Event()
        self.refreshes = 0

    def run(self) -> None:
        seen = 0
        while not self.stopped.wait(0.05):
            if self._standin.expired_credentials_refused <= seen:
                continue
            time.sleep(KUBELET_DELAY)
            details = self._cp.get_job_details(jobId=self._job_id)["jobDetails"]
            self._volume.publish_credentials(details["data"]["artifactCredentials"])
            self.refreshes += 1
            seen = self._standin.expired_credentials_refused


@pytest.mark.parametrize("command", ["pull", "push"])
def test_a_transfer_outlives_its_credentials(
    guarded: CodePipelineStandIn, guarded_clients: Clients, tmp_path: Path, command: str
) -> None:
    cp, s3 = guarded_clients
    scenario = create_scenario(cp, s3)
    payload = os.urandom(PAYLOAD)
    guarded.config.credential_lifetime = LIFETIME
    scenario.start(cp)
    (raw_job,) = scenario.wait_for_jobs(cp)
    assert cp.acknowledge_job(jobId=raw_job["id"], nonce=raw_job["nonce"])["status"] == "InProgress"
    job = parse_job(raw_job)
    pod = Pod(tmp_path / "pod", guarded.s3_url)  # every S3 request passes the guard
    if command == "pull":
        # The source action already copied the source zip; make the input a large single file.
        (source,) = job.data.input_artifacts
        assert source.location is not None
        assert source.location.s3_location is not None
        location = source.location.s3_location
        s3.put_object(Bucket=location.bucket_name, Key=location.object_key, Body=payload)
        data = job.data.model_copy(update={"output_artifacts": []})
    else:
        data = job.data.model_copy(update={"input_artifacts": []})
        (pod.output_dir / "BuildOutput").mkdir(parents=True)
        (pod.output_dir / "BuildOutput/payload.bin").write_bytes(payload)
    pod.volume.publish_job(data)
    pod.volume.publish_credentials(raw_job["data"]["artifactCredentials"])

    operator = Operator(guarded, cp, job.id, pod.volume)
    operator.start()
    try:
        result = pod.run(command, extra_env=SLOW, timeout=180)
    finally:
        operator.stopped.set()
        operator.join(timeout=10)

    assert result.returncode == 0, result.stderr[-3000:]
    assert guarded.expired_credentials_refused >= 1
    assert operator.refreshes >= 1
    # Refused in the middle: a part request, after the transfer had begun.
    part = "GetObject" if command == "pull" else "UploadPart"
    assert f"artifact credentials expired: operation={part}" in result.stderr
    assert "artifact credentials renewed" in result.stderr
    if command == "pull":
        single = pod.input_dir / "SourceArtifact" / location.object_key.rsplit("/", 1)[-1]
        assert single.read_bytes() == payload
    else:
        bucket, key = output_location(data, "BuildOutput")
        stored = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        with zipfile.ZipFile(io.BytesIO(stored)) as archive:
            assert archive.read("payload.bin") == payload
    for secret in (
        raw_job["data"]["artifactCredentials"]["secretAccessKey"],
        raw_job["data"]["artifactCredentials"]["sessionToken"],
    ):
        assert secret not in result.stderr


def test_no_refresh_in_time_is_system_unavailable(
    guarded: CodePipelineStandIn, guarded_clients: Clients, tmp_path: Path
) -> None:
    cp, s3 = guarded_clients
    scenario = create_scenario(cp, s3)
    guarded.config.credential_lifetime = 0  # born expired, and nobody refreshes them
    scenario.start(cp)
    (raw_job,) = scenario.wait_for_jobs(cp)
    cp.acknowledge_job(jobId=raw_job["id"], nonce=raw_job["nonce"])
    pod = Pod(tmp_path / "pod", guarded.s3_url)
    pod.volume.publish_job(parse_job(raw_job).data)
    pod.volume.publish_credentials(raw_job["data"]["artifactCredentials"])
    result = pod.run("pull", extra_env={"CPWORKER_ARTIFACTS_CREDENTIALS_WAIT_SECONDS": "2"})
    assert result.returncode == 1
    failure = pod.report().failure
    assert failure is not None
    assert failure.type == "SystemUnavailable", (failure.message, result.stderr[-3000:])
    assert "no refreshed credentials file appeared within 2 s" in failure.message
