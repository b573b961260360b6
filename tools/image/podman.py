"""How this repository calls podman: its settings file, and running a command in an image.

Every call goes through `podman()`, which passes `containers.conf` (runc, explicit ulimits)
as CONTAINERS_CONF unless the caller already chose one. `run_in_image` runs a container the
way the Helm chart runs the operator: uid 65532, read-only root filesystem with a `/tmp`
tmpfs, no capabilities, no privilege escalation.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CONTAINERS_CONF = Path(__file__).with_name("containers.conf")
# The chart's securityContext (helm/cpworker/values.yaml) and its /tmp emptyDir.
CHART_USER = "65532:65532"
CHART_TMPFS = "/tmp:rw,size=64m,mode=1777"  # noqa: S108 - a tmpfs inside the container


class PodmanError(RuntimeError):
    """A podman command failed; the message holds the command and what it printed."""


def environment() -> dict[str, str]:
    return {"CONTAINERS_CONF": str(CONTAINERS_CONF), **os.environ}


def unavailable_reason() -> str | None:
    """Why podman cannot be used here (None when it can): for a visible test skip."""
    if shutil.which("podman") is None:
        return (
            "podman is not installed: as root, apt-get install the packages listed in "
            ".ci/debian-packages.txt (podman, buildah, runc, mmdebstrap)"
        )
    if os.geteuid() != 0:
        return "the image tests run podman as root (rootless podman needs subuid/subgid set up)"
    return None


def podman(
    *args: str,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run `podman ARGS`, output captured; raise PodmanError on failure when `check`.

    `env` is added to podman's own environment: `--env=NAME` options take their values from
    there, so that no value appears on a command line (`ps`) or in an error message.
    """
    command = ["podman", *args]
    result = subprocess.run(  # noqa: S603 - fixed binary, arguments built by this module
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**environment(), **(env or {})},
        check=False,
    )
    if check and result.returncode != 0:
        shown = " ".join(arg for arg in args if not arg.startswith("--"))[:300]
        raise PodmanError(
            f"podman {shown} failed with exit code {result.returncode}:\n"
            f"{result.stderr.strip()[-4000:]}"
        )
    return result


def image_exists(ref: str) -> bool:
    return podman("image", "exists", ref, check=False).returncode == 0


def inspect_image(ref: str) -> dict[str, Any]:
    """`podman image inspect` of one image (Id, Size, Labels, ...)."""
    found: list[dict[str, Any]] = json.loads(podman("image", "inspect", ref).stdout)
    return found[0]


def container_options(
    *,
    env: Mapping[str, str] | None = None,
    mounts: Mapping[Path, str] | None = None,
    volumes: Mapping[Path, str] | None = None,
    network: str = "none",
    user: str | None = CHART_USER,
    entrypoint: str | None = None,
    tmp: bool = True,
) -> list[str]:
    """`podman run` options for the chart's hardening, plus env, read-only `mounts`, writable
    `volumes` (host path -> container path, as an emptyDir), network. `user=None` leaves the
    image's own USER in effect; `tmp=False` leaves out the /tmp tmpfs (a job pod's artifact
    containers have none)."""
    options = [
        "--read-only",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        f"--network={network}",
    ]
    if tmp:
        options.append(f"--tmpfs={CHART_TMPFS}")
    for source, target in (volumes or {}).items():
        options.append(f"--volume={source}:{target}:rw")
    if user is not None:
        options.append(f"--user={user}")
    if entrypoint is not None:
        options.append(f"--entrypoint={entrypoint}")
    for source, target in (mounts or {}).items():
        options.append(f"--volume={source}:{target}:ro")
    # Names only: each value travels in podman's environment, never on a command line (`ps`).
    options += [f"--env={key}" for key in env or {}]
    return options


def run_in_image(
    image: str,
    *command: str,
    env: Mapping[str, str] | None = None,
    mounts: Mapping[Path, str] | None = None,
    volumes: Mapping[Path, str] | None = None,
    network: str = "none",
    user: str | None = CHART_USER,
    entrypoint: str | None = None,
    timeout: float = 120,
    check: bool = False,
    tmp: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run `command` (the image's entrypoint arguments) in a fresh container, hardened as
    the chart runs it; `mounts` are host path -> container path, read-only; `volumes` the
    same, writable."""
    options = container_options(
        env=env,
        mounts=mounts,
        volumes=volumes,
        network=network,
        user=user,
        entrypoint=entrypoint,
        tmp=tmp,
    )
    return podman("run", "--rm", *options, image, *command, env=env, check=check, timeout=timeout)


def start_detached(
    image: str,
    name: str,
    *command: str,
    env: Mapping[str, str] | None = None,
    mounts: Mapping[Path, str] | None = None,
    network: str = "none",
    volumes: Mapping[Path, str] | None = None,
    tmp: bool = True,
) -> str:
    """Start a hardened container in the background; returns its id."""
    options = container_options(env=env, mounts=mounts, volumes=volumes, network=network, tmp=tmp)
    started = podman("run", "--detach", f"--name={name}", *options, image, *command, env=env)
    return started.stdout.strip()
