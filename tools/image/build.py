"""`make image`: the operator image, built with podman from operator/Dockerfile, offline.

    python -m tools.image.build [--base debian|IMAGE] [--refresh-base] [--no-sbom]

1. The base (`PYTHON_IMAGE`): `debian`, the default, is made here with mmdebstrap (base.py);
   any other value is an image reference, pulled when missing
   (e.g. docker.io/library/python:3.11-slim-bookworm).
2. The wheelhouse of the runtime dependencies (wheelhouse.py), put into the build context.
3. `podman build` without network, tagged `localhost/cpworker:<version>-<hash>`, the hash
   taken over every input (Dockerfile, ignore file, the files of the build context, wheels
   included, the base image's id): when that tag exists, nothing is built.
4. The SBOM of the image's Python environment (sbom.py) and a record of the build, in
   build/image/.

Prints the image reference, its size and how long each step took. docs/image.md has more.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import sys
import time
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path

from tools.image import base as base_image
from tools.image import sbom, wheelhouse
from tools.image.context import context_files, read_ignore_file, tree_digest
from tools.image.podman import PodmanError, image_exists, inspect_image, podman, run_in_image

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = Path("operator/Dockerfile")
IGNORE_FILE = Path("operator/Dockerfile.dockerignore")
REPOSITORY = "localhost/cpworker"
OUTPUT_DIR = Path("build/image")
INPUTS_LABEL = "io.cpworker.image.inputs"
# Bumped when this script changes what it builds in a way the inputs do not show.
RECIPE_VERSION = "1"
KEEP_IMAGES = 5  # so that builds in other worktrees seldom remove an image a test still uses


class ImageBuildError(RuntimeError):
    """The image could not be built; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class BuiltImage:
    ref: str
    image_id: str
    base: str
    size_bytes: int
    built: bool  # False: the tag for these inputs existed already
    sbom_path: Path | None
    seconds: dict[str, float]

    def as_json(self) -> dict[str, object]:
        record = dataclasses.asdict(self)
        record["sbom_path"] = str(self.sbom_path) if self.sbom_path else None
        return record


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "cpworker-image"


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """One build at a time on this machine (tests and `make image` may overlap)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def project_version(root: Path) -> str:
    data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    return str(data["project"]["version"])


def inputs_digest(root: Path, base_id: str) -> str:
    """The hash of everything the build reads: the image's tag is derived from it."""
    digest = hashlib.sha256(f"{RECIPE_VERSION}\0{base_id}\0".encode())
    for path in (DOCKERFILE, IGNORE_FILE):
        digest.update((root / path).read_bytes())
    files = context_files(root, read_ignore_file(root / IGNORE_FILE))
    digest.update(tree_digest(root, files).encode())
    return digest.hexdigest()


def _resolve_base(choice: str, work_dir: Path, *, refresh: bool) -> str:
    if choice == "debian":
        try:
            return base_image.ensure_base(work_dir, refresh=refresh)
        except base_image.BaseImageError as exc:
            raise ImageBuildError(str(exc)) from exc
    if not image_exists(choice):
        try:
            podman("pull", choice, timeout=1200)
        except PodmanError as exc:
            raise ImageBuildError(
                f"the base {choice} is neither local nor pullable ({exc}); without a registry "
                "use the mmdebstrap base: make image IMAGE_BASE=debian"
            ) from exc
    return choice


def _check_python(base: str) -> None:
    """Compiled wheels from the host must fit the image's interpreter."""
    probe = run_in_image(
        base,
        "-c",
        "import sys; print('%d.%d' % sys.version_info[:2])",
        entrypoint="python3",
        check=True,
    )
    inside = probe.stdout.strip()
    if inside != wheelhouse.host_python():
        raise ImageBuildError(
            f"the base {base} has Python {inside} but the wheelhouse is made by Python "
            f"{wheelhouse.host_python()} ({sys.executable}); make the venv with the base's "
            f"version: make clean venv PYTHON=python{inside}"
        )


def _podman_build(root: Path, base: str, ref: str, inputs: str, log_path: Path) -> None:
    arguments = [
        "build",
        f"--file={root / DOCKERFILE}",
        f"--ignorefile={root / IGNORE_FILE}",
        f"--build-arg=PYTHON_IMAGE={base}",
        "--pull=never",
        # Hermetic: nothing in the build can reach a network, the wheelhouse is all it has.
        "--network=none",
        "--layers",
        f"--label={INPUTS_LABEL}={inputs}",
        f"--label=org.opencontainers.image.version={project_version(root)}",
        f"--tag={ref}",
        str(root),
    ]
    result = podman(*arguments, check=False, timeout=1800)
    log_path.write_text(result.stdout + result.stderr, encoding="utf-8")
    if result.returncode != 0:
        raise ImageBuildError(
            f"podman build failed (exit {result.returncode}); full log: {log_path}\n"
            f"{(result.stdout + result.stderr).strip()[-3000:]}"
        )


def _prune(keep: int = KEEP_IMAGES) -> None:
    """Remove all but the newest `keep` images this script tagged (in-use ones stay). The
    untagged builder layers stay too: they are the cache that makes a rebuild quick."""
    filters = [f"--filter=label={INPUTS_LABEL}", "--filter=dangling=false"]
    listed = podman("images", *filters, "--format=json").stdout
    images = sorted(json.loads(listed or "[]"), key=lambda i: i.get("Created", 0), reverse=True)
    for old in images[keep:]:
        for name in old.get("Names") or []:
            if name.startswith(f"{REPOSITORY}:"):
                podman("rmi", name, check=False)


def build(
    base: str = "debian",
    *,
    refresh_base: bool = False,
    with_sbom: bool = True,
    root: Path = REPO_ROOT,
) -> BuiltImage:
    """Build the image (or find it built) and write its SBOM and record to build/image/."""
    seconds: dict[str, float] = {}
    output = root / OUTPUT_DIR
    output.mkdir(parents=True, exist_ok=True)
    with _exclusive(cache_dir() / "build.lock"):
        started = time.monotonic()
        base_ref = _resolve_base(base, cache_dir(), refresh=refresh_base)
        seconds["base"] = time.monotonic() - started

        started = time.monotonic()
        try:
            wheels = wheelhouse.ensure_wheelhouse(root / "pyproject.toml", cache_dir())
        except wheelhouse.WheelhouseError as exc:
            raise ImageBuildError(str(exc)) from exc
        wheelhouse.fill_context(wheels, root / wheelhouse.CONTEXT_DIR)
        seconds["wheelhouse"] = time.monotonic() - started

        started = time.monotonic()
        inputs = inputs_digest(root, inspect_image(base_ref)["Id"])
        ref = f"{REPOSITORY}:{project_version(root)}-{inputs[:16]}"
        built = not image_exists(ref)
        if built:
            _check_python(base_ref)
            _podman_build(root, base_ref, ref, inputs, output / "build.log")
            _prune()
        seconds["build"] = time.monotonic() - started
        image = inspect_image(ref)

        started = time.monotonic()
        sbom_path = _write_sbom(ref, image["Id"], root, output) if with_sbom else None
        seconds["sbom"] = time.monotonic() - started

    result = BuiltImage(ref, image["Id"], base_ref, int(image["Size"]), built, sbom_path, seconds)
    (output / "ref").write_text(f"{ref}\n", encoding="utf-8")
    (output / "image.json").write_text(json.dumps(result.as_json(), indent=2) + "\n")
    return result


def _write_sbom(ref: str, image_id: str, root: Path, output: Path) -> Path:
    """build/image/sbom.cdx.json, made again only for another image."""
    path = output / "sbom.cdx.json"
    stamp = output / "sbom.image-id"
    if path.exists() and stamp.exists() and stamp.read_text().strip() == image_id:
        return path
    try:
        document = sbom.generate(ref, root / "pyproject.toml")
    except sbom.SbomError as exc:
        raise ImageBuildError(str(exc)) from exc
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    stamp.write_text(f"{image_id}\n", encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/image/build.py", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--base", default="debian", help="debian (mmdebstrap) or an image ref")
    parser.add_argument("--refresh-base", action="store_true", help="make the base again")
    parser.add_argument("--no-sbom", action="store_true", help="skip the SBOM")
    args = parser.parse_args(argv)
    try:
        image = build(args.base, refresh_base=args.refresh_base, with_sbom=not args.no_sbom)
    except (ImageBuildError, PodmanError) as exc:
        print(f"make image: {exc}", file=sys.stderr)  # noqa: T201 - the tool's error output
        return 1
    timings = ", ".join(f"{step} {value:.1f}s" for step, value in image.seconds.items())
    state = "built" if image.built else "up to date"
    print(f"{image.ref} ({state}; {image.size_bytes / 1e6:.0f} MB; {timings})")  # noqa: T201
    if image.sbom_path:
        print(f"SBOM: {image.sbom_path.relative_to(REPO_ROOT)}")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
