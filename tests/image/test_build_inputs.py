"""What the image's tag is derived from (no podman needed): the build context as the ignore
file defines it, its content hash, and the base's apt sources."""

from __future__ import annotations

from pathlib import Path

from tools.image.base import apt_sources, base_ref
from tools.image.build import IGNORE_FILE, REPO_ROOT
from tools.image.context import context_files, read_ignore_file, tree_digest
from tools.image.wheelhouse import fill_context, requirements

ALLOW_LIST = ["*", "!keep/", "keep/**/__pycache__/", "keep/**/*.pyc", "keep/secret/", "!a.txt"]


def _tree(root: Path, *paths: str) -> None:
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(path)


def test_allow_list_semantics(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        "a.txt",
        "b.txt",
        "keep/x.py",
        "keep/deep/y.py",
        "keep/__pycache__/x.pyc",
        "keep/deep/__pycache__/y.cpython-311.pyc",
        "keep/deep/z.pyc",
        "keep/secret/s.py",
        "other/keep/x.py",
        ".git/config",
    )
    assert context_files(tmp_path, ALLOW_LIST) == ["a.txt", "keep/deep/y.py", "keep/x.py"]


def test_later_patterns_win(tmp_path: Path) -> None:
    _tree(tmp_path, "docs/a.md", "docs/b.md")
    assert context_files(tmp_path, ["docs/", "!docs/b.md"]) == ["docs/b.md"]
    assert context_files(tmp_path, ["!docs/b.md", "docs/"]) == []


def test_the_repository_context_is_what_the_dockerfile_copies() -> None:
    files = context_files(REPO_ROOT, read_ignore_file(REPO_ROOT / IGNORE_FILE))
    assert {"pyproject.toml", "README.md", "tools/image/wheelhouse/.gitignore"} <= set(files)
    assert "operator/cpworker/runner.py" in files
    tops = {path.split("/")[0] for path in files}
    assert tops <= {"pyproject.toml", "README.md", "operator", "tools"}
    assert not [path for path in files if path.startswith("operator/cpworker/sandbox/")]
    assert not [path for path in files if "__pycache__" in path or path.endswith(".pyc")]
    assert not [p for p in files if p.startswith("tools/") and "/wheelhouse/" not in p]


def test_digest_follows_content_and_mode(tmp_path: Path) -> None:
    _tree(tmp_path, "a.txt", "b.txt")
    first = tree_digest(tmp_path, ["a.txt", "b.txt"])
    assert tree_digest(tmp_path, ["a.txt", "b.txt"]) == first
    (tmp_path / "b.txt").write_text("changed")
    second = tree_digest(tmp_path, ["a.txt", "b.txt"])
    assert second != first
    (tmp_path / "b.txt").chmod(0o755)
    assert tree_digest(tmp_path, ["a.txt", "b.txt"]) != second
    # A renamed file changes the hash even with the same bytes.
    assert tree_digest(tmp_path, ["a.txt"]) != tree_digest(tmp_path, ["b.txt"])


def test_wheelhouse_requirements_are_runtime_and_build_backend_only() -> None:
    wanted = requirements(REPO_ROOT / "pyproject.toml")
    assert "kopf>=1.37" in wanted
    assert any(text.startswith("setuptools") for text in wanted)
    assert not [text for text in wanted if text.split(">")[0].split("[")[0] in {"moto", "pytest"}]


def test_fill_context_replaces_stale_wheels(tmp_path: Path) -> None:
    cache, context = tmp_path / "cache", tmp_path / "context"
    _tree(cache, "new-1.0-py3-none-any.whl")
    _tree(context, ".gitignore", "old-1.0-py3-none-any.whl")
    assert fill_context(cache, context) == ["new-1.0-py3-none-any.whl"]
    assert sorted(p.name for p in context.iterdir()) == [".gitignore", "new-1.0-py3-none-any.whl"]


def test_base_uses_the_apt_sources_of_its_suite(tmp_path: Path) -> None:
    listing = tmp_path / "sources.list.d"
    listing.mkdir()
    (listing / "debian.sources").write_text("Types: deb\nSuites: bookworm bookworm-updates\n")
    (listing / "other.sources").write_text("Types: deb\nSuites: nodistro\n")
    (listing / "old.list.disabled").write_text("deb http://example.invalid bookworm main\n")
    assert apt_sources("bookworm", tmp_path) == [listing / "debian.sources"]
    tag = base_ref([listing / "debian.sources"])
    assert tag.startswith("localhost/cpworker-base:bookworm-")
    (listing / "debian.sources").write_text("Types: deb\nSuites: bookworm\n")
    assert base_ref([listing / "debian.sources"]) != tag
