"""Every ```console block in README.md, docs/ and examples/ runs against the sandbox, or is
marked as needing what the sandbox cannot give (tests/docs/consoleblocks.py says how).

The blocks of one file run in order in one shell session (exported variables and the working
directory carry over from block to block, as in a reader's terminal), each block with the
sandbox's env file sourced, all files against one `cpworker sandbox up --operator`. Files run
in the order of DOC_FILES; each must work on its own against a fresh sandbox as well.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.docs import consoleblocks
from tests.docs.conftest import DOC_FILES, SANDBOX_ARGS, SANDBOX_DIR, Workspace
from tests.usershell import REPO_ROOT

# A block may wait for a pipeline; none may hang the suite.
BLOCK_TIMEOUT_SECONDS = 300


def _display(path: Path) -> Path:
    return path.relative_to(REPO_ROOT)


def _blocks(path: Path) -> list[consoleblocks.Block]:
    return list(consoleblocks.blocks(path, _display(path)))


def _has_runnable_blocks(path: Path) -> bool:
    try:
        return any(block.runnable for block in _blocks(path))
    except consoleblocks.BlockError:
        return True  # so that the run test fails on it too, with the checker's message


RUNNABLE = [p for p in DOC_FILES if _has_runnable_blocks(p)]


@dataclass(frozen=True)
class Outcome:
    command: consoleblocks.Command
    exit_status: int
    output: str


def _script(block: consoleblocks.Block, workspace: Workspace, scratch: Path) -> str:
    """Bash that runs the block's commands one by one, each output to its own file, and stops
    at the first unexpected exit status; then saves the session's exports and directory."""
    state, cwd = scratch / "state", scratch / "cwd"
    lines = [
        f"cd {workspace.root}",
        f"source {workspace.env_file}",
        f"[ -f {state} ] && source {state} 2>/dev/null",
        f'[ -f {cwd} ] && cd "$(cat {cwd})"',
        "exec </dev/null",
    ]
    for index, command in enumerate(block.commands):
        out, status = scratch / f"out.{index}", scratch / f"status.{index}"
        lines += [
            "{ " + command.text,
            f"}} >{out} 2>&1; echo $? >{status}",
            f'[ "$(cat {status})" = {command.exit_status} ] || exit 0',
        ]
    lines += [f"export -p >{state}", f"pwd >{cwd}"]
    return "\n".join(lines) + "\n"


def run_block(block: consoleblocks.Block, workspace: Workspace, scratch: Path) -> list[Outcome]:
    """The outcome of each command that ran (the last one is the first that failed)."""
    for stale in scratch.glob("out.*"):
        stale.unlink()
    for stale in scratch.glob("status.*"):
        stale.unlink()
    subprocess.run(
        ["bash", "-c", _script(block, workspace, scratch)],
        cwd=workspace.root,
        env=workspace.env,
        timeout=BLOCK_TIMEOUT_SECONDS,
        check=True,
        capture_output=True,
    )
    outcomes = []
    for index, command in enumerate(block.commands):
        status = scratch / f"status.{index}"
        if not status.exists():
            break
        output = (scratch / f"out.{index}").read_text(errors="replace")
        outcomes.append(Outcome(command, int(status.read_text()), output))
    return outcomes


def _problem(block: consoleblocks.Block, outcome: Outcome) -> str | None:
    command = outcome.command
    shown = f"{block.where}: `$ {command.text}`"
    if outcome.exit_status != command.exit_status:
        return (
            f"{shown} exited {outcome.exit_status} (the doc expects {command.exit_status}); "
            f"fix the doc or the code, or mark the block <!-- needs: ... -->:\n{outcome.output}"
        )
    missing = consoleblocks.first_mismatch(command.expected, outcome.output)
    if missing is not None:
        return (
            f"{shown}: its output does not show the doc's line\n  {missing}\n"
            f"actual output:\n{outcome.output}"
        )
    return None


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(_display(p)))
def test_every_console_block_runs_or_is_marked(path: Path) -> None:
    """Well-formed (prompts, known markers): a block that cannot parse fails here."""
    for block in _blocks(path):
        assert block.commands
        assert set(block.needs) <= set(consoleblocks.NEEDS)


@pytest.mark.parametrize("path", RUNNABLE, ids=lambda p: str(_display(p)))
def test_the_unmarked_console_blocks_work_in_the_sandbox(
    path: Path, workspace: Workspace, tmp_path: Path
) -> None:
    for block in _blocks(path):
        if not block.runnable:
            continue
        outcomes = run_block(block, workspace, tmp_path)
        assert outcomes, f"{block.where}: nothing ran"
        for outcome in outcomes:
            problem = _problem(block, outcome)
            assert problem is None, problem
        assert len(outcomes) == len(block.commands)


def test_the_readme_starts_the_sandbox_the_checker_runs_on() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert f"cpworker sandbox up --dir {SANDBOX_DIR} {' '.join(SANDBOX_ARGS)}" in readme
