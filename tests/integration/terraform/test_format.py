"""`terraform fmt -check -recursive` over terraform/ and the test fixtures (reads, never writes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.terraform.tf import TERRAFORM_DIR, Terraform

FIXTURES_DIR = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("directory", [TERRAFORM_DIR, FIXTURES_DIR], ids=["terraform", "fixtures"])
def test_terraform_files_are_formatted(terraform: Terraform, directory: Path) -> None:
    result = terraform.run(["fmt", "-check", "-recursive", "-diff"], directory, check=False)
    assert result.returncode == 0, f"run `terraform fmt -recursive {directory}`:\n{result.stdout}"
