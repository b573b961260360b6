"""Fixtures for the examples' tests: the examples as files, and a user's shell on a sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.helm.chart import load_chart
from tests.integration.terraform.sandbox import sandbox_up
from tests.usershell import REPO_ROOT, Shell, user_environment

EXAMPLES = REPO_ROOT / "examples"
HELM_VALUES = EXAMPLES / "helm" / "values-namespaced.yaml"
WORKERS = sorted((EXAMPLES / "workers").glob("*.yaml"))
ACTION_TYPES = sorted((EXAMPLES / "codepipeline").glob("action-type-*.json"))
PIPELINE = EXAMPLES / "codepipeline" / "pipeline.json"
NAMESPACE = "ci"


def load_worker(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def load_json(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def relative(path: Path) -> str:
    """The path as a user types it from the repository root."""
    return path.relative_to(REPO_ROOT).as_posix()


@pytest.fixture(scope="module")
def operator_shell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shell]:
    """A shell on `cpworker sandbox up --operator` (every namespace served, woken by the
    events queue so that a pipeline's stages follow each other at once), one per module."""
    directory = tmp_path_factory.mktemp("sandbox")
    with sandbox_up(directory, ["--operator", "--events-queue", "cpworker-events"]) as env:
        yield Shell(user_environment(env, directory / "home"))


def merge_values(*layers: dict[str, Any]) -> dict[str, Any]:
    """Values files layered as `helm install -f a -f b` does: maps merged, the rest replaced."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = merge_values(merged[key], value)
            else:
                merged[key] = value
    return merged


@pytest.fixture(scope="session")
def chart() -> Iterator[Any]:
    with load_chart() as loaded:
        yield loaded
