"""The image holds cpworker and its runtime dependency closure: no test or sandbox package."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import pytest
from packaging.requirements import Requirement

from tests.image.conftest import BUILD_TIMEOUT
from tests.image.distributions import INVENTORY, Inventory, extra_requirements, pyproject
from tools.image.build import IGNORE_FILE, REPO_ROOT
from tools.image.context import context_files, read_ignore_file

pytestmark = pytest.mark.timeout(BUILD_TIMEOUT)


@pytest.fixture(scope="module")
def inventory(image_python: Any) -> Inventory:
    return Inventory.parse(image_python(INVENTORY))


def _canonical(requirements: list[str]) -> set[str]:
    return {str(Requirement(text)) for text in requirements}


def test_installed_cpworker_is_this_checkout(inventory: Inventory) -> None:
    project = pyproject(REPO_ROOT)["project"]
    cpworker = inventory.distributions["cpworker"]
    assert cpworker["version"] == project["version"]
    runtime = [text for text in cpworker["requires"] if "extra ==" not in text]
    assert _canonical(runtime) == _canonical(project["dependencies"])


def test_installed_is_exactly_the_runtime_closure(inventory: Inventory) -> None:
    closure = inventory.closure(pyproject(REPO_ROOT)["project"]["dependencies"])
    installed = set(inventory.distributions) - {"cpworker"}
    assert installed - closure == set(), "installed although no runtime dependency needs it"
    assert closure - installed == set(), "needed at run time but not installed"


def test_no_test_sandbox_or_build_tools(inventory: Inventory) -> None:
    closure = inventory.closure(pyproject(REPO_ROOT)["project"]["dependencies"])
    forbidden = extra_requirements(REPO_ROOT) - closure
    assert {"moto", "pytest", "hypothesis", "pytest-asyncio", "mypy"} <= forbidden
    assert set(inventory.distributions) & forbidden == set()
    # The builder's tools were removed from the venv (and never reached the image otherwise).
    assert set(inventory.distributions) & {"pip", "setuptools", "wheel"} == set()


def test_cpworker_modules_are_the_build_context_without_the_sandbox(
    inventory: Inventory,
) -> None:
    files = inventory.distributions["cpworker"]["files"]
    installed = {
        name for name in files if name.startswith("cpworker/") and "__pycache__" not in name
    }
    context = context_files(REPO_ROOT, read_ignore_file(REPO_ROOT / IGNORE_FILE))
    expected = {
        PurePosixPath(path).relative_to("operator").as_posix()
        for path in context
        if path.startswith("operator/cpworker/")
    }
    assert installed == expected
    assert not any(name.startswith("cpworker/sandbox/") for name in installed)
