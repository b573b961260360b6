"""Read Terraform configuration with python-hcl2, for the modules no provider here can load."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hcl2

# Arguments of a module block that are Terraform's, not the module's variables.
MODULE_META_ARGUMENTS = frozenset(
    {"source", "version", "providers", "depends_on", "count", "for_each"}
)


def unquote(value: Any) -> Any:
    """python-hcl2 keeps string literals quoted ("\\"x\\""); strip one level of quotes."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def load_dir(module: Path) -> dict[str, list[Any]]:
    """All top-level blocks of the module's *.tf files, merged by block type."""
    merged: dict[str, list[Any]] = {}
    for path in sorted(module.glob("*.tf")):
        with path.open() as handle:
            parsed: dict[str, list[Any]] = hcl2.load(handle)
        for block_type, blocks in parsed.items():
            merged.setdefault(block_type, []).extend(blocks)
    return merged


def named_blocks(config: dict[str, list[Any]], block_type: str) -> Iterator[tuple[str, Any]]:
    """(name, body) of every `block_type "name" { ... }` block."""
    for block in config.get(block_type, []):
        for name, body in block.items():
            yield unquote(name), body


def variables(module: Path) -> dict[str, dict[str, Any]]:
    return dict(named_blocks(load_dir(module), "variable"))


def required_variables(module: Path) -> set[str]:
    return {name for name, body in variables(module).items() if "default" not in body}


def module_calls(module: Path) -> dict[str, dict[str, Any]]:
    return dict(named_blocks(load_dir(module), "module"))


def call_arguments(call: dict[str, Any]) -> set[str]:
    return {key for key in call if key not in MODULE_META_ARGUMENTS and not key.startswith("__")}


def local_values(module: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in load_dir(module).get("locals", []):
        merged.update({k: v for k, v in block.items() if not k.startswith("__")})
    return merged


def resources(module: Path, resource_type: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for block in load_dir(module).get("resource", []):
        for rtype, instances in block.items():
            if unquote(rtype) == resource_type:
                found.update({unquote(name): body for name, body in instances.items()})
    return found


def key_paths(tree: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Leaf key paths of nested mappings (a non-mapping value is a leaf)."""
    if isinstance(tree, dict) and tree:
        for key, value in tree.items():
            if key.startswith("__"):
                continue
            yield from key_paths(value, (*prefix, key))
    else:
        yield prefix
