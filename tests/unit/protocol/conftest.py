"""Fixtures of the protocol unit tests: a fresh world (the two fakes and one worker)."""

from __future__ import annotations

import pytest

from cpworker import jobrecord
from tests.unit.protocol.world import WallClock, World


@pytest.fixture
def world() -> World:
    return World.create()


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> WallClock:
    """The wall clock the report lease reads, driven by the test."""
    clock = WallClock()
    monkeypatch.setattr(jobrecord, "time", clock)
    return clock
