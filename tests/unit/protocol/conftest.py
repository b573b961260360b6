"""Fixtures of the protocol unit tests: a fresh world (the two fakes and one worker)."""

from __future__ import annotations

import pytest

from tests.unit.protocol.world import World


@pytest.fixture
def world() -> World:
    return World.create()
