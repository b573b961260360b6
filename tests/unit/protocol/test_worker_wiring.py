"""How a worker's pieces are wired: Job events reach its loop, recovered claims its condition.

Both were found by the faults e2e (one run in many) and fixed; these pin the wiring down
without it: a Job event wakes an idle worker (workerloop.job_changed), and a supervision round
that completes a claim the API broke off clears the claim error (Worker.supervise).
"""

from __future__ import annotations

from typing import Any

import pytest

from cpworker import names, workerloop
from cpworker.jobindex import JobSummary
from cpworker.kube import KubeError
from tests.unit.operator import samples
from tests.unit.protocol.test_claim_recovery import left_claiming
from tests.unit.protocol.world import NAMESPACE, WORKER, Life, World


class RecordingLoop:
    """Stands in for a worker's PollLoop: records which wake-up it was given."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def job_changed(self) -> None:
        self.calls.append("job_changed")

    def poll_now(self) -> None:
        self.calls.append("poll_now")


class ListeningWorker:
    def __init__(self) -> None:
        self.loop = RecordingLoop()
        self.namespace = NAMESPACE
        self.name = WORKER


def listening(life: Life) -> RecordingLoop:
    worker = ListeningWorker()
    life.runtime.workers[(NAMESPACE, WORKER)] = worker  # type: ignore[assignment]
    return worker.loop


async def test_an_event_of_a_job_in_flight_brings_its_worker_round_forward(world: World) -> None:
    raw = world.polled()
    life = world.life()
    await life.claim(raw)
    loop = listening(life)
    await workerloop.job_changed(life.runtime, "MODIFIED", world.job(raw["id"]) or {})
    assert loop.calls == ["job_changed"]


async def test_a_job_that_ended_makes_its_worker_poll(world: World) -> None:
    raw = world.polled()
    life = world.life()
    await life.claim(raw)
    loop = listening(life)
    world.succeed(raw["id"])
    await workerloop.job_changed(life.runtime, "MODIFIED", world.job(raw["id"]) or {})
    assert loop.calls == ["poll_now"]  # capacity freed up: poll, not just supervise
    assert world.cp.accepted_for(raw["id"])


async def test_an_event_of_another_workers_job_wakes_nobody(world: World) -> None:
    raw = world.polled()
    life = world.life()
    await life.claim(raw)
    loop = listening(life)
    body = world.job(raw["id"]) or {}
    body["metadata"]["annotations"][names.ANNOTATION_WORKER] = "someone-else"
    await workerloop.job_changed(life.runtime, "MODIFIED", body)
    assert loop.calls == []


def worker_over(life: Life) -> tuple[workerloop.Worker, dict[Any, list[JobSummary]]]:
    """A Worker over the world's Jobs; refresh the returned index before each round."""
    index: dict[Any, list[JobSummary]] = {}
    worker = workerloop.Worker(
        life.runtime,
        spec={},
        meta={"generation": 1},
        status={},
        namespace=NAMESPACE,
        name=WORKER,
        uid=samples.WORKER.uid,
        index_jobs=index,
        index_pods={},
    )
    return worker, index


def refresh(world: World, index: dict[Any, list[JobSummary]]) -> None:
    index[(NAMESPACE, names.worker_label_value(WORKER))] = world.index()


REFUSED = KubeError("POST", "/api/v1/namespaces/ci/secrets", 503, "", "the API is unavailable")


@pytest.mark.parametrize("stage", ["before-secret", "before-release"])
async def test_a_round_that_recovers_a_broken_off_claim_clears_the_claim_error(
    world: World, stage: str
) -> None:
    raw = await left_claiming(world, stage)
    worker, index = worker_over(world.life())
    worker.kube_health.claims_failed(REFUSED)  # what Worker.claim records for the broken claim
    refresh(world, index)
    await worker.supervise()
    assert worker.supervisor.claims_recovered == 1
    assert worker.kube_health.problem() is None, "the condition kept a claim error that healed"
    assert world.job(raw["id"]) is not None


async def test_a_round_that_recovers_nothing_keeps_the_claim_error(world: World) -> None:
    worker, index = worker_over(world.life())
    worker.kube_health.claims_failed(REFUSED)
    refresh(world, index)
    await worker.supervise()
    assert worker.supervisor.claims_recovered == 0
    assert worker.kube_health.problem() is REFUSED
