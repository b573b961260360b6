"""The helper's settings: the pod's environment, flags over it, the CRD's limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from cpworker.artifacts.settings import HelperSettingsError, load_helper_settings
from cpworker.models import Artifacts


def test_defaults_match_the_job_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "CPWORKER_JOB_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "CPWORKER_INPUT_DIR",
        "CPWORKER_OUTPUT_DIR",
        "CPWORKER_RESULT_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = load_helper_settings()
    spec = Artifacts()
    assert settings.job_file == Path("/var/run/cpworker/job.json")
    assert settings.credentials_file == Path("/var/run/cpworker/credentials")
    assert settings.input_dir == Path(spec.input_dir)
    assert settings.output_dir == Path(spec.output_dir)
    assert settings.result_file == Path("/dev/termination-log")
    assert settings.limits() == spec.limits


def test_the_pod_environment_is_read_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CPWORKER_INPUT_DIR", "/w/in")
    monkeypatch.setenv("CPWORKER_ARTIFACTS_MAX_FILES", "77")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    settings = load_helper_settings({"input_dir": "/flag/in", "max_total_bytes": None})
    assert settings.input_dir == Path("/flag/in")
    assert settings.max_files == 77
    assert settings.region == "eu-west-1"


def test_limits_outside_the_crds_range_are_refused_naming_flag_and_variable() -> None:
    with pytest.raises(HelperSettingsError) as refused:
        load_helper_settings({"max_files": 0, "max_compression_ratio": 10**9})
    message = str(refused.value)
    assert "max_files (--max-files / CPWORKER_ARTIFACTS_MAX_FILES)" in message
    assert "max_compression_ratio (--max-compression-ratio" in message


def test_parts_below_the_s3_minimum_are_refused() -> None:
    with pytest.raises(HelperSettingsError, match="part_bytes"):
        load_helper_settings({"part_bytes": 1024})
