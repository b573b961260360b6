"""docs/architecture.md's module map names every module of the package, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator" / "cpworker"
MAP_ROW = re.compile(r"^\| `([a-z_]+(?:\.py|/))` \|", re.MULTILINE)


def documented_modules() -> list[str]:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Module map", 1)[1].split("\n## ", 1)[0]
    return MAP_ROW.findall(section)


def package_modules() -> set[str]:
    modules = {p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    packages = {f"{p.name}/" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    return modules | packages


def test_the_module_map_lists_every_module_once() -> None:
    listed = documented_modules()
    assert len(listed) == len(set(listed)), "a module is listed twice"
    missing = package_modules() - set(listed)
    stale = set(listed) - package_modules()
    assert not missing, f"add to docs/architecture.md's module map: {sorted(missing)}"
    assert not stale, f"remove from docs/architecture.md's module map: {sorted(stale)}"


def test_every_layer_of_the_import_contract_is_a_module() -> None:
    # The dependency direction is enforced by import-linter; its layers must name real modules.
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    layers = re.findall(r'"(cpworker[.a-z_ |]*)"', text.split("[tool.importlinter]", 1)[1])
    named = {
        part.strip().removeprefix("cpworker.") for layer in layers for part in layer.split("|")
    }
    existing = {m.removesuffix(".py").removesuffix("/") for m in package_modules()}
    assert named - {"cpworker"} <= existing, named - existing
