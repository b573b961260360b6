"""A user's shell against a running sandbox: what `source DIR/env` gives someone at a terminal.

The sandbox's env file is sourced into a clean environment (none of the test process's own
`AWS_*` or `CPWORKER_*` variables leak in), the venv's tools (`aws`, `cpworker`) come first on
`PATH`, and `HOME` is a scratch directory so that kubectl's cache and the AWS CLI's files stay
out of the real one. Commands run through `bash -c` from the repository root, exactly as the
examples and docs write them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
# Most a single documented command may take: waits are written with their own timeouts.
COMMAND_TIMEOUT_SECONDS = 180


class CommandFailedError(AssertionError):
    """A shell command exited non-zero; the message has its output."""


def user_environment(sandbox_env: dict[str, str], home: Path) -> dict[str, str]:
    """The process environment of a shell that sourced the sandbox's env file."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "CPWORKER_", "KUBECONFIG", "TF_"))
    }
    home.mkdir(parents=True, exist_ok=True)
    return {
        **inherited,
        **sandbox_env,
        "HOME": str(home),
        "PATH": f"{VENV_BIN}{os.pathsep}{inherited.get('PATH', '/usr/bin:/bin')}",
    }


@dataclass(frozen=True)
class Shell:
    """`shell("kubectl get caw -A")`: bash in `cwd` with `env`; raises CommandFailedError."""

    env: dict[str, str]
    cwd: Path = REPO_ROOT

    def run(
        self, command: str, *, check: bool = True, timeout: float = COMMAND_TIMEOUT_SECONDS
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise CommandFailedError(
                f"`{command}` exited {result.returncode}\n"
                f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
            )
        return result

    def __call__(self, command: str, *, timeout: float = COMMAND_TIMEOUT_SECONDS) -> str:
        """The command's stdout (it must succeed)."""
        return self.run(command, timeout=timeout).stdout
