"""The failure report: the job contract's JSON, read back by the operator, always fitting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cpworker.artifacts.failures import TERMINATION_MESSAGE_MAX_BYTES, ArtifactFailure, write_report
from cpworker.logging_setup import SECRETS
from cpworker.results import parse_container_report


def test_the_operator_reads_the_report(tmp_path: Path) -> None:
    path = tmp_path / "termination-log"
    write_report(path, ArtifactFailure("PermissionError", "S3 denied it"))
    report = parse_container_report(path.read_text())
    assert report.failure is not None
    assert (report.failure.type, report.failure.message) == ("PermissionError", "S3 denied it")
    assert json.loads(path.read_text()) == {
        "failure": {"type": "PermissionError", "message": "S3 denied it"}
    }


@pytest.mark.parametrize("character", ["x", "\u2603", '"', "\n"])
def test_a_long_message_is_cut_to_fit_the_termination_message(
    tmp_path: Path, character: str
) -> None:
    path = tmp_path / "termination-log"
    write_report(path, ArtifactFailure("JobFailed", "start " + character * 10_000))
    raw = path.read_bytes()
    assert len(raw) <= TERMINATION_MESSAGE_MAX_BYTES
    report = parse_container_report(raw.decode())
    assert report.failure is not None
    assert report.failure.message.startswith("start ")
    assert report.failure.message.endswith(" [...]")


def test_known_secrets_never_reach_the_report(tmp_path: Path) -> None:
    SECRETS.add(["canary-report-secret-9d1c"])
    path = tmp_path / "termination-log"
    write_report(path, ArtifactFailure("JobFailed", "leaked canary-report-secret-9d1c here"))
    assert "canary-report-secret-9d1c" not in path.read_text()
    assert "***" in path.read_text()


def test_an_unwritable_report_file_does_not_raise(tmp_path: Path) -> None:
    write_report(tmp_path / "missing-dir" / "log", ArtifactFailure("JobFailed", "x"))
