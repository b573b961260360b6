"""An output directory as a zip: deterministic, permissions kept, streamed from disk.

- Order: every entry sorted by its relative path (directories as `name/`, before their
  contents), so the same tree always gives the same archive layout; entries carry only the
  Unix mode and modification time (no extra fields, no owner).
- Directories are entries too, so empty directories survive, with their modes.
- Files keep `mode & 0o777` (an executable stays executable); they are deflated while being
  read in chunks, never loaded whole. Hard links become ordinary files (zip has no hard links).
- Symbolic links are stored as links (Info-ZIP's `zip -y` layout), never followed, so a link
  cannot smuggle a file from outside the directory (such as the job's credentials) into the
  artifact. A link that is absolute or points outside the directory fails the push with
  JobFailed: the next stage's extraction would refuse it, so it is refused here, where it can
  be fixed.
- FIFOs, sockets and devices have no content: they are left out, with a warning.
"""

from __future__ import annotations

import logging
import os
import stat
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cpworker.artifacts.failures import ArtifactFailure
from cpworker.artifacts.safe_target import CHUNK_BYTES, shown, symlink_problem

logger = logging.getLogger(__name__)

COMPRESS_LEVEL: Final = 6
_ZIP_EPOCH: Final = (1980, 1, 1, 0, 0, 0)
_ZIP_LAST: Final = (2107, 12, 31, 23, 59, 58)
_MSDOS_DIRECTORY: Final = 0x10


@dataclass
class Packed:
    """What went into the archive."""

    files: int = 0
    directories: int = 0
    links: int = 0
    skipped: int = 0
    bytes_read: int = 0


@dataclass(frozen=True)
class _Entry:
    name: str  # relative, "/"-separated; directories end with "/"
    path: Path
    info: os.stat_result


def _zip_time(mtime: float) -> tuple[int, int, int, int, int, int]:
    moment = time.gmtime(max(mtime, 0))[:6]
    return max(_ZIP_EPOCH, min(_ZIP_LAST, moment))  # zip times span 1980-2107


def _walk(root: Path, artifact: str) -> Iterator[_Entry]:
    """Every entry below `root`, links not followed (order: whatever the filesystem gives)."""
    pending = [(root, "")]
    while pending:
        directory, prefix = pending.pop()
        try:
            with os.scandir(directory) as listing:
                children = list(listing)
        except OSError as error:
            raise _unreadable(artifact, prefix or ".", error) from None
        for child in children:
            name = prefix + child.name
            info = child.stat(follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                yield _Entry(name + "/", Path(child.path), info)
                pending.append((Path(child.path), name + "/"))
            else:
                yield _Entry(name, Path(child.path), info)


def _unreadable(artifact: str, name: str, error: OSError) -> ArtifactFailure:
    return ArtifactFailure(
        "JobFailed",
        f"Output artifact {artifact!r}: cannot read {shown(name)} ({error.strerror}). The "
        f"artifact helper runs as uid {os.getuid()}: make the outputs readable by it "
        "(for example chmod -R a+rX), or run the job's containers as the same user.",
    )


def _check_name(artifact: str, name: str) -> None:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ArtifactFailure(
            "JobFailed",
            f"Output artifact {artifact!r}: the file name {shown(name)} is not valid UTF-8, "
            "which a zip archive cannot carry portably; rename it.",
        ) from None


def _info(name: str, entry: _Entry, kind: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, _zip_time(entry.info.st_mtime))
    info.create_system = 3  # Unix: the external attributes hold st_mode
    info.external_attr = (kind | stat.S_IMODE(entry.info.st_mode) & 0o777) << 16
    return info


def pack(source: Path, archive: Path, artifact: str) -> Packed:
    """Write the zip of directory `source` to `archive` (a new file); return the counts."""
    entries = sorted(_walk(source, artifact), key=lambda entry: entry.name)
    packed = Packed()
    with zipfile.ZipFile(archive, "x", zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL) as out:
        for entry in entries:
            _check_name(artifact, entry.name)
            mode = entry.info.st_mode
            if stat.S_ISDIR(mode):
                info = _info(entry.name, entry, stat.S_IFDIR)
                info.external_attr |= _MSDOS_DIRECTORY
                out.writestr(info, b"", compress_type=zipfile.ZIP_STORED)
                packed.directories += 1
            elif stat.S_ISLNK(mode):
                _add_link(out, entry, artifact)
                packed.links += 1
            elif stat.S_ISREG(mode):
                packed.bytes_read += _add_file(out, entry, artifact)
                packed.files += 1
            else:
                logger.warning(
                    "output artifact %r: %s is not a file, directory or link (a FIFO, socket "
                    "or device); left out of the archive",
                    artifact,
                    shown(entry.name),
                )
                packed.skipped += 1
    return packed


def _add_link(out: zipfile.ZipFile, entry: _Entry, artifact: str) -> None:
    target = str(entry.path.readlink())
    problem = symlink_problem(tuple(entry.name.split("/")), target)
    if problem is not None:
        raise ArtifactFailure(
            "JobFailed",
            f"Output artifact {artifact!r}: {shown(entry.name)} {problem}. Links in an "
            "artifact must point inside it; copy the file in instead, or make the link "
            "relative.",
        )
    info = _info(entry.name, entry, stat.S_IFLNK)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    out.writestr(info, target.encode("utf-8", errors="surrogateescape"))


def _add_file(out: zipfile.ZipFile, entry: _Entry, artifact: str) -> int:
    info = _info(entry.name, entry, stat.S_IFREG)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.file_size = entry.info.st_size  # lets zipfile decide on zip64 before writing
    copied = 0
    try:
        with entry.path.open("rb") as source, out.open(info, "w") as target:
            for chunk in iter(lambda: source.read(CHUNK_BYTES), b""):
                target.write(chunk)
                copied += len(chunk)
    except PermissionError as error:
        raise _unreadable(artifact, entry.name, error) from None
    return copied
