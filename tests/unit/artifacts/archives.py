"""Archives for tests, built in memory with zipfile and tarfile: good ones and a hostile corpus
(and `tree`, which describes an extracted or packed directory for comparisons).

Each hostile archive is what an attacker (or a broken tool) would upload as an input artifact;
`HOSTILE` pairs it with a fragment of the message that rejects it and the limits it needs, so
the unit tests (extraction only) and the integration tests (pulled from S3) share one corpus.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
import stat
import tarfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

MIB = 1024 * 1024

Tree = dict[str, tuple[int, bytes | str | None]]


def tree(root: Path) -> Tree:
    """Every entry below `root`: its st_mode and content (the target, for a link)."""
    result: Tree = {}
    for path in sorted(root.rglob("*")):
        content: bytes | str | None = None
        if path.is_symlink():
            content = str(path.readlink())
        elif path.is_file():
            content = path.read_bytes()
        result[str(path.relative_to(root))] = (path.lstat().st_mode, content)
    return result


def zip_bytes(
    entries: Mapping[str, bytes | str], *, modes: Mapping[str, int] | None = None
) -> bytes:
    """A zip of `entries` (name -> content); `modes` sets Unix st_mode (with the file type)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            info = zipfile.ZipInfo(name, (2024, 1, 2, 3, 4, 6))
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = (modes or {}).get(name)
            # Without a mode the entry is made as on MS-DOS: no Unix attributes at all.
            info.create_system = 0 if mode is None else 3
            info.external_attr = 0 if mode is None else mode << 16
            archive.writestr(info, content)
    return buffer.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, **fields: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mtime = 1_700_000_000
    info.mode = fields.pop("mode", 0o644)
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def tar_bytes(
    members: list[tuple[tarfile.TarInfo, bytes | None]], *, gzipped: bool = False
) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, content in members:
            if content is not None:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
            else:
                archive.addfile(info)
    raw = buffer.getvalue()
    return gzip.compress(raw, mtime=0) if gzipped else raw


def tar_file(name: str, content: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    return _member(name, mode=mode), content


def tar_dir(name: str, mode: int = 0o755) -> tuple[tarfile.TarInfo, None]:
    return _member(name, tarfile.DIRTYPE, mode=mode), None


def tar_symlink(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    return _member(name, tarfile.SYMTYPE, linkname=target, mode=0o777), None


def tar_hardlink(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    return _member(name, tarfile.LNKTYPE, linkname=target), None


def tar_device(name: str) -> tuple[tarfile.TarInfo, None]:
    return _member(name, tarfile.CHRTYPE, devmajor=1, devminor=3), None


def tar_fifo(name: str) -> tuple[tarfile.TarInfo, None]:
    return _member(name, tarfile.FIFOTYPE), None


def zip_bomb(expanded: int = 64 * MIB) -> bytes:
    """One deflated file of zeros: ~1000x smaller than what it expands to."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        info = zipfile.ZipInfo("zeros.bin")
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w") as target:
            chunk = bytes(MIB)
            for _ in range(expanded // MIB):
                target.write(chunk)
    return buffer.getvalue()


def tar_bomb(expanded: int = 24 * MIB) -> bytes:
    """A tar.gz of incompressible data: the ratio looks innocent, the total size is too big."""
    return tar_bytes([tar_file("payload.bin", os.urandom(expanded))], gzipped=True)


def many_files(count: int) -> bytes:
    return zip_bytes({f"f{index:05}.txt": b"" for index in range(count)})


@dataclasses.dataclass(frozen=True)
class Hostile:
    build: Callable[[], bytes]
    message: str  # a fragment only this archive's rejection contains
    limits: Mapping[str, int] = dataclasses.field(default_factory=dict)


SYMLINK = stat.S_IFLNK | 0o777

HOSTILE: dict[str, Hostile] = {
    "zip slip": Hostile(
        lambda: zip_bytes({"ok.txt": "fine", "../../escaped.txt": "owned"}),
        "has a '..' component (path traversal)",
    ),
    "tar slip": Hostile(
        lambda: tar_bytes([tar_file("a/../../escaped.txt", b"owned")]),
        "has a '..' component (path traversal)",
    ),
    "absolute path": Hostile(
        lambda: tar_bytes([tar_file("/tmp/cpworker-absolute-escape.txt", b"owned")]),
        "is an absolute path",
    ),
    "symlink escape": Hostile(
        lambda: tar_bytes(
            [tar_symlink("outside", "../../.."), tar_file("outside/escaped.txt", b"owned")]
        ),
        "outside the artifact's directory (symlink escape)",
    ),
    "zip symlink escape": Hostile(
        lambda: zip_bytes({"link": "/etc"}, modes={"link": SYMLINK}),
        "is a symbolic link to the absolute path",
    ),
    "write through symlink": Hostile(
        lambda: tar_bytes([tar_symlink("d", "."), tar_symlink("d/x", "..")]),
        "writing through links is refused",
    ),
    "hardlink escape": Hostile(
        lambda: tar_bytes([tar_hardlink("passwd", "../../../../etc/passwd")]),
        "outside the artifact's directory (hardlink escape)",
    ),
    "device entry": Hostile(lambda: tar_bytes([tar_device("dev/null")]), "is a character device"),
    "fifo entry": Hostile(lambda: tar_bytes([tar_fifo("pipe")]), "is a FIFO (named pipe)"),
    "zip bomb": Hostile(zip_bomb, "exceeds the compression ratio limit"),
    "tar bomb": Hostile(
        tar_bomb, "exceeds the total size limit", limits={"max_total_bytes": 16 * MIB}
    ),
    "too many files": Hostile(
        lambda: many_files(300), "exceeds the file count limit", limits={"max_files": 200}
    ),
    "too many tar entries": Hostile(  # counted while extracting: a tar has no directory
        lambda: tar_bytes([tar_file(f"f{i}", b"") for i in range(300)]),
        "exceeds the file count limit",
        limits={"max_files": 200},
    ),
}
