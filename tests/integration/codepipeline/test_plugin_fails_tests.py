"""The `codepipeline` fixture fails the test whose request drew a non-conformant answer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

INNER_TEST = """
from typing import Any


def test_breaks_a_response(codepipeline: Any, cp_client: Any) -> None:
    codepipeline.tamper("ListPipelines", lambda answer: answer.update(pipelines=[{"name": "x y"}]))
    cp_client.list_pipelines()  # the test body itself passes


def test_conformant(cp_client: Any) -> None:
    cp_client.list_pipelines()
"""


def test_fixture_fails_the_test_that_caused_a_violation(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        'pytest_plugins = ["cpworker.sandbox.codepipeline.pytest_plugin"]\n'
    )
    (tmp_path / "test_inner.py").write_text(INNER_TEST)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(tmp_path),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "2 passed, 1 error" in output  # the body passed; its teardown failed
    assert "ERROR at teardown of test_breaks_a_response" in output
    assert "does not match the pattern" in output
