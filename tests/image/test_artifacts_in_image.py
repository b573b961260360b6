"""The artifact helper inside the operator image, as a job pod runs it: uid 65532, a read-only
root filesystem without /tmp, no capabilities, the job's Secret read-only at /var/run/cpworker
and the artifacts volume writable at /workspace; S3 is moto on loopback (network=host).

`cpworker-push` (a sidecar waiting for SIGTERM) and `cpworker-pull --wait-for-push` run as
two containers of the image side by side, as the pod runs them, then the kubelet's SIGTERM is
`podman kill --signal=TERM`.
"""

from __future__ import annotations

import io
import os
import stat
import time
import uuid
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cpworker.artifacts.cli import PUSH_READY_FILE
from cpworker.jobdata import JobData
from tests.image.conftest import RunInImage
from tests.integration.artifacts.pod import (
    CANARIES,
    JobVolume,
    canary_credentials,
    make_job,
    output_location,
)
from tools.image import podman

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from tools.image.build import BuiltImage

KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/7d1c9e2a-5b4f-4a3e-9c8d-1f2e3a4b5c6d"
HELPER_UID = 65532
SOURCE_TREE = {
    "README.md": b"hello from the source\n",
    "tools/build.sh": b"#!/bin/sh\necho built\n",
}


def source_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, body in SOURCE_TREE.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o100755 if name.endswith(".sh") else 0o100644) << 16
            archive.writestr(info, body)
    return buffer.getvalue()


class JobPod:
    """The pod's two volumes on the host: the job's Secret files and the artifacts emptyDir."""

    def __init__(self, root: Path, moto_server: str, data: JobData) -> None:
        self.volume = JobVolume(root / "secret")
        self.volume.publish_job(data)
        self.volume.publish_credentials(canary_credentials())
        for path in [self.volume.root, *self.volume.root.rglob("*")]:
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() else 0o444)
        self.workspace = root / "workspace"
        for sub in ("in", "out"):
            (self.workspace / sub).mkdir(parents=True)
            (self.workspace / sub).chmod(0o777)  # an emptyDir and its subPaths: 0777
        self.workspace.chmod(0o777)
        self.env = {
            "CPWORKER_INPUT_DIR": "/workspace/in",
            "CPWORKER_OUTPUT_DIR": "/workspace/out",
            "CPWORKER_RESULT_FILE": "/workspace/termination-log",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": moto_server,
        }

    def options(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "mounts": {self.volume.root: "/var/run/cpworker"},
            "volumes": {self.workspace: "/workspace"},
            "network": "host",
            "tmp": False,
        }


def test_pull_and_push_in_the_image_as_the_pod_runs_them(
    run_in_image: RunInImage,
    image: BuiltImage,
    moto_server: str,
    s3_client: S3Client,
    tmp_path: Path,
) -> None:
    data, _ = make_job(
        s3_client,
        inputs={"SourceArtifact": source_zip()},
        outputs=["BuildOutput"],
        kms_key_id=KMS_KEY,
    )
    pod = JobPod(tmp_path, moto_server, data)
    options = pod.options()
    name = f"cpworker-push-{uuid.uuid4().hex[:8]}"
    podman.start_detached(
        image.ref,
        name,
        "artifacts",
        "push",
        "--wait-for-sigterm",
        **options,
    )
    try:
        started = time.monotonic()
        pulled = run_in_image("artifacts", "pull", "--wait-for-push", timeout=300, **options)
        pull_seconds = time.monotonic() - started
        assert pulled.returncode == 0, pulled.stderr
        print(f"\npull --wait-for-push in the image: {pull_seconds:.2f} s")
        assert not (pod.workspace / "out" / PUSH_READY_FILE).exists()  # pull removed it

        extracted = pod.workspace / "in" / "SourceArtifact"
        assert (extracted / "README.md").read_bytes() == SOURCE_TREE["README.md"]
        script = extracted / "tools/build.sh"
        assert stat.S_IMODE(script.stat().st_mode) == 0o755  # still executable
        assert script.stat().st_uid == HELPER_UID  # written by the helper's user
        output = pod.workspace / "out" / "BuildOutput"
        assert output.is_dir()
        assert stat.S_IMODE(output.stat().st_mode) == 0o777  # any user of the pod may write

        # The job's container writes its output (as another user), then exits: SIGTERM.
        (output / "dist").mkdir()
        (output / "dist/app.bin").write_bytes(os.urandom(9 * 1024 * 1024))  # multipart
        (output / "dist/run.sh").write_bytes(b"#!/bin/sh\n")
        (output / "dist/run.sh").chmod(0o755)
        for path in [output / "dist", *(output / "dist").iterdir()]:
            os.chown(path, 1000, 1000)
        podman.podman("kill", "--signal=TERM", name)
        waited = podman.podman("wait", name, timeout=300)
        logs = podman.podman("logs", name).stderr + podman.podman("logs", name).stdout
        assert waited.stdout.strip() == "0", logs
    finally:
        podman.podman("rm", "--force", name, check=False)

    assert "push finished" in logs
    for canary in CANARIES:
        assert canary not in logs + pulled.stderr
    bucket, key = output_location(data, "BuildOutput")
    head = s3_client.head_object(Bucket=bucket, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == KMS_KEY
    body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.read("dist/app.bin") == (output / "dist/app.bin").read_bytes()
        assert (archive.getinfo("dist/run.sh").external_attr >> 16) & 0o777 == 0o755
    assert not (pod.workspace / "termination-log").exists()  # no failure reported


def test_a_failed_push_in_the_image_writes_its_report(
    run_in_image: RunInImage, moto_server: str, s3_client: S3Client, tmp_path: Path
) -> None:
    data, _ = make_job(s3_client, outputs=["BuildOutput"])
    pod = JobPod(tmp_path, moto_server, data)
    # The job's container never wrote BuildOutput/ (pull did not run): the push must say so.
    pushed = run_in_image("artifacts", "push", timeout=300, **pod.options())
    assert pushed.returncode == 1
    report = (pod.workspace / "termination-log").read_text()
    assert '"type": "JobFailed"' in report
    assert "BuildOutput" in report
