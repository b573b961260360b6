"""Packing an output directory: deterministic, faithful, and never following links out."""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import pytest

from cpworker.artifacts.extraction import extract
from cpworker.artifacts.failures import ArtifactFailure
from cpworker.artifacts.formats import ArchiveFormat
from cpworker.artifacts.limits import ExtractionBudget
from cpworker.artifacts.packing import pack
from cpworker.models import ArtifactLimits
from tests.unit.artifacts.archives import tree


def build_tree(root: Path) -> None:
    (root / "src/deep/er").mkdir(parents=True)
    (root / "src/deep/er/main.c").write_text("int main(void) { return 0; }\n")
    (root / "bin").mkdir()
    (root / "bin/run.sh").write_text("#!/bin/sh\necho run\n")
    (root / "bin/run.sh").chmod(0o755)
    (root / "bin").chmod(0o750)
    (root / "empty/nested-empty").mkdir(parents=True)
    (root / "latest").symlink_to("src/deep")
    (root / "b-file").write_bytes(os.urandom(3000))
    (root / "snow-\u2603.txt").write_text("unicode name")


def entries(archive: Path) -> list[tuple[str, int]]:
    with zipfile.ZipFile(archive) as zipped:
        return [(info.filename, info.external_attr >> 16) for info in zipped.infolist()]


def test_entries_are_sorted_with_directories_before_their_contents(tmp_path: Path) -> None:
    build_tree(tmp_path / "tree")
    packed = pack(tmp_path / "tree", tmp_path / "out.zip", "Out")
    listed = entries(tmp_path / "out.zip")
    names = [name for name, _ in listed]
    assert names == sorted(names)
    assert names == [
        "b-file",
        "bin/",
        "bin/run.sh",
        "empty/",
        "empty/nested-empty/",
        "latest",
        "snow-\u2603.txt",
        "src/",
        "src/deep/",
        "src/deep/er/",
        "src/deep/er/main.c",
    ]
    modes = dict(listed)
    assert modes["bin/run.sh"] == stat.S_IFREG | 0o755
    assert modes["bin/"] == stat.S_IFDIR | 0o750
    assert modes["latest"] == stat.S_IFLNK | 0o777
    assert (packed.files, packed.directories, packed.links) == (4, 6, 1)


def test_the_same_tree_packs_to_the_same_bytes(tmp_path: Path) -> None:
    build_tree(tmp_path / "tree")
    pack(tmp_path / "tree", tmp_path / "one.zip", "Out")
    pack(tmp_path / "tree", tmp_path / "two.zip", "Out")
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()


def test_a_packed_tree_extracts_back_to_itself(tmp_path: Path) -> None:
    source = tmp_path / "tree"
    build_tree(source)
    pack(source, tmp_path / "out.zip", "Out")
    target = tmp_path / "back"
    target.mkdir()
    extract(
        tmp_path / "out.zip", ArchiveFormat.ZIP, target, "Out", ExtractionBudget(ArtifactLimits())
    )

    assert tree(target) == tree(source)


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("/var/run/cpworker/credentials", "absolute path"),
        ("../../outside", "outside the artifact's directory"),
        ("sub/../../x", "climbs ('..') after descending"),
    ],
)
def test_a_link_out_of_the_directory_fails_the_push(
    tmp_path: Path, target: str, fragment: str
) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub/link").symlink_to(target)
    with pytest.raises(ArtifactFailure) as refused:
        pack(tree, tmp_path / "out.zip", "Out")
    assert refused.value.failure_type == "JobFailed"
    assert fragment in refused.value.message
    assert "'sub/link'" in refused.value.message


def test_a_link_is_stored_never_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("never in the artifact")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "dir-link").symlink_to(".")  # a loop, if it were followed
    pack(tree, tmp_path / "out.zip", "Out")
    with zipfile.ZipFile(tmp_path / "out.zip") as zipped:
        assert zipped.read("dir-link") == b"."
        assert len(zipped.infolist()) == 1


def test_fifos_are_left_out_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    os.mkfifo(tree / "pipe")
    (tree / "kept").write_text("x")
    packed = pack(tree, tmp_path / "out.zip", "Out")
    assert [name for name, _ in entries(tmp_path / "out.zip")] == ["kept"]
    assert packed.skipped == 1
    assert "'pipe' is not a file, directory or link" in caplog.text


def test_a_name_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (Path(os.fsdecode(bytes(tree) + b"/caf\xe9"))).write_text("latin-1 name")
    with pytest.raises(ArtifactFailure, match="not valid UTF-8"):
        pack(tree, tmp_path / "out.zip", "Out")


def test_an_empty_directory_packs_to_an_empty_zip(tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    pack(tmp_path / "tree", tmp_path / "out.zip", "Out")
    with zipfile.ZipFile(tmp_path / "out.zip") as zipped:
        assert zipped.infolist() == []
