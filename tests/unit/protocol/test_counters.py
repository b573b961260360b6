"""The worker's counters: increments that meet are written together, and none is lost."""

from __future__ import annotations

import asyncio

import pytest

from cpworker import workerstatus
from cpworker.kube import KubeError
from tests.unit.protocol.fakes import FakeKube

NS, WORKER = "ci", "builds"


def fleet() -> FakeKube:
    kube = FakeKube()
    kube.external_create(
        "customactionworkers",
        {"metadata": {"name": WORKER, "namespace": NS}, "spec": {}, "status": {"succeeded": 3}},
    )
    return kube


def status(kube: FakeKube) -> dict[str, int]:
    worker = kube.get_object("customactionworkers", NS, WORKER) or {}
    return dict(worker.get("status") or {})


def status_writes(kube: FakeKube) -> int:
    return sum(1 for r in kube.writes if r.resource == "customactionworkers")


async def test_a_burst_of_reports_costs_far_fewer_writes_than_increments() -> None:
    kube = fleet()
    counters = ["succeeded"] * 8 + ["failed"] * 2
    await asyncio.gather(
        *(workerstatus.increment_counter(kube, NS, WORKER, name) for name in counters)
    )
    assert status(kube) == {"succeeded": 11, "failed": 2}
    # The first call writes its own increment; everything that arrived meanwhile is
    # written by the next one, together.
    assert status_writes(kube) <= 3


async def test_one_increment_is_one_write() -> None:
    kube = fleet()
    await workerstatus.increment_counter(kube, NS, WORKER, "lostRaces")
    assert status(kube) == {"succeeded": 3, "lostRaces": 1}
    assert status_writes(kube) == 1


async def test_another_replicas_increment_in_between_is_kept() -> None:
    kube = fleet()
    kube.intercept(
        "PATCH",
        "customactionworkers",
        lambda: kube.external_patch(
            "customactionworkers", NS, WORKER, {"status": {"succeeded": 10}}
        ),
    )
    await asyncio.gather(
        *(workerstatus.increment_counter(kube, NS, WORKER, "succeeded") for _ in range(3))
    )
    # Our first patch met a newer resourceVersion (Conflict): re-read, 10 + 3.
    assert status(kube) == {"succeeded": 13}


async def test_an_increment_whose_write_failed_is_written_with_the_next_one() -> None:
    kube = fleet()

    def refuse() -> None:
        raise KubeError("PATCH", "status", 500, "InternalError", "boom")

    kube.intercept("PATCH", "customactionworkers", refuse)
    with pytest.raises(KubeError):
        await workerstatus.increment_counter(kube, NS, WORKER, "failed")
    assert status(kube) == {"succeeded": 3}
    await workerstatus.increment_counter(kube, NS, WORKER, "failed")
    assert status(kube) == {"succeeded": 3, "failed": 2}
