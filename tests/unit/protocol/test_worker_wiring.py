"""How a worker's pieces are wired: Job events reach its loop, recovered claims its condition.

Both were found by the faults e2e (one run in many) and fixed; these pin the wiring down
without it: a Job event wakes an idle worker (workerloop.job_changed), and a supervision round
that completes a claim the API broke off clears the claim error (Worker.supervise).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cpworker import names, workerloop
from cpworker.jobindex import JobSummary
from cpworker.kube import KubeError
from tests.unit.operator import samples
from tests.unit.protocol.fakes import WORKER_RESOURCE
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
    await asyncio.gather(*life.runtime.background)
    assert world.cp.accepted_for(raw["id"])


async def test_a_report_does_not_hold_the_event_handler_that_started_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kopf runs a bounded number of handlers at once and keeps every event of an object
    waiting for one: a report (six API calls) must not hold a handler meanwhile."""
    raw = world.polled()
    life = world.life()
    await life.claim(raw)
    world.succeed(raw["id"])
    go_on = asyncio.Event()
    report = life.runtime.reporter.finished

    async def slow_report(job: JobSummary, *args: Any) -> bool:
        await go_on.wait()
        return await report(job, *args)

    monkeypatch.setattr(life.runtime.reporter, "finished", slow_report)
    changed = workerloop.job_changed(life.runtime, "MODIFIED", world.job(raw["id"]) or {})
    await asyncio.wait_for(changed, timeout=10)  # returns while the report waits
    assert not world.cp.accepted_for(raw["id"])
    go_on.set()
    await asyncio.gather(*life.runtime.background)
    assert world.cp.accepted_for(raw["id"])
    assert not life.runtime.background


async def test_a_report_still_running_at_shutdown_is_cancelled(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = world.polled()
    life = world.life()
    await life.claim(raw)
    world.succeed(raw["id"])
    never = asyncio.Event()

    async def stuck(_job: JobSummary, *_args: Any) -> bool:
        await never.wait()
        return True

    monkeypatch.setattr(life.runtime.reporter, "finished", stuck)
    await workerloop.job_changed(life.runtime, "MODIFIED", world.job(raw["id"]) or {})
    await asyncio.wait_for(life.runtime.stop_background(), timeout=10)
    assert not life.runtime.background


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


# ---- the worker's own finalizer (Worker.until_finalized) ------------------------------------
# Found at 10,000 workers: the daemon added the finalizer from kopf's view of the worker, which
# lags behind the server in a big fleet, so every attempt conflicted, every daemon retried
# every 5 s, and the retries filled the request threads (77,504 conflicts in 4 minutes, no
# finalizer added, 2,900 of 10,000 workers Ready).

OTHERS = "example.com/keep-me"


class Stopped:
    """kopf.DaemonStopped as the wait uses it: falsy until stopped, `wait` sleeps."""

    def __init__(self) -> None:
        self.stopped = False

    def __bool__(self) -> bool:
        return self.stopped

    async def wait(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 - kopf's signature
        await asyncio.sleep(0)
        return self.stopped


def lagging_worker(world: World) -> workerloop.Worker:
    """A worker whose kopf view is two writes behind the server, where another controller has
    meanwhile added a finalizer of its own."""
    life = world.life()
    seen = world.kube.get_object(WORKER_RESOURCE, NAMESPACE, WORKER)
    assert seen is not None
    world.kube.external_patch(WORKER_RESOURCE, NAMESPACE, WORKER, {"status": {"observed": 1}})
    world.kube.external_patch(
        WORKER_RESOURCE, NAMESPACE, WORKER, {"metadata": {"finalizers": [OTHERS]}}
    )
    worker, _ = worker_over(life)
    worker.meta = seen["metadata"]
    return worker


def server_finalizers(world: World) -> list[str]:
    current = world.kube.get_object(WORKER_RESOURCE, NAMESPACE, WORKER)
    assert current is not None
    return list(current["metadata"].get("finalizers") or [])


async def test_a_worker_whose_kopf_view_lags_adds_its_finalizer_at_the_first_attempt(
    world: World,
) -> None:
    worker = lagging_worker(world)
    assert await worker.add_finalizer() is True
    assert server_finalizers(world) == [OTHERS, names.FINALIZER]
    patches = world.kube.writes_to(WORKER_RESOURCE)
    assert [r.status for r in patches] == [200], patches


async def test_the_wait_ends_once_the_server_has_the_finalizer_though_kopfs_view_lags(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workerloop, "FINALIZER_GRACE_SECONDS", 0.0)
    worker = lagging_worker(world)
    await asyncio.wait_for(worker.until_finalized(Stopped()), timeout=5)  # type: ignore[arg-type]
    assert names.FINALIZER not in (worker.meta.get("finalizers") or []), "the view was not stale"
    assert server_finalizers(world) == [OTHERS, names.FINALIZER]


async def test_a_write_between_the_read_and_the_patch_is_kept_and_the_next_round_adds_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workerloop, "FINALIZER_GRACE_SECONDS", 0.0)
    worker = lagging_worker(world)
    world.kube.intercept(
        "PATCH",
        WORKER_RESOURCE,
        lambda: world.kube.external_patch(
            WORKER_RESOURCE, NAMESPACE, WORKER, {"metadata": {"finalizers": [OTHERS, "b.io/x"]}}
        ),
    )
    await asyncio.wait_for(worker.until_finalized(Stopped()), timeout=5)  # type: ignore[arg-type]
    assert server_finalizers(world) == [OTHERS, "b.io/x", names.FINALIZER]
    assert [r.status for r in world.kube.writes_to(WORKER_RESOURCE)] == [409, 200]


async def test_no_finalizer_is_added_to_a_worker_being_deleted(world: World) -> None:
    worker = lagging_worker(world)
    world.kube.external_patch(
        WORKER_RESOURCE,
        NAMESPACE,
        WORKER,
        {"metadata": {"deletionTimestamp": "2026-12-03T00:00:00Z"}},
    )
    assert await worker.add_finalizer() is False
    assert world.kube.writes_to(WORKER_RESOURCE) == []
    assert server_finalizers(world) == [OTHERS]
