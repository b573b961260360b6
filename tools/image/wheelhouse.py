"""The wheelhouse: wheels of the runtime dependencies and of the build backend, made on the host.

Inside an image build the package index is out of reach (and should be: a build from local
files only is repeatable). So `pip wheel` runs here, on the host, for exactly
`[project].dependencies` and `[build-system].requires` of pyproject.toml — never an extra —
and operator/Dockerfile installs from the directory with `--no-index`. cpworker's own wheel is
built inside the image from the build context, which leaves the sandbox out.

The wheels are cached per requirement set, Python version and platform under the user's cache
directory: only a change to those runs pip again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import tomllib
from pathlib import Path

# Committed with a .gitignore only; `make image` fills it (see its .gitignore).
CONTEXT_DIR = Path("tools/image/wheelhouse")


class WheelhouseError(RuntimeError):
    """pip could not make the wheelhouse; the message holds pip's own words."""


def requirements(pyproject: Path) -> list[str]:
    """The runtime dependencies, then the build backend's requirements."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    return [*data["project"]["dependencies"], *data["build-system"]["requires"]]


def host_python() -> str:
    """`3.11`: the Python the wheels are made for (compiled wheels must match the image's)."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _key(wanted: list[str]) -> str:
    identity = [*wanted, sys.implementation.name, host_python(), sysconfig.get_platform()]
    return hashlib.sha256("\0".join(identity).encode()).hexdigest()[:16]


def ensure_wheelhouse(pyproject: Path, cache_dir: Path) -> Path:
    """The cached wheelhouse directory for pyproject's requirements, made when missing."""
    wanted = requirements(pyproject)
    target = cache_dir / f"wheelhouse-{_key(wanted)}"
    if target.is_dir():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as scratch:
        wheels = Path(scratch) / "wheels"
        command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels)]
        made = subprocess.run(  # noqa: S603 - this interpreter's pip, pyproject's requirements
            [*command, *wanted], capture_output=True, text=True, timeout=1800, check=False
        )
        if made.returncode != 0:
            raise WheelhouseError(
                f"pip wheel of the runtime dependencies failed (exit {made.returncode}); "
                f"pip needs the package index on the host:\n{made.stderr.strip()[-3000:]}"
            )
        # Renamed only when complete, so that an interrupted run leaves no half wheelhouse.
        wheels.rename(target)
    return target


def fill_context(wheelhouse: Path, context_dir: Path) -> list[str]:
    """Put the wheels into the build context's wheelhouse directory (hard links where the
    file system allows); stale wheels go. Returns the wheel file names."""
    context_dir.mkdir(parents=True, exist_ok=True)
    for stale in context_dir.glob("*.whl"):
        stale.unlink()
    names = sorted(path.name for path in wheelhouse.glob("*.whl"))
    for name in names:
        try:
            os.link(wheelhouse / name, context_dir / name)
        except OSError:
            shutil.copy2(wheelhouse / name, context_dir / name)
    return names
