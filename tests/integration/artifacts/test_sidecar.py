"""`push --wait-for-sigterm`: the push as a native sidecar, which the kubelet stops (SIGTERM)
once the job's containers have exited; it uploads then, and waits small until then. It says
it is ready for SIGTERM with OUTPUT_DIR/.cpworker-push-ready, which `pull --wait-for-push`
waits for, so that no container of the job starts before the push can be stopped safely."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from cpworker.artifacts.cli import PUSH_READY_FILE
from tests.integration.artifacts.pod import Pod, canary_credentials, make_job, output_location

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MIB = 1024 * 1024


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return (
        int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
        * 1024
    )


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_sidecar_pushes_when_stopped(pod: Pod, s3_client: S3Client) -> None:
    data, _ = make_job(s3_client, outputs=["Out"])
    pod.volume.publish_job(data)
    pod.volume.publish_credentials(canary_credentials())
    (pod.output_dir / "Out").mkdir(parents=True)
    log = pod.root / "sidecar.log"
    with log.open("w") as stderr:
        sidecar = subprocess.Popen(
            [sys.executable, "-m", "cpworker.cli", "artifacts", "push", "--wait-for-sigterm"],
            env={"PATH": os.environ.get("PATH", ""), **pod.env()},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            wait_for((pod.output_dir / PUSH_READY_FILE).exists)
            assert "waiting for SIGTERM" in log.read_text()
            idle = rss_bytes(sidecar.pid)
            print(f"\nidle sidecar RSS: {idle / MIB:.1f} MiB")
            assert idle < 60 * MIB  # boto3 is not even imported yet
            # The job's container writes its output while the sidecar waits ...
            (pod.output_dir / "Out/result.txt").write_text("built while the sidecar waited")
            bucket, key = output_location(data, "Out")
            assert "Contents" not in s3_client.list_objects_v2(Bucket=bucket, Prefix=key)
            # ... then exits, and the kubelet stops the sidecar.
            sidecar.send_signal(signal.SIGTERM)
            assert sidecar.wait(timeout=120) == 0, log.read_text()
        finally:
            if sidecar.poll() is None:
                sidecar.kill()
    body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.read("result.txt") == b"built while the sidecar waited"
    assert pod.report().failure is None


def test_a_sigterm_right_after_the_ready_file_still_pushes(pod: Pod, s3_client: S3Client) -> None:
    """The pod's containers may finish at once: the first moment they can start is when
    pull has seen the ready file, and a SIGTERM from then on is handled (never the default
    action's 143)."""
    data, _ = make_job(s3_client, outputs=["Out"])
    pod.volume.publish_job(data)
    pod.volume.publish_credentials(canary_credentials())
    (pod.output_dir / "Out").mkdir(parents=True)
    (pod.output_dir / "Out/quick.txt").write_text("a job that took no time")
    sidecar = subprocess.Popen(
        [sys.executable, "-m", "cpworker.cli", "artifacts", "push", "--wait-for-sigterm"],
        env={"PATH": os.environ.get("PATH", ""), **pod.env()},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for((pod.output_dir / PUSH_READY_FILE).exists)
        sidecar.send_signal(signal.SIGTERM)
        _, stderr = sidecar.communicate(timeout=120)
        assert sidecar.returncode == 0, stderr.decode()
    finally:
        if sidecar.poll() is None:
            sidecar.kill()
    bucket, key = output_location(data, "Out")
    body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.read("quick.txt") == b"a job that took no time"
