"""Writing archive entries into one directory without ever writing outside it.

The rules, each refused with its own message (`UnsafeEntry`, reported as JobFailed):

- entry names are relative paths without `..` (path traversal) and not absolute;
- nothing is written through a link: every parent of an entry is opened as a real directory,
  component by component, with O_NOFOLLOW relative to its parent's descriptor (no path string
  is ever resolved by the kernel from the root), and files are created with O_NOFOLLOW;
- symbolic links are created last, after every file and directory, so no entry can be written
  through a link the archive made; a link's target must be relative, may climb with leading
  `..` only, and must stay inside the directory (resolved from the link's own directory);
- hard links must name a regular file extracted before them, inside the directory;
- device files and FIFOs are refused (sockets cannot be archived);
- permissions: `mode & 0o777` (setuid, setgid and sticky bits dropped); directories keep
  owner rwx so the tree stays readable and removable; ownership is the helper's own user.

Every byte is counted by the archive's `ArchiveMeter` before it is written (limits.py).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from cpworker.artifacts.failures import ArtifactFailure
from cpworker.artifacts.limits import ArchiveMeter

CHUNK_BYTES: Final = 1024 * 1024
FILE_MODE_BITS: Final = 0o777
DIRECTORY_OWNER_BITS: Final = 0o700
DEFAULT_FILE_MODE: Final = 0o644
DEFAULT_DIRECTORY_MODE: Final = 0o755
_NAME_SHOWN: Final = 200
_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def shown(name: str) -> str:
    """An archive-supplied name made safe to quote in a message (bounded, printable)."""
    cleaned = "".join(c if c.isprintable() else "?" for c in name)
    return repr(cleaned if len(cleaned) <= _NAME_SHOWN else cleaned[:_NAME_SHOWN] + "...")


class UnsafeEntry(ArtifactFailure):
    """An archive entry that would escape the target or create something not allowed."""

    def __init__(self, artifact: str, name: str, problem: str, rule: str) -> None:
        super().__init__(
            "JobFailed",
            f"Input artifact {artifact!r} is not safe to extract: entry {shown(name)} {problem}. "
            "The archive was rejected and nothing of it was kept; rebuild the artifact "
            "without such entries.",
        )
        self.rule = rule  # a short name of the rule, for tests and logs


def entry_parts(artifact: str, name: str) -> tuple[str, ...]:
    """The components of an entry name; UnsafeEntry for absolute or traversing names.

    `.` components and repeated slashes are dropped; an empty result is the target itself.
    """
    if "\x00" in name:
        raise UnsafeEntry(artifact, name, "has a NUL character in its name", "nul")
    if name.startswith("/"):
        raise UnsafeEntry(artifact, name, "is an absolute path", "absolute")
    parts = tuple(part for part in name.split("/") if part not in {"", "."})
    if ".." in parts:
        raise UnsafeEntry(artifact, name, "has a '..' component (path traversal)", "traversal")
    return parts


def symlink_problem(link_parts: tuple[str, ...], target: str) -> str | None:
    """Why a symlink at `link_parts` pointing to `target` could escape (None: it cannot).

    Only leading `..` components are allowed: after a normal component, `..` would be
    resolved by the kernel from wherever that component leads (possibly another link), which a
    lexical check cannot know.
    """
    if not target or "\x00" in target:
        return "is a symbolic link with an empty or invalid target"
    if target.startswith("/"):
        return f"is a symbolic link to the absolute path {shown(target)}"
    parts = [part for part in target.split("/") if part not in {"", "."}]
    climbs = 0
    while climbs < len(parts) and parts[climbs] == "..":
        climbs += 1
    if ".." in parts[climbs:]:
        return f"is a symbolic link to {shown(target)}, which climbs ('..') after descending"
    if climbs > len(link_parts) - 1:
        return (
            f"is a symbolic link to {shown(target)}, outside the artifact's directory "
            "(symlink escape)"
        )
    return None


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


@dataclass(frozen=True)
class _Directory:
    parts: tuple[str, ...]
    mode: int
    mtime: float | None


class SafeTarget:
    """An empty directory that archive entries are written into. Call `finish()` at the end."""

    def __init__(self, root: Path, artifact: str, meter: ArchiveMeter) -> None:
        self.root = root
        self.artifact = artifact
        self.meter = meter
        self._root_fd = os.open(root, _DIR_FLAGS)
        self._directories: dict[tuple[str, ...], _Directory] = {}
        self._symlinks: list[tuple[str, tuple[str, ...], str]] = []
        self._cached: tuple[tuple[str, ...], int] | None = None

    def close(self) -> None:
        self._drop_cache()
        with contextlib.suppress(OSError):
            os.close(self._root_fd)

    def _drop_cache(self) -> None:
        if self._cached is not None:
            with contextlib.suppress(OSError):
                os.close(self._cached[1])
            self._cached = None

    def _unsafe(self, name: str, problem: str, rule: str) -> UnsafeEntry:
        return UnsafeEntry(self.artifact, name, problem, rule)

    def _open_directory(self, name: str, parts: tuple[str, ...], *, create: bool) -> int:
        """A descriptor of directory `parts`, walked without following any link.

        The caller must not close it: the last one is cached (archives list siblings together).
        """
        if self._cached is not None and self._cached[0] == parts:
            return self._cached[1]
        self._drop_cache()
        descriptor = os.dup(self._root_fd)
        try:
            for depth, part in enumerate(parts):
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, DIRECTORY_OWNER_BITS, dir_fd=descriptor)
                        self.meter_implicit(parts[: depth + 1])
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=descriptor)
                except OSError as error:
                    if error.errno in {errno.ELOOP, errno.ENOTDIR}:
                        where = "/".join(parts[: depth + 1])
                        raise self._unsafe(
                            name,
                            f"lies inside {shown(where)}, which is a link or a file, not a "
                            "directory (writing through links is refused)",
                            "through-link",
                        ) from None
                    raise
                os.close(descriptor)
                descriptor = child
        except BaseException:
            os.close(descriptor)
            raise
        self._cached = (parts, descriptor)
        return descriptor

    def meter_implicit(self, parts: tuple[str, ...]) -> None:
        """A parent directory the archive did not list gets the default mode (and counts)."""
        if parts not in self._directories:
            self.meter.entry()
            self._directories[parts] = _Directory(parts, DEFAULT_DIRECTORY_MODE, None)

    # --- entries --------------------------------------------------------------------------

    def directory(self, name: str, mode: int | None, mtime: float | None) -> None:
        parts = entry_parts(self.artifact, name)
        if not parts:
            return  # the target itself ("./")
        if parts not in self._directories:  # not yet created as another entry's parent
            self.meter.entry()
        parent = self._open_directory(name, parts[:-1], create=True)
        try:
            os.mkdir(parts[-1], DIRECTORY_OWNER_BITS, dir_fd=parent)
        except FileExistsError:
            info = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
            if not stat.S_ISDIR(info.st_mode):
                raise self._unsafe(
                    name, "is a directory where a file exists", "duplicate"
                ) from None
        chosen = DEFAULT_DIRECTORY_MODE if mode is None else mode & FILE_MODE_BITS
        self._directories[parts] = _Directory(parts, chosen | DIRECTORY_OWNER_BITS, mtime)

    def file(self, name: str, mode: int | None, mtime: float | None, content: Readable) -> None:
        parts = entry_parts(self.artifact, name)
        if not parts:
            raise self._unsafe(name, "is a file without a name", "empty-name")
        self.meter.entry()
        parent = self._open_directory(name, parts[:-1], create=True)
        descriptor = self._create(name, parent, parts[-1])
        try:
            for chunk in iter(lambda: content.read(CHUNK_BYTES), b""):
                self.meter.write(len(chunk))  # counted before it reaches the disk
                view = memoryview(chunk)
                while view:
                    view = view[os.write(descriptor, view) :]
            os.fchmod(descriptor, DEFAULT_FILE_MODE if mode is None else mode & FILE_MODE_BITS)
        finally:
            os.close(descriptor)
        if mtime is not None:
            os.utime(parts[-1], (mtime, mtime), dir_fd=parent, follow_symlinks=False)

    def _create(self, name: str, parent: int, leaf: str) -> int:
        try:
            return os.open(leaf, _FILE_FLAGS, 0o600, dir_fd=parent)
        except FileExistsError:
            info = os.stat(leaf, dir_fd=parent, follow_symlinks=False)
            if not stat.S_ISREG(info.st_mode):
                raise self._unsafe(
                    name, "is a file where a directory or link exists", "duplicate"
                ) from None
            # A later entry of the same name replaces the earlier one (tar's rule); unlinking
            # first keeps a hard link made from the earlier one intact.
            os.unlink(leaf, dir_fd=parent)
            return os.open(leaf, _FILE_FLAGS, 0o600, dir_fd=parent)

    def hardlink(self, name: str, target: str) -> None:
        parts = entry_parts(self.artifact, name)
        if target.startswith("/") or ".." in target.split("/"):
            raise self._unsafe(
                name,
                f"is a hard link to {shown(target)}, outside the artifact's directory "
                "(hardlink escape)",
                "hardlink-escape",
            )
        target_parts = entry_parts(self.artifact, target)
        if not parts or not target_parts:
            raise self._unsafe(name, "is a hard link without a name or target", "empty-name")
        self.meter.entry()
        try:
            source_dir = self._open_directory(name, target_parts[:-1], create=False)
            info = os.stat(target_parts[-1], dir_fd=source_dir, follow_symlinks=False)
        except FileNotFoundError:
            info = None
        if info is None or not stat.S_ISREG(info.st_mode):
            raise self._unsafe(
                name,
                f"is a hard link to {shown(target)}, which is not a regular file extracted "
                "before it",
                "hardlink-target",
            )
        source = os.dup(source_dir)
        try:
            parent = self._open_directory(name, parts[:-1], create=True)
            with contextlib.suppress(FileNotFoundError):
                existing = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
                if not stat.S_ISREG(existing.st_mode):
                    raise self._unsafe(name, "is a link where a directory exists", "duplicate")
                if (existing.st_dev, existing.st_ino) == (info.st_dev, info.st_ino):
                    return  # already that file (a link to itself, or a repeated link)
                os.unlink(parts[-1], dir_fd=parent)
            os.link(
                target_parts[-1],
                parts[-1],
                src_dir_fd=source,
                dst_dir_fd=parent,
                follow_symlinks=False,
            )
        finally:
            os.close(source)

    def symlink(self, name: str, target: str) -> None:
        """Check now, create in `finish()` (after every file and directory)."""
        parts = entry_parts(self.artifact, name)
        if not parts:
            raise self._unsafe(name, "is a symbolic link without a name", "empty-name")
        problem = symlink_problem(parts, target)
        if problem is not None:
            raise self._unsafe(name, problem, "symlink-escape")
        self.meter.entry()
        self._symlinks.append((name, parts, target))

    def special(self, name: str, kind: str) -> None:
        raise self._unsafe(name, f"is a {kind}, which artifacts may not contain", "special")

    # --- the end --------------------------------------------------------------------------

    def finish(self) -> None:
        """Create the symlinks, then set directory modes and times, deepest first."""
        for name, parts, target in self._symlinks:
            parent = self._open_directory(name, parts[:-1], create=True)
            try:
                os.symlink(target, parts[-1], dir_fd=parent)
            except FileExistsError:
                raise self._unsafe(
                    name, "is a symbolic link where another entry exists", "duplicate"
                ) from None
        for directory in sorted(self._directories.values(), key=lambda d: -len(d.parts)):
            parent = self._open_directory(directory.parts[-1], directory.parts[:-1], create=False)
            # fchmod on a no-follow descriptor: Linux has no chmod that refuses links.
            descriptor = os.open(directory.parts[-1], _DIR_FLAGS, dir_fd=parent)
            try:
                os.fchmod(descriptor, directory.mode)
                if directory.mtime is not None:
                    os.utime(descriptor, (directory.mtime, directory.mtime))
            finally:
                os.close(descriptor)
        self.close()


@contextlib.contextmanager
def safe_target(root: Path, artifact: str, meter: ArchiveMeter) -> Iterator[SafeTarget]:
    target = SafeTarget(root, artifact, meter)
    try:
        yield target
    finally:
        target.close()
