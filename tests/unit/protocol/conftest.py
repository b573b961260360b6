"""Fixtures of the protocol unit tests: a fresh world (the two fakes and one worker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cpworker import jobrecord
from tests import canaries
from tests.unit.protocol.world import WallClock, World


@pytest.fixture
def world() -> Iterator[World]:
    world = World.create()
    yield world
    canaries.watch_fake(world.kube)  # what the operator wrote into Events and statuses


@pytest.fixture
def peered() -> Iterator[World]:
    """A world whose operators run with kopf peering (replicas): reports take a lease."""
    world = World.create(peering_name="cpworker")
    yield world
    canaries.watch_fake(world.kube)


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> WallClock:
    """The wall clock the report lease reads, driven by the test."""
    clock = WallClock()
    monkeypatch.setattr(jobrecord, "time", clock)
    return clock
