"""checkov over terraform/: no failed check (findings fixed, or suppressed inline with a reason)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.terraform.tf import REPO_ROOT, TERRAFORM_DIR

# checkov pins many libraries of its own, so `make tools` installs it into .venv-tools.
TOOLS_CHECKOV = REPO_ROOT / ".venv-tools" / "bin" / "checkov"
CHECKOV_TIMEOUT_SECONDS = 300

# Checks that must have run (and passed) on the operator's IAM role: proof that checkov
# really evaluated the modules through the example, not an empty directory.
EXPECTED_PASSING = {"CKV_AWS_60", "CKV_AWS_61", "CKV_AWS_62", "CKV_AWS_63"}


def _checkov() -> str:
    configured = os.environ.get("CPWORKER_CHECKOV")
    for candidate in (configured, str(TOOLS_CHECKOV), shutil.which("checkov")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("checkov is not installed: run `make tools` (it installs .venv-tools/bin/checkov)")


def _reports(raw: str) -> list[dict[str, Any]]:
    parsed: dict[str, Any] | list[dict[str, Any]] = json.loads(raw)
    return parsed if isinstance(parsed, list) else [parsed]


def test_checkov_finds_nothing_in_terraform() -> None:
    completed = subprocess.run(
        [
            _checkov(),
            "--directory",
            str(TERRAFORM_DIR),
            "--framework",
            "terraform",
            "--compact",
            # Offline: no guideline or policy download from the vendor's cloud.
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=CHECKOV_TIMEOUT_SECONDS,
        check=False,
    )
    assert completed.stdout.strip(), completed.stderr
    [report] = _reports(completed.stdout)
    summary = report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert failed == [], "\n".join(failed)
    assert summary["parsing_errors"] == 0
    passed = {c["check_id"] for c in report["results"]["passed_checks"]}
    assert passed >= EXPECTED_PASSING
    assert completed.returncode == 0, completed.stderr
