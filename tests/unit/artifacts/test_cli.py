"""`cpworker artifacts`: usage, reports on failure, and nothing to do without artifacts."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from cpworker import cli as top
from cpworker.artifacts import cli
from cpworker.jobdata import JobData
from cpworker.results import parse_container_report
from tests.integration.artifacts.pod import JobVolume


def test_help_names_each_flag_and_its_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        top.main(["artifacts", "pull", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for text in (
        "--input-dir",
        "CPWORKER_INPUT_DIR",
        "--max-files",
        "CPWORKER_ARTIFACTS_MAX_FILES",
    ):
        assert text in out


def test_a_missing_job_file_is_reported(tmp_path: Path) -> None:
    result = tmp_path / "termination-log"
    code = cli.main(
        ["pull", "--job-file", str(tmp_path / "nope.json"), "--result-file", str(result)]
    )
    assert code == cli.EXIT_FAILED
    report = parse_container_report(result.read_text())
    assert report.failure is not None
    assert report.failure.type == "ConfigurationError"
    assert "Cannot read the job file" in report.failure.message


def test_a_job_without_artifacts_needs_no_credentials(tmp_path: Path) -> None:
    args = _no_artifact_args(tmp_path, outputs=[])
    assert cli.main(["pull", *args]) == 0
    assert cli.main(["push", *args]) == 0
    assert not (tmp_path / "log").exists()


def test_malformed_job_data_is_a_configuration_error(tmp_path: Path) -> None:
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"id": "not-a-uuid", "accountId": "1"}))
    result = tmp_path / "log"
    assert cli.main(["push", "--job-file", str(job), "--result-file", str(result)]) == 1
    report = parse_container_report(result.read_text())
    assert report.failure is not None
    assert report.failure.type == "ConfigurationError"
    assert "malformed CodePipeline job data" in report.failure.message


def _no_artifact_args(tmp_path: Path, outputs: list[str]) -> list[str]:
    volume = JobVolume(tmp_path / "volume")
    wire = {
        "outputArtifacts": [
            {
                "name": n,
                "location": {"type": "S3", "s3Location": {"bucketName": "b", "objectKey": n}},
            }
            for n in outputs
        ]
    }
    volume.publish_job(JobData.model_validate(wire))
    return [
        "--job-file",
        str(volume.job_file),
        "--credentials-file",
        str(tmp_path / "none"),
        "--input-dir",
        str(tmp_path / "in"),
        "--output-dir",
        str(tmp_path / "out"),
        "--result-file",
        str(tmp_path / "log"),
    ]


def test_pull_waits_for_the_push_sidecar_and_removes_its_ready_file(tmp_path: Path) -> None:
    args = _no_artifact_args(tmp_path, ["Out"])
    ready = tmp_path / "out" / cli.PUSH_READY_FILE
    ready.parent.mkdir(parents=True)
    timer = threading.Timer(0.3, lambda: ready.write_text("ready\n"))
    timer.start()
    started = time.monotonic()
    try:
        assert cli.main(["pull", "--wait-for-push", *args]) == 0
    finally:
        timer.cancel()
    assert time.monotonic() - started >= 0.3
    assert not ready.exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["Out"]


def test_pull_gives_up_on_a_push_sidecar_that_never_gets_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CPWORKER_ARTIFACTS_PUSH_READY_SECONDS", "0.2")
    args = _no_artifact_args(tmp_path, ["Out"])
    assert cli.main(["pull", "--wait-for-push", *args]) == cli.EXIT_FAILED
    report = parse_container_report((tmp_path / "log").read_text())
    assert report.failure is not None
    assert report.failure.type == "ConfigurationError"
    assert "cpworker-push) did not get ready within 0.2 s" in report.failure.message
    assert "kubectl logs" in report.failure.message
