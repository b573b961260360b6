"""Run the real `terraform` binary offline, against the provider mirror on this machine.

Terraform reaches the AWS provider only through a filesystem mirror (no network), named in a
CLI configuration file that this module writes. Every test works on its own copy of
`terraform/`, so parallel runs never share a `.terraform` directory or a state file; the
provider itself is symlinked from the mirror by `terraform init`, which keeps init cheap.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]
TERRAFORM_DIR = REPO_ROOT / "terraform"
AWS_PROVIDER = Path("registry.terraform.io") / "hashicorp" / "aws"

# Where a provider mirror is looked for when CPWORKER_TF_MIRROR is not set and
# /opt/tf-plugins does not hold one; searched at most MIRROR_SEARCH_DEPTH levels deep.
MIRROR_SEARCH_ROOTS = (Path("/opt"), Path("/usr/local/share"), Path("/usr/share"), Path.home())
MIRROR_SEARCH_DEPTH = 3
DEFAULT_MIRROR = Path("/opt/tf-plugins")

# A single terraform command must never hang a test run.
COMMAND_TIMEOUT_SECONDS = 240


class TerraformError(AssertionError):
    """A terraform command failed; the message carries its output."""


def _holds_aws_provider(root: Path) -> bool:
    return (root / AWS_PROVIDER).is_dir()


def find_provider_mirror() -> Path | None:
    """The directory whose child is `registry.terraform.io/hashicorp/aws`, or None."""
    configured = os.environ.get("CPWORKER_TF_MIRROR")
    if configured:
        path = Path(configured)
        if not _holds_aws_provider(path):
            raise TerraformError(
                f"CPWORKER_TF_MIRROR={configured} has no {AWS_PROVIDER} directory in it"
            )
        return path
    if _holds_aws_provider(DEFAULT_MIRROR):
        return DEFAULT_MIRROR
    for root in MIRROR_SEARCH_ROOTS:
        found = _search(root, MIRROR_SEARCH_DEPTH)
        if found is not None:
            return found
    return None


def _search(root: Path, depth: int) -> Path | None:
    if depth < 0 or not root.is_dir():
        return None
    if _holds_aws_provider(root):
        return root
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return None
    for child in children:
        found = _search(child, depth - 1)
        if found is not None:
            return found
    return None


def write_cli_config(path: Path, mirror: Path) -> Path:
    """A CLI config that installs hashicorp/aws from `mirror` and nothing from the network."""
    path.write_text(
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path    = {json.dumps(str(mirror))}\n"
        '    include = ["registry.terraform.io/hashicorp/aws"]\n'
        "  }\n"
        "  direct {\n"
        '    exclude = ["registry.terraform.io/hashicorp/aws"]\n'
        "  }\n"
        "}\n"
    )
    return path


def offline_env(cli_config: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment for terraform: offline, quiet, non-interactive."""
    env = {
        key: value
        for key, value in os.environ.items()
        # A plugin cache or a stray endpoint/credential from the caller must not leak in.
        if not key.startswith(("TF_", "AWS_"))
    }
    env.update(
        {
            "TF_CLI_CONFIG_FILE": str(cli_config),
            "CHECKPOINT_DISABLE": "1",
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
        }
    )
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class Terraform:
    """`terraform` bound to one environment."""

    binary: str
    env: Mapping[str, str]

    def run(
        self, args: Sequence[str], cwd: Path, *, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        completed = subprocess.run(
            [self.binary, *args, "-no-color"] if _takes_no_color(args) else [self.binary, *args],
            cwd=cwd,
            env=dict(self.env),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=False,
        )
        if check and completed.returncode != 0:
            raise TerraformError(
                f"terraform {' '.join(args)} in {cwd} exited {completed.returncode}\n"
                f"--- stdout ---\n{completed.stdout}\n--- stderr ---\n{completed.stderr}"
            )
        return completed

    def init(self, cwd: Path) -> None:
        self.run(["init", "-backend=false", "-input=false"], cwd)

    def outputs(self, cwd: Path) -> dict[str, Any]:
        raw: dict[str, dict[str, Any]] = json.loads(self.run(["output", "-json"], cwd).stdout)
        return {name: entry["value"] for name, entry in raw.items()}

    def with_env(self, extra: Mapping[str, str]) -> Terraform:
        return Terraform(self.binary, {**self.env, **extra})


def _takes_no_color(args: Sequence[str]) -> bool:
    # `fmt` and `output -json` print no colour codes; every other command takes -no-color.
    return bool(args) and args[0] not in {"fmt", "output", "version"}


def copy_tree(destination: Path) -> Path:
    """A clean copy of the repository's terraform/ (no .terraform, lock or state files)."""
    ignore = shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*")
    shutil.copytree(TERRAFORM_DIR, destination / "terraform", ignore=ignore)
    return destination / "terraform"


RUN_BLOCK = re.compile(r'^run\s+"[^"]+"', re.MULTILINE)
TEST_SUMMARY = re.compile(r"(Success|Failure)! (\d+) passed, (\d+) failed(?:, (\d+) skipped)?")


def count_run_blocks(module: Path) -> int:
    """How many `run` blocks the module's .tftest.hcl files declare."""
    return sum(len(RUN_BLOCK.findall(p.read_text())) for p in module.glob("tests/*.tftest.hcl"))


def parse_test_summary(output: str) -> tuple[int, int, int]:
    """(passed, failed, skipped) from `terraform test` output."""
    match = TEST_SUMMARY.search(output)
    if match is None:
        raise TerraformError(f"no summary line in terraform test output:\n{output}")
    return int(match[2]), int(match[3]), int(match[4] or 0)
