"""Fixtures for the artifact helper against moto's S3 server (real HTTP, real boto3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.artifacts.pod import Pod


@pytest.fixture
def pod(tmp_path: Path, moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Pod:
    """A job pod against moto; the helper run in this process sees the pod's environment."""
    created = Pod(tmp_path / "pod", moto_server)
    for name, value in created.env().items():
        monkeypatch.setenv(name, value)
    return created
