"""Fixtures for the chart tests: one loaded chart per session (loading is the slow part)."""

from __future__ import annotations

from collections.abc import Iterator

import helm_python as helm
import pytest

from tests.integration.helm.chart import load_chart


@pytest.fixture(scope="session")
def chart() -> Iterator[helm.Chart]:
    with load_chart() as loaded:
        yield loaded
