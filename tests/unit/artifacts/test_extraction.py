"""Safe extraction of zip and tar archives: fidelity for good ones, refusal for hostile ones."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cpworker.artifacts.extraction import CorruptArchive, extract
from cpworker.artifacts.failures import ArtifactFailure
from cpworker.artifacts.formats import ArchiveFormat, detect
from cpworker.artifacts.limits import ExtractionBudget, LimitExceeded
from cpworker.artifacts.safe_target import UnsafeEntry
from cpworker.models import ArtifactLimits
from tests.unit.artifacts.archives import (
    HOSTILE,
    MIB,
    SYMLINK,
    tar_bytes,
    tar_dir,
    tar_file,
    tar_hardlink,
    tar_symlink,
    zip_bytes,
)


def snapshot(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


def run(
    tmp_path: Path, archive: bytes, limits: ArtifactLimits | None = None
) -> tuple[Path, ExtractionBudget]:
    """Extract `archive` into tmp_path/sandbox/target; the sandbox shows any escape."""
    sandbox = tmp_path / "sandbox"
    target = sandbox / "target"
    target.mkdir(parents=True)
    path = sandbox / "archive"
    path.write_bytes(archive)
    budget = ExtractionBudget(limits or ArtifactLimits())
    extract(path, detect(path), target, "Source", budget)
    return target, budget


def test_a_zip_keeps_tree_modes_links_and_times(tmp_path: Path) -> None:
    archive = zip_bytes(
        {
            "bin/": "",
            "bin/build.sh": "#!/bin/sh\necho built\n",
            "src/deep/er/main.c": "int main(void) { return 0; }\n",
            "empty/": "",
            "latest": "src/deep",
            "secret.txt": "read only",
            "set-uid": "x",
        },
        modes={
            "bin/": stat.S_IFDIR | 0o750,
            "bin/build.sh": stat.S_IFREG | 0o755,
            "latest": SYMLINK,
            "secret.txt": stat.S_IFREG | 0o400,
            "set-uid": stat.S_IFREG | 0o4755,
        },
    )
    target, budget = run(tmp_path, archive)
    assert snapshot(target) == {
        "bin",
        "bin/build.sh",
        "src",
        "src/deep",
        "src/deep/er",
        "src/deep/er/main.c",
        "empty",
        "latest",
        "secret.txt",
        "set-uid",
    }
    assert stat.S_IMODE((target / "bin/build.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((target / "bin").stat().st_mode) == 0o750
    assert stat.S_IMODE((target / "secret.txt").stat().st_mode) == 0o400
    assert stat.S_IMODE((target / "set-uid").stat().st_mode) == 0o755  # setuid dropped
    assert stat.S_IMODE((target / "src/deep/er/main.c").stat().st_mode) == 0o644  # no Unix mode
    assert (target / "latest").readlink() == Path("src/deep")
    assert (target / "latest/er/main.c").read_text().startswith("int main")
    assert (target / "bin/build.sh").stat().st_mtime == pytest.approx(1704164646, abs=2)
    assert budget.entries == 10
    assert budget.bytes_written == sum(
        len(v)
        for v in ("#!/bin/sh\necho built\n", "int main(void) { return 0; }\n", "read only", "x")
    )


@pytest.mark.parametrize("gzipped", [False, True], ids=["tar", "tar.gz"])
def test_a_tar_keeps_tree_modes_and_links(tmp_path: Path, gzipped: bool) -> None:
    archive = tar_bytes(
        [
            tar_dir("./app", 0o700),
            tar_file("./app/run", b"#!/bin/sh\n", 0o6755),
            tar_hardlink("app/run-again", "app/run"),
            tar_symlink("app/here", "."),
            tar_symlink("app/up", "../app/run"),
            tar_dir("empty"),
            tar_file("app/run", b"#!/bin/sh\nexit 0\n", 0o755),  # a later entry wins
        ],
        gzipped=gzipped,
    )
    target, _ = run(tmp_path, archive)
    assert detect(tmp_path / "sandbox/archive") is (
        ArchiveFormat.TAR_GZ if gzipped else ArchiveFormat.TAR
    )
    assert snapshot(target) == {
        "app",
        "app/run",
        "app/run-again",
        "app/here",
        "app/up",
        "empty",
    }
    assert (target / "app/run").read_bytes() == b"#!/bin/sh\nexit 0\n"
    assert (target / "app/run-again").read_bytes() == b"#!/bin/sh\n"  # the earlier content
    assert stat.S_IMODE((target / "app/run").stat().st_mode) == 0o755
    assert stat.S_IMODE((target / "app").stat().st_mode) == 0o700
    assert (target / "app/up").readlink() == Path("../app/run")


@pytest.mark.parametrize("case", HOSTILE.values(), ids=HOSTILE.keys())
def test_each_hostile_archive_is_refused_with_its_own_message(tmp_path: Path, case: Any) -> None:
    outside_before = snapshot(tmp_path)
    with pytest.raises(ArtifactFailure) as refused:
        run(tmp_path, case.build(), ArtifactLimits(**case.limits))
    failure = refused.value
    assert failure.failure_type == "JobFailed"
    assert case.message in failure.message
    assert "'Source'" in failure.message
    others = [c.message for c in HOSTILE.values() if c.message != case.message]
    assert not any(other in failure.message for other in others)
    # Nothing appeared outside the target (the sandbox holds only target and archive).
    after = {p for p in snapshot(tmp_path) if not p.startswith("sandbox/target/")}
    assert after - outside_before <= {"sandbox", "sandbox/target", "sandbox/archive"}
    assert not Path("/tmp/cpworker-absolute-escape.txt").exists()


def test_limit_failures_name_their_limit(tmp_path: Path) -> None:
    for name, field in (
        ("zip bomb", "maxCompressionRatio"),
        ("tar bomb", "maxTotalBytes"),
        ("too many files", "maxFiles"),
    ):
        case = HOSTILE[name]
        with pytest.raises(LimitExceeded) as refused:
            run(tmp_path / name.replace(" ", "-"), case.build(), ArtifactLimits(**case.limits))
        assert refused.value.limit == field
        assert f"spec.artifacts.limits.{field}" in refused.value.message


def test_a_bomb_is_stopped_while_it_expands(tmp_path: Path) -> None:
    """Bytes are counted as they are written: the disk never holds more than the limit."""
    case = HOSTILE["tar bomb"]
    limits = ArtifactLimits(max_total_bytes=16 * MIB)
    sandbox = tmp_path / "sandbox"
    target = sandbox / "target"
    target.mkdir(parents=True)
    (sandbox / "archive").write_bytes(case.build())
    budget = ExtractionBudget(limits)
    with pytest.raises(LimitExceeded):
        extract(sandbox / "archive", ArchiveFormat.TAR_GZ, target, "Source", budget)
    written = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    assert written <= 16 * MIB
    assert budget.bytes_written <= 16 * MIB


def test_the_ratio_is_not_applied_to_small_outputs(tmp_path: Path) -> None:
    archive = zip_bytes({"zeros": bytes(512 * 1024)})  # ~500 bytes expanding 1000x
    target, _ = run(tmp_path, archive, ArtifactLimits(max_compression_ratio=2))
    assert (target / "zeros").stat().st_size == 512 * 1024


def test_the_budget_is_shared_by_all_inputs(tmp_path: Path) -> None:
    budget = ExtractionBudget(ArtifactLimits(max_files=5))
    for index, count in enumerate((3, 3)):
        target = tmp_path / f"t{index}"
        target.mkdir()
        archive = tmp_path / f"a{index}"
        archive.write_bytes(zip_bytes({f"f{i}": "x" for i in range(count)}))
        if index == 0:
            extract(archive, ArchiveFormat.ZIP, target, "First", budget)
        else:
            with pytest.raises(LimitExceeded, match="'Second' exceeds the file count limit"):
                extract(archive, ArchiveFormat.ZIP, target, "Second", budget)


def test_a_zip_declaring_too_many_entries_is_refused_before_it_is_read(tmp_path: Path) -> None:
    archive = bytearray(zip_bytes({"a": "x"}))
    end = archive.rfind(b"PK\x05\x06")
    archive[end + 8 : end + 12] = (60_000).to_bytes(2, "little") * 2  # entry counts
    with pytest.raises(LimitExceeded, match="declares 60000 entries"):
        run(tmp_path, bytes(archive), ArtifactLimits(max_files=1000))


@pytest.mark.parametrize(
    ("archive", "fragment"),
    [
        (zip_bytes({"a": "x" * 1000})[:-30], "no end of central directory"),
        (tar_bytes([tar_file("a", os.urandom(5000))], gzipped=True)[:3000], "damaged"),
        (tar_bytes([tar_file("a", b"x" * 5000)])[:1500], "damaged"),
    ],
    ids=["truncated zip", "truncated tar.gz", "truncated tar"],
)
def test_a_damaged_archive_says_so(tmp_path: Path, archive: bytes, fragment: str) -> None:
    with pytest.raises(CorruptArchive, match=fragment):
        run(tmp_path, archive)


def test_an_encrypted_zip_entry_is_refused(tmp_path: Path) -> None:
    archive = bytearray(zip_bytes({"a": "x"}))
    archive[6] |= 0x1  # local header flag
    directory = archive.rfind(b"PK\x01\x02")
    archive[directory + 8] |= 0x1  # central directory flag
    with pytest.raises(CorruptArchive, match="encrypted"):
        run(tmp_path, bytes(archive))


def test_a_huge_tar_header_is_refused_without_reading_it(tmp_path: Path) -> None:
    info, _ = tar_file("a", b"")
    info.pax_headers = {"comment": "x" * (17 * MIB)}
    with pytest.raises(CorruptArchive, match="larger than"):
        run(tmp_path, tar_bytes([(info, b"")]))


# --- property: whatever the names and links, nothing lands outside -------------------------

PARTS = st.sampled_from(["a", "b", "..", ".", "", "/"])
NAMES = st.lists(PARTS, min_size=1, max_size=5).map("/".join)
ENTRIES = st.lists(
    st.tuples(st.sampled_from(["file", "dir", "symlink", "hardlink"]), NAMES, NAMES),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=150,
    # Replaces the profile's list (tests/conftest.py), so too_slow is named again.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ENTRIES)
# Found by this fuzz: a hard link named like its own target (the unlink went first).
@example([("file", "a", "a"), ("hardlink", "a", "a")])
def test_fuzzed_archives_never_write_outside(tmp_path: Path, entries: list[Any]) -> None:
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    for kind, name, target in entries:
        if kind == "file":
            members.append(tar_file(name or "x", b"data"))
        elif kind == "dir":
            members.append(tar_dir(name or "x"))
        elif kind == "symlink":
            members.append(tar_symlink(name or "x", target))
        else:
            members.append(tar_hardlink(name or "x", target))
    case = tmp_path / f"case-{len(list(tmp_path.iterdir()))}"
    sandbox = case / "sandbox"
    target = sandbox / "target"
    target.mkdir(parents=True)
    (sandbox / "archive").write_bytes(tar_bytes(members))
    with contextlib.suppress(UnsafeEntry, CorruptArchive):
        extract(
            sandbox / "archive",
            ArchiveFormat.TAR,
            target,
            "Fuzz",
            ExtractionBudget(ArtifactLimits()),
        )
    assert {p.name for p in case.iterdir()} == {"sandbox"}
    assert {p.name for p in sandbox.iterdir()} == {"target", "archive"}
    root = Path(os.path.realpath(target))
    for path in target.rglob("*"):
        if not path.is_symlink():
            continue
        try:
            resolved = Path(os.path.realpath(path, strict=True))
        except FileNotFoundError:  # dangling: where it would lead
            resolved = Path(os.path.realpath(path))
        except OSError as error:  # a loop (a -> a) leads nowhere: harmless
            if error.errno != errno.ELOOP:
                raise
            continue
        assert resolved == root or root in resolved.parents, (path, path.readlink())
