"""`terraform init` (offline) + `validate` + `terraform test` for every provider-available module.

The AWS-only modules and the provider-free render module are initialised from the local
mirror and exercised by their own `tests/*.tftest.hcl` (mocked AWS provider): planned
policy documents, trust policies per identity mode, and validations rejecting bad input.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.terraform.tf import (
    Terraform,
    count_run_blocks,
    parse_test_summary,
)

# Modules whose providers exist on this machine (hashicorp/aws or none at all).
TESTABLE_MODULES = (
    "modules/custom-action-type",
    "modules/operator-iam",
    "modules/job-events",
    "modules/operator-release/modules/render",
)


@pytest.fixture(scope="module")
def initialised(terraform: Terraform, tf_tree: Path) -> dict[str, Path]:
    modules = {name: tf_tree / name for name in TESTABLE_MODULES}
    for path in modules.values():
        terraform.init(path)
    return modules


@pytest.mark.parametrize("module", TESTABLE_MODULES)
def test_module_validates(terraform: Terraform, initialised: dict[str, Path], module: str) -> None:
    result = terraform.run(["validate", "-json"], initialised[module])
    assert '"valid": true' in result.stdout, result.stdout


@pytest.mark.parametrize("module", TESTABLE_MODULES)
def test_module_terraform_test_suite_passes(
    terraform: Terraform, initialised: dict[str, Path], module: str
) -> None:
    path = initialised[module]
    declared = count_run_blocks(path)
    assert declared > 0, f"{module} has no terraform test runs"

    result = terraform.run(["test"], path, check=False)

    passed, failed, skipped = parse_test_summary(result.stdout + result.stderr)
    assert (failed, skipped) == (0, 0), result.stdout + result.stderr
    # Every declared run ran: a run silently dropped would otherwise go unnoticed.
    assert passed == declared
    assert result.returncode == 0
