"""Which files the image build sees, and one content hash of them.

The build context is the repository root filtered by `operator/Dockerfile.dockerignore`. The
image is tagged by a hash of exactly those files (plus the Dockerfile and the base), so the
filter is read here with the engines' rules rather than restated: patterns are matched against
each path and its parent directories, the last matching pattern decides, `!` re-includes,
`*` and `?` stay within one path segment and `**` spans any number of them (moby's
`patternmatcher`, which buildah shares: github.com/moby/patternmatcher, patternmatcher.go).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


@dataclass(frozen=True, slots=True)
class _Pattern:
    text: str
    regex: re.Pattern[str]
    include: bool

    def may_include_below(self, directory: str) -> bool:
        """Whether this pattern could re-include something under an ignored directory."""
        return self.include and (
            self.text.startswith(f"{directory}/") or any(c in self.text for c in "*?[")
        )


def _compile(pattern: str) -> _Pattern:
    include = pattern.startswith("!")
    cleaned = PurePosixPath(pattern.removeprefix("!").strip().lstrip("/")).as_posix()
    parts: list[str] = []
    index = 0
    while index < len(cleaned):
        if cleaned.startswith("**/", index):
            parts.append("(?:.*/)?")
            index += 3
        elif cleaned.startswith("**", index):
            parts.append(".*")
            index += 2
        elif cleaned[index] == "*":
            parts.append("[^/]*")
            index += 1
        elif cleaned[index] == "?":
            parts.append("[^/]")
            index += 1
        else:
            parts.append(re.escape(cleaned[index]))
            index += 1
    return _Pattern(cleaned, re.compile("".join(parts) + r"\Z"), include)


def read_ignore_file(path: Path) -> list[str]:
    """The patterns of a .dockerignore-style file (comments and blank lines dropped)."""
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _ignored(relative: str, patterns: list[_Pattern]) -> bool:
    parents = list(PurePosixPath(relative).parents)[:-1]  # without "."
    candidates = [relative, *(parent.as_posix() for parent in parents)]
    ignored = False
    for pattern in patterns:
        if any(pattern.regex.match(candidate) for candidate in candidates):
            ignored = not pattern.include
    return ignored


def context_files(root: Path, patterns: Iterable[str]) -> list[str]:
    """Paths (relative, POSIX, sorted) of the regular files the build context holds."""
    compiled = [_compile(pattern) for pattern in patterns]
    return sorted(
        relative for relative in _walk(root, compiled) if not _ignored(relative, compiled)
    )


def _walk(root: Path, patterns: list[_Pattern]) -> Iterator[str]:
    for directory, subdirectories, files in os.walk(root):
        here = Path(directory).relative_to(root)
        # Skip ignored trees that nothing re-includes (.git, the venvs, caches).
        subdirectories[:] = [
            name
            for name in subdirectories
            if not _ignored(relative := (here / name).as_posix(), patterns)
            or any(pattern.may_include_below(relative) for pattern in patterns)
        ]
        for name in files:
            path = Path(directory) / name
            if path.is_file() and not path.is_symlink():
                yield path.relative_to(root).as_posix()


def tree_digest(root: Path, relatives: Iterable[str]) -> str:
    """sha256 over each file's path, executable bit and content."""
    digest = hashlib.sha256()
    for relative in relatives:
        path = root / relative
        executable = os.access(path, os.X_OK)
        digest.update(f"{relative}\0{int(executable)}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()
