"""One sandbox for every doc block: `cpworker sandbox up --dir .sandbox --operator`, as the
README starts it, in a scratch copy of the repository's user-facing files."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.terraform.sandbox import sandbox_up
from tests.usershell import REPO_ROOT, VENV_BIN, user_environment

# The README's command (a test checks the README still says it).
SANDBOX_DIR = ".sandbox"
SANDBOX_ARGS = ("--operator", "--events-queue", "cpworker-events")
# What the docs' commands read or write, copied so that nothing lands in the repository.
COPIED = ("examples", "crds", "helm", "terraform", "docs")
# The order a reader takes: the README, the quickstart, then the rest (which may build on
# what the quickstart set up, as a reader's sandbox would have it).
_FIRST = [REPO_ROOT / "README.md", REPO_ROOT / "docs" / "quickstart.md"]
DOC_FILES = [
    *_FIRST,
    *sorted(
        p
        for p in [*(REPO_ROOT / "docs").rglob("*.md"), *(REPO_ROOT / "examples").rglob("*.md")]
        if p not in _FIRST
    ),
]


@dataclass(frozen=True)
class Workspace:
    """Where the docs' commands run: a repository-like directory with the sandbox in it."""

    root: Path
    env: dict[str, str]

    @property
    def env_file(self) -> Path:
        return self.root / SANDBOX_DIR / "env"


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("docs-workspace")
    ignore = shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*")
    for name in COPIED:
        shutil.copytree(REPO_ROOT / name, root / name, ignore=ignore)
    # `.venv/bin/cpworker ...` as the docs write it, from the repository's own venv.
    (root / ".venv").symlink_to(VENV_BIN.parent)
    with sandbox_up(root / SANDBOX_DIR, SANDBOX_ARGS) as env:
        yield Workspace(root=root, env=user_environment(env, root / "home"))
