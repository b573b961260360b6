"""The SBOM of the image's Python environment: CycloneDX JSON, made by `cyclonedx-py`.

`cyclonedx-py environment PYTHON` learns an environment's search path by running its
interpreter, so it runs inside a container of the image. Its own code (pure Python, from the
dev venv that runs this) is mounted read-only and appended to the tool's `sys.path`; the
environment it inventories is reported by a separate interpreter process, /opt/cpworker's
own, which never sees the tool. The result is validated against the CycloneDX schema here on
the host, where jsonschema is installed, and nothing is added to the image.
"""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path
from typing import Any

from tools.image.podman import PodmanError, run_in_image

SPEC_VERSION = "1.6"
ENVIRONMENT_PYTHON = "/opt/cpworker/bin/python"
TOOL_MOUNT = "/opt/sbom-tool"
PYPROJECT_MOUNT = "/opt/sbom-input/pyproject.toml"
_RUN_TOOL = (
    "import runpy, sys; "
    f"sys.path.append({TOOL_MOUNT!r}); "
    "runpy.run_module('cyclonedx_py', run_name='__main__', alter_sys=True)"
)


class SbomError(RuntimeError):
    """The SBOM could not be made or is not valid CycloneDX."""


def generate(image: str, pyproject: Path, tool_site: Path | None = None) -> dict[str, Any]:
    """The CycloneDX document (parsed) of `image`'s /opt/cpworker environment, its root
    component (`metadata.component`) described by `pyproject`."""
    site = tool_site or Path(sysconfig.get_paths()["purelib"])
    if not (site / "cyclonedx_py").is_dir():
        raise SbomError(
            f"cyclonedx-py is not installed in {site}: pip install -e '.[dev]' (cyclonedx-bom)"
        )
    arguments = ["environment", "--sv", SPEC_VERSION, "--of", "JSON", "--output-reproducible"]
    arguments += ["--pyproject", PYPROJECT_MOUNT]
    try:
        result = run_in_image(
            image,
            "-I",
            "-c",
            _RUN_TOOL,
            *arguments,
            "--no-validate",
            "--output-file=-",
            ENVIRONMENT_PYTHON,
            entrypoint=ENVIRONMENT_PYTHON,
            mounts={site: TOOL_MOUNT, pyproject.resolve(): PYPROJECT_MOUNT},
            check=True,
        )
    except PodmanError as exc:
        raise SbomError(f"cyclonedx-py failed in the image: {exc}") from exc
    # Imported here: jsonschema's import is slow, and a warm `make image` never needs it.
    from cyclonedx.schema import SchemaVersion  # noqa: PLC0415
    from cyclonedx.validation.json import JsonStrictValidator  # noqa: PLC0415

    problem = JsonStrictValidator(SchemaVersion.from_version(SPEC_VERSION)).validate_str(
        result.stdout
    )
    if problem is not None:
        raise SbomError(f"cyclonedx-py wrote an invalid CycloneDX {SPEC_VERSION} SBOM: {problem}")
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def components(document: dict[str, Any]) -> dict[str, str]:
    """Component name -> version, as the SBOM lists them."""
    return {
        component["name"]: component.get("version", "")
        for component in document.get("components", [])
    }
