"""Fixtures for the Terraform tests: the binary, the offline provider set-up, a private copy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.integration.terraform.tf import (
    Terraform,
    copy_tree,
    find_provider_mirror,
    offline_env,
    write_cli_config,
)


@pytest.fixture(scope="session")
def terraform_binary() -> str:
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip("terraform is not on the PATH: the Terraform tests need the real binary")
    return binary


@pytest.fixture(scope="session")
def provider_mirror() -> Path:
    mirror = find_provider_mirror()
    if mirror is None:
        pytest.fail(
            "no Terraform provider mirror holding registry.terraform.io/hashicorp/aws was found; "
            "set CPWORKER_TF_MIRROR to its directory"
        )
    return mirror


@pytest.fixture(scope="session")
def terraform(
    terraform_binary: str, provider_mirror: Path, tmp_path_factory: pytest.TempPathFactory
) -> Terraform:
    config_dir = tmp_path_factory.mktemp("tf-cli")
    cli_config = write_cli_config(config_dir / "cli.tfrc", provider_mirror)
    return Terraform(terraform_binary, offline_env(cli_config))


@pytest.fixture(scope="session")
def tf_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One private copy of terraform/ per session, for the read-only checks."""
    return copy_tree(tmp_path_factory.mktemp("tf-tree"))
