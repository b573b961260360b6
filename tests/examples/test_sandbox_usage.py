"""The "try it" block `cpworker sandbox up --operator` prints works as printed.

Every indented line of the block is run, in order, in one user's shell from the repository
root: it sources the env file, creates the namespace and the action type, applies
examples/workers/build.yaml, watches it become Ready and reads the operator's metrics.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.integration.terraform.sandbox import sandbox_up
from tests.usershell import Shell, user_environment

# `kubectl get -w` never ends by itself: it is given this long to show the Ready worker.
WATCH_SECONDS = 6
TIMEOUT_EXIT = 124


def _try_it_lines(printed: list[str]) -> list[str]:
    start = next(i for i, line in enumerate(printed) if line.startswith("try it"))
    block = []
    for line in printed[start + 1 :]:
        if not line.startswith("  "):
            break
        block.append(line.strip())
    return block


def test_the_try_it_block_works_as_printed(tmp_path: Path) -> None:
    printed: list[str] = []
    with sandbox_up(tmp_path / "sandbox", ["--operator"], printed) as env:
        shell = Shell(user_environment(env, tmp_path / "home"))
        lines = _try_it_lines(printed)
        assert lines[0] == f"source {tmp_path / 'sandbox' / 'env'}"
        assert (
            "kubectl apply -n ci -f examples/workers/build.yaml  # any namespace is served" in lines
        )
        # Each line in a shell that sourced the env file (the first line); each must succeed.
        outputs: dict[str, str] = {}
        for line in lines[1:]:
            if line.endswith(" -w"):
                watched = shell.run(f"{lines[0]}; timeout {WATCH_SECONDS} {line}", check=False)
                assert watched.returncode == TIMEOUT_EXIT, watched.stderr
                outputs[line] = watched.stdout
            else:
                outputs[line] = shell(f"{lines[0]}; {line}")
    watch = next(text for line, text in outputs.items() if line.endswith(" -w"))
    assert re.search(r"^build\s+True\s+Polling\s", watch, re.MULTILINE), watch
    metrics = next(text for line, text in outputs.items() if "METRICS_URL" in line)
    assert 'cpworker_worker_ready{namespace="ci",worker="build"} 1.0' in metrics
    types = next(text for line, text in outputs.items() if "list-action-types" in line)
    assert "AcmeBuild" not in types  # listed before it was created: the block creates it
