"""The worker's counters: reports that meet are counted in one write, each job exactly once,
and none is lost."""

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


def counters(kube: FakeKube) -> dict[str, int]:
    worker = kube.get_object("customactionworkers", NS, WORKER) or {}
    return {k: v for k, v in (worker.get("status") or {}).items() if k != "countedJobs"}


def status_writes(kube: FakeKube) -> int:
    return sum(1 for r in kube.writes if r.resource == "customactionworkers")


def count(kube: FakeKube, counter: str, job_id: str) -> asyncio.Future[None]:
    return asyncio.ensure_future(workerstatus.count_job(kube, NS, WORKER, counter, job_id))


async def test_a_burst_of_reports_costs_far_fewer_writes_than_jobs() -> None:
    kube = fleet()
    jobs = [("succeeded", f"j-{n}") for n in range(8)] + [("failed", "j-8"), ("failed", "j-9")]
    await asyncio.gather(*(count(kube, counter, job) for counter, job in jobs))
    assert counters(kube) == {"succeeded": 11, "failed": 2}
    # The first call writes its own job; everything that arrived meanwhile is written by the
    # next one, together.
    assert status_writes(kube) <= 3
    # A call whose job an earlier write took along does not read the worker either.
    reads = [r for r in kube.requests if r.method == "GET" and r.resource == "customactionworkers"]
    assert len(reads) == status_writes(kube)


async def test_a_job_counted_twice_at_once_or_later_counts_once() -> None:
    kube = fleet()
    await asyncio.gather(*(count(kube, "succeeded", "j-1") for _ in range(3)))
    await count(kube, "succeeded", "j-1")  # a report repeated after a restart
    assert counters(kube) == {"succeeded": 4}


async def test_one_lost_race_is_one_write() -> None:
    kube = fleet()
    await workerstatus.increment_counter(kube, NS, WORKER, "lostRaces")
    assert counters(kube) == {"succeeded": 3, "lostRaces": 1}
    assert status_writes(kube) == 1


async def test_another_replicas_count_in_between_is_kept() -> None:
    kube = fleet()
    kube.intercept(
        "PATCH",
        "customactionworkers",
        lambda: kube.external_patch(
            "customactionworkers", NS, WORKER, {"status": {"succeeded": 10}}
        ),
    )
    await asyncio.gather(*(count(kube, "succeeded", f"j-{n}") for n in range(3)))
    # Our first patch met a newer resourceVersion (Conflict): re-read, 10 + 3.
    assert counters(kube) == {"succeeded": 13}


async def test_a_job_whose_count_failed_is_counted_with_the_next_one() -> None:
    kube = fleet()

    def refuse() -> None:
        raise KubeError("PATCH", "status", 500, "InternalError", "boom")

    kube.intercept("PATCH", "customactionworkers", refuse)
    with pytest.raises(KubeError):
        await count(kube, "failed", "j-a")
    assert counters(kube) == {"succeeded": 3}
    await count(kube, "failed", "j-b")
    assert counters(kube) == {"succeeded": 3, "failed": 2}
    await count(kube, "failed", "j-a")  # j-a's report, retried: counted already
    assert counters(kube) == {"succeeded": 3, "failed": 2}
