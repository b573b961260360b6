"""pull and push against moto's S3, as a job pod runs them (`cpworker artifacts ...`)."""

from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from cpworker.jobdata import JobData
from cpworker.sandbox.codepipeline.scenario import source_zip
from tests.integration.artifacts.pod import (
    CANARIES,
    Pod,
    canary_credentials,
    make_job,
    output_location,
)
from tests.unit.artifacts.archives import tar_bytes, tar_file, tree

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def write_build_output(out: Path) -> None:
    (out / "dist/lib/deep").mkdir(parents=True)
    (out / "dist/lib/deep/module.py").write_text("VALUE = 42\n")
    (out / "dist/bin").mkdir()
    (out / "dist/bin/tool").write_text("#!/bin/sh\necho tool\n")
    (out / "dist/bin/tool").chmod(0o755)
    (out / "dist/empty/also-empty").mkdir(parents=True)
    (out / "dist/current").symlink_to("lib/deep")
    (out / "report.json").write_text('{"ok": true}\n')


def assert_clean(result_stderr: str, pod: Pod) -> None:
    for canary in CANARIES:
        assert canary not in result_stderr
        if pod.result_file.exists():
            assert canary not in pod.result_file.read_text()


def test_a_tree_survives_push_then_pull(pod: Pod, s3_client: S3Client, tmp_path: Path) -> None:
    build, _ = make_job(s3_client, outputs=["BuildOutput"])
    pod.volume.publish_job(build)
    pod.volume.publish_credentials(canary_credentials())
    pulled = pod.run("pull")
    assert pulled.returncode == 0, pulled.stderr
    out = pod.output_dir / "BuildOutput"
    assert tree(out) == {}  # created empty
    assert stat.S_IMODE(out.stat().st_mode) == 0o777  # writable by any uid of the pod
    write_build_output(out)
    pushed = pod.run("push")
    assert pushed.returncode == 0, pushed.stderr
    assert_clean(pushed.stderr, pod)
    assert not list(pod.output_dir.glob(".cpworker-*"))  # the zip is gone once uploaded

    # The next stage: a pod whose input is what was pushed.
    bucket, key = output_location(build, "BuildOutput")
    test_stage = Pod(tmp_path / "next-pod", pod.s3_url)
    test_stage.volume.publish_job(JobData(input_artifacts=build.output_artifacts))
    test_stage.volume.publish_credentials(canary_credentials())
    pulled = test_stage.run("pull")
    assert pulled.returncode == 0, pulled.stderr
    assert tree(test_stage.input_dir / "BuildOutput") == tree(out)
    tool = test_stage.input_dir / "BuildOutput/dist/bin/tool"
    assert os.access(tool, os.X_OK)
    assert (test_stage.input_dir / "BuildOutput/dist/empty/also-empty").is_dir()
    assert_clean(pulled.stderr, test_stage)

    # What was stored is a plain zip any tool reads, in a stable order.
    stored = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    with zipfile.ZipFile(io.BytesIO(stored)) as archive:
        names = archive.namelist()
    assert names == sorted(names)
    assert "dist/empty/also-empty/" in names


def test_pushing_the_same_tree_twice_stores_the_same_bytes(pod: Pod, s3_client: S3Client) -> None:
    data, _ = make_job(s3_client, outputs=["Out"])
    pod.volume.publish_job(data)
    pod.volume.publish_credentials(canary_credentials())
    write_build_output(pod.output_dir / "Out")
    etags = []
    for _ in range(2):
        assert pod.run("push").returncode == 0
        bucket, key = output_location(data, "Out")
        etags.append(s3_client.head_object(Bucket=bucket, Key=key)["ETag"])
    assert etags[0] == etags[1]


def test_outputs_are_matched_by_name_not_position(pod: Pod, s3_client: S3Client) -> None:
    data, _ = make_job(s3_client, outputs=["Zeta", "Alpha"])
    pod.volume.publish_job(data)
    pod.volume.publish_credentials(canary_credentials())
    assert pod.run("pull").returncode == 0
    (pod.output_dir / "Alpha/which").write_text("alpha")
    (pod.output_dir / "Zeta/which").write_text("zeta")
    (pod.output_dir / "Stray").mkdir()
    pushed = pod.run("push")
    assert pushed.returncode == 0, pushed.stderr
    for name, expected in (("Alpha", b"alpha"), ("Zeta", b"zeta")):
        bucket, key = output_location(data, name)
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            assert archive.read("which") == expected
    assert "'Stray' in" in pushed.stderr
    assert "names no output artifact of this job" in pushed.stderr


def test_tar_and_tar_gz_and_single_file_inputs(pod: Pod, s3_client: S3Client) -> None:
    data, _ = make_job(
        s3_client,
        inputs={
            "Zipped": source_zip({"z/a.txt": "zip"}),
            "Tarred": tar_bytes([tar_file("t/a.txt", b"tar", 0o755)]),
            "Gzipped": tar_bytes([tar_file("g/a.txt", b"tgz")], gzipped=True),
            "Plain": b"a single file that is no archive\n",
        },
        input_keys={"Plain": "custom-source/app.jar"},
    )
    pod.volume.publish_job(data)
    pod.volume.publish_credentials(canary_credentials())
    pulled = pod.run("pull")
    assert pulled.returncode == 0, pulled.stderr
    assert (pod.input_dir / "Zipped/z/a.txt").read_text() == "zip"
    assert (pod.input_dir / "Tarred/t/a.txt").read_text() == "tar"
    assert os.access(pod.input_dir / "Tarred/t/a.txt", os.X_OK)
    assert (pod.input_dir / "Gzipped/g/a.txt").read_text() == "tgz"
    assert (pod.input_dir / "Plain/app.jar").read_bytes() == b"a single file that is no archive\n"
    assert sorted(p.name for p in pod.input_dir.iterdir()) == [
        "Gzipped",
        "Plain",
        "Tarred",
        "Zipped",
    ]  # no download left behind
    for fmt in ("format=zip", "format=tar ", "format=tar.gz", "format=file"):
        assert fmt in pulled.stderr
    assert pod.report().failure is None


def test_a_missing_input_object_fails_the_job_and_says_why(pod: Pod, s3_client: S3Client) -> None:
    data, bucket = make_job(s3_client, inputs={"Source": b"x"})
    (artifact,) = data.input_artifacts
    assert artifact.location is not None
    assert artifact.location.s3_location is not None
    s3_client.delete_object(Bucket=bucket, Key=artifact.location.s3_location.object_key)
    pod.volume.publish_job(data)
    pod.volume.publish_credentials(canary_credentials())
    pulled = pod.run("pull")
    assert pulled.returncode == 1
    failure = pod.report().failure
    assert failure is not None
    assert failure.type == "JobFailed"
    assert "Could not download input artifact 'Source'" in failure.message
    assert "S3 has no such object" in failure.message
    assert not (pod.input_dir / "Source").exists()


def test_a_missing_output_directory_fails_the_push(pod: Pod, s3_client: S3Client) -> None:
    data, _ = make_job(s3_client, outputs=["Out"])
    pod.volume.publish_job(data)
    pod.volume.publish_credentials(canary_credentials())
    pod.output_dir.mkdir(parents=True)
    pushed = pod.run("push")
    assert pushed.returncode == 1
    failure = pod.report().failure
    assert failure is not None
    assert failure.type == "JobFailed"
    assert "$CPWORKER_OUTPUT_DIR/Out/" in failure.message


def test_s3_out_of_reach_is_system_unavailable(pod: Pod, s3_client: S3Client) -> None:
    data, _ = make_job(s3_client, inputs={"Source": source_zip()})
    pod.volume.publish_job(data)
    pod.volume.publish_credentials(canary_credentials())
    pulled = pod.run(
        "pull",
        extra_env={
            "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9",  # discard port: nothing listens
            "CPWORKER_ARTIFACTS_MAX_ATTEMPTS": "2",
        },
    )
    assert pulled.returncode == 1
    failure = pod.report().failure
    assert failure is not None
    assert failure.type == "SystemUnavailable"
    assert "could not be reached" in failure.message


def test_bad_settings_exit_2_with_a_configuration_error(pod: Pod) -> None:
    result = pod.run("pull", "--max-files", "0")
    assert result.returncode == 2
    assert "--max-files" in result.stderr
    failure = pod.report().failure
    assert failure is not None
    assert failure.type == "ConfigurationError"
