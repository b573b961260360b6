"""`make image` writes a CycloneDX SBOM of the image's Python environment, and it lists what
the image holds: cpworker as the root component, then exactly its runtime dependencies."""

from __future__ import annotations

import json
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.image.conftest import BUILD_TIMEOUT
from tests.image.distributions import INVENTORY, Inventory, pyproject
from tools.image.build import REPO_ROOT, BuiltImage
from tools.image.sbom import SPEC_VERSION, components

pytestmark = pytest.mark.timeout(BUILD_TIMEOUT)


@pytest.fixture(scope="module")
def document(image: BuiltImage) -> dict[str, Any]:
    assert image.sbom_path is not None
    loaded: dict[str, Any] = json.loads(image.sbom_path.read_text(encoding="utf-8"))
    return loaded


def test_sbom_is_cyclonedx_with_cpworker_at_its_root(document: dict[str, Any]) -> None:
    assert document["bomFormat"] == "CycloneDX"
    assert document["specVersion"] == SPEC_VERSION
    root = document["metadata"]["component"]
    project = pyproject(REPO_ROOT)["project"]
    assert (root["name"], root["type"]) == ("cpworker", "application")
    assert root["version"] == project["version"]


def test_sbom_lists_what_the_image_holds(document: dict[str, Any], image_python: Any) -> None:
    inventory = Inventory.parse(image_python(INVENTORY))
    listed = {canonicalize_name(name): version for name, version in components(document).items()}
    installed = inventory.versions()
    installed.pop("cpworker")
    assert listed == installed
    for component in document["components"]:
        name = canonicalize_name(component["name"])
        assert component["purl"] == f"pkg:pypi/{name}@{component['version']}"


def test_sbom_packages_are_the_runtime_dependencies(document: dict[str, Any]) -> None:
    """The root depends on pyproject's runtime dependencies, and every component is reached
    from them through the SBOM's own dependency graph."""
    graph = {entry["ref"]: set(entry.get("dependsOn", [])) for entry in document["dependencies"]}
    names = {c["bom-ref"]: canonicalize_name(c["name"]) for c in document["components"]}
    root = document["metadata"]["component"]["bom-ref"]
    direct = {names[ref] for ref in graph[root]}
    runtime = pyproject(REPO_ROOT)["project"]["dependencies"]
    assert direct == {canonicalize_name(Requirement(text).name) for text in runtime}
    reached: set[str] = set()
    pending = list(graph[root])
    while pending:
        ref = pending.pop()
        if ref not in reached:
            reached.add(ref)
            pending += graph.get(ref, set())
    assert reached == set(names), "components that no runtime dependency leads to"
