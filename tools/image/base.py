"""The Debian base image, made with mmdebstrap where no image registry is reachable.

`mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm` gives a
Debian root filesystem with the distribution's Python 3.11 at /usr/bin/python3; `podman import`
turns it into an image. It is tagged by a hash of this recipe (and of the apt sources it uses),
so it is made once per machine and recipe. The archive moves on (security updates) while the
recipe stays the same: `build.py --refresh-base` makes it again.

Two additions over the plain command, both to keep the image small: the `merged-usr` hook
that ships with mmdebstrap sets up the merged /usr without the `usrmerge` package and the
Perl it pulls in (see mmdebstrap(1), "MERGED-/USR"), and dpkg path filters leave out
documentation, manual pages and translations as Debian's own slim images do (debuerreotype's
`.slimify-excludes`), keeping the copyright files.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from tools.image.podman import PodmanError, image_exists, podman

SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
REPOSITORY = "localhost/cpworker-base"
MERGED_USR_HOOK = Path("/usr/share/mmdebstrap/hooks/merged-usr")
SLIM_PATHS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
)
# What an image from a registry would declare; an imported tarball declares nothing, and an
# empty PATH would turn the Dockerfile's `PATH=/opt/cpworker/bin:$PATH` into a path ending
# in the current directory.
IMAGE_CHANGES = (
    "ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV=LANG=C.UTF-8",
)


class BaseImageError(RuntimeError):
    """The base image cannot be made; the message says what to install or change."""


def apt_sources(suite: str = SUITE, directory: Path = Path("/etc/apt")) -> list[Path]:
    """The host's apt source files for `suite`: mmdebstrap uses the archive apt is set up
    for (a mirror or proxy of the machine's choosing) and pastes them into the image."""
    candidates = [directory / "sources.list", *sorted(directory.glob("sources.list.d/*"))]
    return [
        path
        for path in candidates
        if path.suffix in {".list", ".sources"}
        and path.is_file()
        and suite in path.read_text(encoding="utf-8", errors="replace")
    ]


def recipe() -> list[str]:
    """The mmdebstrap arguments (without the target and the mirrors)."""
    arguments = ["--variant=minbase", f"--include={','.join(PACKAGES)}"]
    if MERGED_USR_HOOK.is_dir():
        arguments.append(f"--hook-dir={MERGED_USR_HOOK}")
    arguments += [f"--dpkgopt={option}" for option in SLIM_PATHS]
    return arguments


def base_ref(sources: list[Path]) -> str:
    """`localhost/cpworker-base:bookworm-<hash>`: the hash of the recipe and the sources."""
    digest = hashlib.sha256("\0".join([SUITE, *recipe(), *IMAGE_CHANGES]).encode())
    for path in sources:
        digest.update(path.read_bytes())
    return f"{REPOSITORY}:{SUITE}-{digest.hexdigest()[:16]}"


def ensure_base(work_dir: Path, *, refresh: bool = False) -> str:
    """The base image's reference, made first when it is missing (or `refresh`)."""
    sources = apt_sources()
    ref = base_ref(sources)
    if image_exists(ref) and not refresh:
        return ref
    if shutil.which("mmdebstrap") is None:
        raise BaseImageError(
            "mmdebstrap is not installed: apt-get install mmdebstrap (it is listed in "
            ".ci/debian-packages.txt), or build on a public base where a registry is "
            "reachable: make image IMAGE_BASE=docker.io/library/python:3.11-slim-bookworm"
        )
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir) as scratch:
        tarball = Path(scratch) / "rootfs.tar"
        command = ["mmdebstrap", *recipe(), SUITE, str(tarball), *map(str, sources)]
        made = subprocess.run(  # noqa: S603 - fixed binary, arguments from this module
            command, capture_output=True, text=True, timeout=1800, check=False
        )
        if made.returncode != 0:
            raise BaseImageError(
                f"mmdebstrap failed (exit {made.returncode}); it needs root and apt's Debian "
                f"sources ({', '.join(map(str, sources)) or 'none found: its default mirror'})"
                f":\n{made.stderr.strip()[-3000:]}"
            )
        changes = [f"--change={change}" for change in IMAGE_CHANGES]
        try:
            podman("import", *changes, str(tarball), ref)
        except PodmanError as exc:
            raise BaseImageError(f"podman import of the base failed: {exc}") from exc
    return ref
