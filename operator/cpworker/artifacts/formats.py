"""What a downloaded artifact is, told by its content (magic bytes), never by its key or name.

CodePipeline's object keys have no extension, and a custom source action may store anything, so
the first bytes decide: a zip (local file header, or the end record of an empty zip), a gzip
stream whose content is a POSIX/GNU tar, or a plain tar (`ustar` at offset 257). Anything else
is a single file and is stored as it is.

Also here: the zip's end-of-central-directory record, read before Python's zipfile loads the
central directory into memory, so an archive declaring millions of entries is refused first.
"""

from __future__ import annotations

import enum
import gzip
import struct
import zlib
from pathlib import Path
from typing import BinaryIO, Final

ZIP_LOCAL_HEADER: Final = b"PK\x03\x04"
ZIP_EMPTY_END: Final = b"PK\x05\x06"
GZIP_MAGIC: Final = b"\x1f\x8b"
TAR_MAGIC_OFFSET: Final = 257
TAR_MAGICS: Final = (b"ustar\x0000", b"ustar  \x00")  # POSIX (ustar/pax) and GNU
_HEADER_BYTES: Final = 512

_EOCD: Final = b"PK\x05\x06"
_EOCD_SIZE: Final = 22
_ZIP64_LOCATOR: Final = b"PK\x06\x07"
_ZIP64_EOCD: Final = b"PK\x06\x06"
_MAX_COMMENT: Final = 0xFFFF


class ArchiveFormat(enum.StrEnum):
    ZIP = "zip"
    TAR = "tar"
    TAR_GZ = "tar.gz"
    SINGLE_FILE = "file"


def _is_tar_header(block: bytes) -> bool:
    magic = block[TAR_MAGIC_OFFSET : TAR_MAGIC_OFFSET + 8]
    return len(block) >= TAR_MAGIC_OFFSET + 8 and magic in TAR_MAGICS


def _gunzipped_head(handle: BinaryIO) -> bytes:
    try:
        with gzip.GzipFile(fileobj=handle, mode="rb") as stream:
            return stream.read(_HEADER_BYTES)
    except (OSError, EOFError, zlib.error):
        return b""  # not a readable gzip stream: a single (odd) file


def detect(path: Path) -> ArchiveFormat:
    """The format of the file at `path`, from its first bytes."""
    with path.open("rb") as handle:
        head = handle.read(_HEADER_BYTES)
        if head.startswith((ZIP_LOCAL_HEADER, ZIP_EMPTY_END)):
            return ArchiveFormat.ZIP
        if head.startswith(GZIP_MAGIC):
            handle.seek(0)
            return (
                ArchiveFormat.TAR_GZ
                if _is_tar_header(_gunzipped_head(handle))
                else (ArchiveFormat.SINGLE_FILE)
            )
    return ArchiveFormat.TAR if _is_tar_header(head) else ArchiveFormat.SINGLE_FILE


class ZipDirectory:
    """What a zip's end record declares: entry count and central directory size (bytes)."""

    def __init__(self, entries: int, directory_bytes: int) -> None:
        self.entries = entries
        self.directory_bytes = directory_bytes


def zip_directory(path: Path) -> ZipDirectory | None:
    """The zip's end record (zip64 when present); None when there is none (a corrupt zip)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        tail_size = min(size, _EOCD_SIZE + _MAX_COMMENT)
        handle.seek(size - tail_size)
        tail = handle.read(tail_size)
        at = tail.rfind(_EOCD)
        if at < 0 or len(tail) - at < _EOCD_SIZE:
            return None
        fields = struct.unpack("<4s4H2LH", tail[at : at + _EOCD_SIZE])
        entries, directory_bytes = fields[4], fields[5]
        locator_at = size - tail_size + at - 20
        if locator_at >= 0:
            handle.seek(locator_at)
            locator = handle.read(20)
            if locator[:4] == _ZIP64_LOCATOR:
                (zip64_offset,) = struct.unpack("<Q", locator[8:16])
                handle.seek(zip64_offset)
                record = handle.read(56)
                if record[:4] == _ZIP64_EOCD and len(record) == 56:
                    entries, directory_bytes = struct.unpack("<QQ", record[32:48])
    return ZipDirectory(entries, directory_bytes)
