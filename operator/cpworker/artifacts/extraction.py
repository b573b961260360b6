"""Zip and tar archives, entry by entry, into a `SafeTarget` (which enforces every rule).

Zip: the end record is checked against the file count limit before Python's zipfile reads the
central directory (which it keeps in memory); Unix modes come from the entry's external
attributes when it was made on Unix; symlinks are entries with the S_IFLNK mode whose content is
the target. Encrypted entries are refused.

Tar (plain or gzip): read in order with tarfile's parser, one member at a time (the member list
tarfile keeps is cleared as it goes), contents streamed through the target's byte counter.
Single reads above `MAX_HEADER_BYTES` are refused, because tarfile reads a pax or GNU long-name
header whole into memory and a hostile one could claim gigabytes.
"""

from __future__ import annotations

import calendar
import gzip
import io
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Final, Protocol

from cpworker.artifacts.failures import ArtifactFailure
from cpworker.artifacts.formats import ArchiveFormat, zip_directory
from cpworker.artifacts.limits import ArchiveMeter, ExtractionBudget
from cpworker.artifacts.safe_target import SafeTarget

MAX_HEADER_BYTES: Final = 16 * 1024 * 1024
MAX_LINK_TARGET_BYTES: Final = 4096
# A central directory record is at least 46 bytes; allow long names and extra fields, but bound
# what zipfile will hold in memory by the file count limit.
_ZIP_DIRECTORY_BYTES_PER_ENTRY: Final = 1024
_ZIP_UNIX: Final = 3
_ZIP_ENCRYPTED: Final = 0x1


class CorruptArchive(ArtifactFailure):
    def __init__(self, artifact: str, fmt: ArchiveFormat, detail: str) -> None:
        super().__init__(
            "JobFailed",
            f"Input artifact {artifact!r} is a damaged or unsupported {fmt} archive ({detail}). "
            "Rebuild the artifact, or re-run the stage that produced it.",
        )


def extract(
    archive: Path, fmt: ArchiveFormat, target: Path, artifact: str, budget: ExtractionBudget
) -> ArchiveMeter:
    """Extract `archive` into the empty directory `target`; return what it counted."""
    meter = budget.archive(artifact, archive.stat().st_size)
    into = SafeTarget(target, artifact, meter)
    try:
        if fmt is ArchiveFormat.ZIP:
            _extract_zip(archive, into, budget)
        else:
            _extract_tar(archive, fmt, into)
        into.finish()
    finally:
        into.close()
    return meter


# --- zip ----------------------------------------------------------------------------------


def _zip_time(info: zipfile.ZipInfo) -> float | None:
    try:
        return float(calendar.timegm((*info.date_time, 0, 0, -1)))
    except (ValueError, OverflowError):
        return None


def _extract_zip(archive: Path, into: SafeTarget, budget: ExtractionBudget) -> None:
    artifact = into.artifact
    directory = zip_directory(archive)
    if directory is None:
        raise CorruptArchive(artifact, ArchiveFormat.ZIP, "no end of central directory record")
    room = budget.limits.max_files - budget.entries
    if (
        directory.entries > room
        or directory.directory_bytes > max(room, 1) * _ZIP_DIRECTORY_BYTES_PER_ENTRY
    ):
        raise budget.too_many_entries(artifact, declared=directory.entries)
    try:
        with zipfile.ZipFile(archive) as zipped:
            for info in zipped.infolist():
                _zip_entry(zipped, info, into)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
        raise CorruptArchive(artifact, ArchiveFormat.ZIP, str(error)[:200]) from None


def _zip_entry(zipped: zipfile.ZipFile, info: zipfile.ZipInfo, into: SafeTarget) -> None:
    name = info.filename
    unix_mode = info.external_attr >> 16 if info.create_system == _ZIP_UNIX else 0
    mode = stat.S_IMODE(unix_mode) if unix_mode else None
    if info.flag_bits & _ZIP_ENCRYPTED:
        raise CorruptArchive(into.artifact, ArchiveFormat.ZIP, f"entry {name!r} is encrypted")
    if info.is_dir() or stat.S_ISDIR(unix_mode):
        into.directory(name, mode, _zip_time(info))
        return
    file_type = stat.S_IFMT(unix_mode)
    if file_type == stat.S_IFLNK:
        with zipped.open(info) as content:
            target = content.read(MAX_LINK_TARGET_BYTES + 1)
        if len(target) > MAX_LINK_TARGET_BYTES:
            into.special(name, "symbolic link with an over-long target")
        into.symlink(name, target.decode("utf-8", errors="replace"))
        return
    if file_type in {stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK}:
        into.special(name, _special_kind(file_type))
    with zipped.open(info) as content:
        into.file(name, mode, _zip_time(info), content)


def _special_kind(file_type: int) -> str:
    return {
        stat.S_IFCHR: "character device",
        stat.S_IFBLK: "block device",
        stat.S_IFIFO: "FIFO (named pipe)",
        stat.S_IFSOCK: "socket",
    }.get(file_type, "special file")


# --- tar ----------------------------------------------------------------------------------


class _SeekableReader(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...
    def seek(self, offset: int, whence: int = ..., /) -> int: ...
    def tell(self) -> int: ...


class _BoundedReads(io.RawIOBase):
    """A readable, seekable view of a stream that refuses single huge reads (see above)."""

    def __init__(self, inner: _SeekableReader, artifact: str, fmt: ArchiveFormat) -> None:
        super().__init__()
        self._inner = inner
        self._artifact = artifact
        self._fmt = fmt

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0 or size > MAX_HEADER_BYTES:
            raise CorruptArchive(
                self._artifact,
                self._fmt,
                f"a header or read of {size} bytes is larger than {MAX_HEADER_BYTES} allowed",
            )
        return self._inner.read(size)

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._inner.seek(offset, whence)

    def tell(self) -> int:
        return self._inner.tell()


@contextmanager
def _tar_stream(archive: Path, fmt: ArchiveFormat, artifact: str) -> Iterator[BinaryIO]:
    with archive.open("rb") as raw:
        if fmt is ArchiveFormat.TAR_GZ:
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                yield _BoundedReads(unzipped, artifact, fmt)  # type: ignore[misc]
        else:
            yield _BoundedReads(raw, artifact, fmt)  # type: ignore[misc]


def _extract_tar(archive: Path, fmt: ArchiveFormat, into: SafeTarget) -> None:
    artifact = into.artifact
    try:
        with (
            _tar_stream(archive, fmt, artifact) as stream,
            tarfile.open(fileobj=stream, mode="r:") as tar,
        ):
            while (member := tar.next()) is not None:
                # tarfile keeps every member it read (unbounded memory); we need none of them.
                vars(tar)["members"].clear()
                _tar_member(tar, member, into)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise CorruptArchive(artifact, fmt, str(error)[:200]) from None


def _tar_member(tar: tarfile.TarFile, member: tarfile.TarInfo, into: SafeTarget) -> None:
    name, mode, mtime = member.name, stat.S_IMODE(member.mode), float(member.mtime)
    if member.isdir():
        into.directory(name, mode, mtime)
    elif member.isreg():  # includes GNU sparse files: read back with their holes as zeros
        content = tar.extractfile(member)
        if content is None:  # pragma: no cover - isreg() members always have content
            raise CorruptArchive(into.artifact, ArchiveFormat.TAR, f"{name!r} has no content")
        with content:
            into.file(name, mode, mtime, content)
    elif member.issym():
        into.symlink(name, member.linkname)
    elif member.islnk():
        into.hardlink(name, member.linkname)
    elif member.ischr():
        into.special(name, "character device")
    elif member.isblk():
        into.special(name, "block device")
    elif member.isfifo():
        into.special(name, "FIFO (named pipe)")
    else:
        into.special(name, f"tar entry of unsupported type {member.type!r}")
