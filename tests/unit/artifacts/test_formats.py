"""Telling archives apart by content, and reading a zip's end record before its directory."""

from __future__ import annotations

import gzip
import io
import os
import zipfile
from pathlib import Path

import pytest

from cpworker.artifacts.formats import ArchiveFormat, detect, zip_directory
from tests.unit.artifacts.archives import tar_bytes, tar_file, zip_bytes

CASES = {
    "zip": (zip_bytes({"a": "x"}), ArchiveFormat.ZIP),
    "empty zip": (zip_bytes({}), ArchiveFormat.ZIP),
    "tar": (tar_bytes([tar_file("a", b"x")]), ArchiveFormat.TAR),
    "tar.gz": (tar_bytes([tar_file("a", b"x")], gzipped=True), ArchiveFormat.TAR_GZ),
    "gzip of a non-tar": (gzip.compress(b"just text\n" * 100), ArchiveFormat.SINGLE_FILE),
    "broken gzip": (b"\x1f\x8b" + os.urandom(100), ArchiveFormat.SINGLE_FILE),
    "text": (b"plain text that is no archive\n", ArchiveFormat.SINGLE_FILE),
    "empty": (b"", ArchiveFormat.SINGLE_FILE),
    "jar named .zip nowhere": (zip_bytes({"META-INF/MANIFEST.MF": "x"}), ArchiveFormat.ZIP),
}


@pytest.mark.parametrize(("content", "expected"), CASES.values(), ids=CASES.keys())
def test_format_comes_from_content(tmp_path: Path, content: bytes, expected: ArchiveFormat) -> None:
    path = tmp_path / "object-key-without-extension"
    path.write_bytes(content)
    assert detect(path) is expected


def test_the_zip_end_record_gives_entries_and_directory_size(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    path.write_bytes(zip_bytes({f"f{i}": "x" for i in range(7)}))
    directory = zip_directory(path)
    assert directory is not None
    with zipfile.ZipFile(path) as zipped:
        assert directory.entries == len(zipped.infolist()) == 7
        assert directory.directory_bytes == sum(46 + len(i.filename) for i in zipped.infolist())


def test_a_zip64_end_record_is_read(tmp_path: Path) -> None:
    count = 0x10000  # one more than the classic end record can count
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for index in range(count):
            zipped.writestr(f"{index}", b"")
    raw = buffer.getvalue()
    assert b"PK\x06\x06" in raw  # the zip64 end record is there
    path = tmp_path / "z64.zip"
    path.write_bytes(raw)
    directory = zip_directory(path)
    assert directory is not None
    assert directory.entries == count


def test_no_end_record_is_none(tmp_path: Path) -> None:
    path = tmp_path / "cut.zip"
    path.write_bytes(zip_bytes({"a": "x"})[:-22])
    assert zip_directory(path) is None
