"""What the image's Python environment holds, and what cpworker's runtime dependencies add up to.

The closure is computed on the host from the image's own metadata (each distribution's
`Requires-Dist`), with markers evaluated for the image's interpreter: anything installed that
cpworker's `[project].dependencies` do not lead to is something the image should not carry.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# Run in the image: its distributions and the marker environment of its interpreter
# (the keys of packaging.markers.default_environment, from the standard library alone).
INVENTORY = """
import importlib.metadata as metadata, json, os, platform, sys
def full(info):
    kind = info.releaselevel
    return "%d.%d.%d" % info[:3] + ("" if kind == "final" else kind[0] + str(info.serial))
distributions = {}
for dist in metadata.distributions():
    name = dist.metadata["Name"]
    files = [str(path) for path in dist.files or []] if name == "cpworker" else []
    distributions[name] = {"version": dist.version, "requires": dist.requires or [],
                           "files": files}
environment = {
    "implementation_name": sys.implementation.name,
    "implementation_version": full(sys.implementation.version),
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
}
print(json.dumps({"distributions": distributions, "environment": environment}))
"""


@dataclass(frozen=True)
class Inventory:
    distributions: dict[str, dict[str, Any]]  # canonical name -> version, requires, files
    environment: dict[str, str]

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Inventory:
        distributions = {_canonical(name): info for name, info in raw["distributions"].items()}
        return cls(distributions, dict(raw["environment"]))

    def versions(self) -> dict[str, str]:
        return {name: info["version"] for name, info in self.distributions.items()}

    def closure(self, roots: Iterable[str]) -> set[str]:
        """Canonical names of everything `roots` (requirement strings) lead to."""
        found: set[str] = set()
        pending = [(Requirement(root), frozenset[str]()) for root in roots]
        visited: set[tuple[str, frozenset[str]]] = set()
        while pending:
            requirement, extras_asked = pending.pop()
            if not self._applies(requirement, extras_asked):
                continue
            name = _canonical(requirement.name)
            found.add(name)
            key = (name, frozenset(requirement.extras))
            if key in visited or name not in self.distributions:
                continue
            visited.add(key)
            pending += [
                (Requirement(text), frozenset(requirement.extras))
                for text in self.distributions[name]["requires"]
            ]
        return found

    def _applies(self, requirement: Requirement, extras: frozenset[str]) -> bool:
        if requirement.marker is None:
            return True
        return any(
            requirement.marker.evaluate({**self.environment, "extra": extra})
            for extra in {"", *extras}
        )


def pyproject(root: Path) -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    return data


def extra_requirements(root: Path) -> set[str]:
    """Canonical names asked for by the project's extras (dev, sandbox), itself excluded."""
    project = pyproject(root)["project"]
    names = {
        _canonical(Requirement(text).name)
        for texts in project["optional-dependencies"].values()
        for text in texts
    }
    return names - {_canonical(project["name"])}


def _canonical(name: str) -> str:
    return str(canonicalize_name(name))
