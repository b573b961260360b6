"""docs/reference.md is what `make docs` generates from the models and the settings today."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from tools.docs import reference


def test_the_reference_is_not_stale() -> None:
    committed = reference.DEFAULT_OUTPUT.read_text(encoding="utf-8")
    fresh = reference.render()
    diff = "".join(
        difflib.unified_diff(
            committed.splitlines(keepends=True),
            fresh.splitlines(keepends=True),
            "docs/reference.md (committed)",
            "docs/reference.md (from the models and settings)",
            n=1,
        )
    )
    assert committed == fresh, f"docs/reference.md is stale: run `make docs`\n{diff[:4000]}"


def test_the_check_mode_says_what_to_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "reference.md"
    stale.write_text("old\n")
    assert reference.main([str(stale), "--check"]) == 1
    assert "run `make docs`" in capsys.readouterr().err
    assert reference.main([str(stale)]) == 0
    assert reference.main([str(stale), "--check"]) == 0


def test_every_row_has_a_description() -> None:
    rows = [*reference.spec_rows(), *reference.status_rows(), *reference.setting_rows()]
    assert len(rows) > 40
    assert [row.name for row in rows if not row.description.strip()] == []
