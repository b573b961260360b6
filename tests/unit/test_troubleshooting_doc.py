"""docs/troubleshooting.md has a section for every Ready reason a worker can show."""

from __future__ import annotations

import re
from pathlib import Path

from cpworker.metrics import READY_REASONS
from cpworker.models import Reason

DOC = (Path(__file__).resolve().parents[2] / "docs" / "troubleshooting.md").read_text()


def test_every_ready_reason_has_a_heading() -> None:
    headings = [line for line in DOC.splitlines() if line.startswith("### ")]
    covered = {reason for line in headings for reason in re.findall(r"`([A-Za-z]+)`", line)}
    # Polling is the healthy state: nothing to troubleshoot, but the page names it.
    assert sorted(READY_REASONS - covered - {Reason.POLLING}) == []
    assert f"`{Reason.POLLING}`" in DOC
    assert sorted(covered - READY_REASONS) == []  # no heading for a reason that cannot happen
