"""The world the protocol tests run in: one worker, the two fakes, and operator lives.

A `World` is what survives an operator crash: the Kubernetes objects (`FakeKube`) and the
CodePipeline jobs (`FakeCodePipeline`). A `Life` is one run of the operator process over that
world (its Job records, reporter, claim context and in-flight supervisor, wired as
workerloop.py wires them); its memory (report guard, probe clocks, `claiming_now`) dies with it.
A crash at a stage boundary is `crash_at(stage)`: the stage hook raises `Crash`, which no
operator code catches (it is not an Exception), as `os._exit` in production ends everything.

The Job controller and the kubelet are played by `start_pod`, `succeed`, `fail` and
`cannot_pull`: they write through `FakeKube.external_*`, not as the operator. The pod is the
Job's pod template (as the Job controller makes it), so a job with artifacts has the helper's
init containers: pull exits 0, and the push sidecar ends as `push` says (0 unless told).
"""

from __future__ import annotations

import base64
import concurrent.futures
import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from cpworker import claimer, jobdata, jobindex, models, names, timestamps, workerloop
from cpworker.inflight import InFlightSupervisor
from cpworker.jobmanifest import build_job
from cpworker.jobrecord import JobRecords
from cpworker.kube import Body
from cpworker.metrics import Metrics
from cpworker.reporter import Reporter
from cpworker.runtime import Runtime
from cpworker.settings import OperatorSettings
from tests.unit.operator import samples
from tests.unit.protocol.fakes import WORKER_RESOURCE, FakeClients, FakeCodePipeline, FakeKube

NAMESPACE: Final = samples.WORKER.namespace
WORKER: Final = samples.WORKER.name
SUCCESS_MESSAGE: Final = '{"summary": "built 3 targets"}'


class Crash(BaseException):
    """The operator process died here (a BaseException: no `except Exception` stops it)."""


def crash_at(stage: str) -> Callable[[str], None]:
    def hook(reached: str) -> None:
        if reached == stage:
            raise Crash(stage)

    return hook


def no_crash(_stage: str) -> None:
    return None


@dataclass
class Clock:
    """A hand-driven monotonic clock for the supervisor's probe and hand-over timers."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class WallClock:
    """Stands in for the `time` module in jobrecord (report leases are epoch seconds), so
    that a test can let a lease expire without sleeping."""

    offset: float = 0.0

    def time(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def _terminated(name: str, exit_code: int, message: str) -> dict[str, Any]:
    reason = {0: "Completed", 137: "Error"}.get(exit_code, "Error")
    return {
        "name": name,
        "state": {"terminated": {"exitCode": exit_code, "reason": reason, "message": message}},
    }


def job_name(job_id: str) -> str:
    return names.job_object_name(job_id)


@dataclass(repr=False)  # a failing assertion should not print the whole world
class World:
    kube: FakeKube
    cp: FakeCodePipeline
    clients: FakeClients
    settings: OperatorSettings
    spec: models.CustomActionWorkerSpec = field(
        default_factory=lambda: models.parse_spec(samples.spec())
    )

    @classmethod
    def create(cls, **settings: Any) -> World:
        kube = FakeKube()
        cp = FakeCodePipeline(
            secret_properties=jobdata.SecretProperties(names=samples.SECRET_PROPERTIES)
        )
        kube.external_create(
            WORKER_RESOURCE,
            {
                "apiVersion": names.API_VERSION,
                "kind": names.KIND,
                "metadata": {"name": WORKER, "namespace": NAMESPACE, "uid": samples.WORKER.uid},
                "spec": samples.spec(),
                "status": {},
            },
        )
        return cls(kube, cp, FakeClients(cp), samples.settings(**settings))

    # ---- CodePipeline ---------------------------------------------------------------------

    def new_job(self, **changes: Any) -> str:
        """A pipeline reached our action: a queued job (samples.RAW_JOB with a fresh id)."""
        return self.cp.queue(samples.raw_job(id=str(uuid.uuid4()), **changes))

    def polled(self, **changes: Any) -> dict[str, Any]:
        """A new job, delivered by PollForJobs."""
        return self.cp.deliver(self.new_job(**changes))

    # ---- what the operator wrote ----------------------------------------------------------

    def job(self, job_id: str) -> Body | None:
        return self.kube.get_object("jobs", NAMESPACE, job_name(job_id))

    def secret(self, job_id: str) -> Body | None:
        return self.kube.get_object("secrets", NAMESPACE, job_name(job_id))

    def annotations(self, job_id: str) -> dict[str, str]:
        job = self.job(job_id)
        assert job is not None, f"no Job for {job_id}"
        return dict(job["metadata"].get("annotations") or {})

    def annotate(self, job_id: str, annotations: dict[str, str | None]) -> Body:
        """Someone else (another replica, a user) changed the Job's annotations."""
        return self.kube.external_patch(
            "jobs", NAMESPACE, job_name(job_id), {"metadata": {"annotations": annotations}}
        )

    def summary(self, job_id: str) -> jobindex.JobSummary:
        """The Job as the watch index holds it (fresh)."""
        job = self.job(job_id)
        assert job is not None, f"no Job for {job_id}"
        return jobindex.summarize_job(job)

    def index(self) -> list[jobindex.JobSummary]:
        """The worker's Jobs as the kopf index holds them (fresh)."""
        return [
            jobindex.summarize_job(body)
            for body in self.kube.objects("jobs")
            if jobindex.job_index_key(body) == (NAMESPACE, names.worker_label_value(WORKER))
        ]

    def pods_of(self, name: str) -> list[jobindex.PodSummary]:
        return [
            jobindex.summarize_pod(pod)
            for pod in self.kube.objects("pods")
            if jobindex.owning_job(pod) == name
        ]

    async def dispatched(self, life: Life) -> str:
        """A new job, claimed by `life` and running (its pod started); returns its id."""
        raw = self.polled()
        assert await life.claim(raw) is claimer.ClaimOutcome.DISPATCHED
        self.start_pod(raw["id"])
        return str(raw["id"])

    def manifest(self, job: jobdata.Job, secrets: frozenset[str]) -> Body:
        return build_job(
            worker=samples.WORKER,
            spec=self.spec,
            job=job,
            secret_property_names=secrets,
            settings=self.settings,
            now=timestamps.now(),
        )

    # ---- the Job controller and the kubelet -----------------------------------------------

    def start_pod(self, job_id: str) -> Body:
        job = self.job(job_id)
        assert job is not None
        assert not job["spec"].get("suspend"), "the Job controller starts no pod while suspended"
        name = job_name(job_id)
        pod = self.kube.external_create(
            "pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{name}-x7k2p",
                    "namespace": NAMESPACE,
                    # As the API server's Job strategy puts them into the template (its
                    # generated selector, pkg/registry/batch/job/strategy.go), 1.27+.
                    "labels": {
                        **job["spec"]["template"]["metadata"]["labels"],
                        "batch.kubernetes.io/job-name": name,
                        "batch.kubernetes.io/controller-uid": job["metadata"]["uid"],
                    },
                    "ownerReferences": [
                        names.controller_reference("batch/v1", "Job", name, job["metadata"]["uid"])
                    ],
                },
                "spec": job["spec"]["template"]["spec"],
                "status": {
                    "phase": "Running",
                    "containerStatuses": [{"name": "build", "state": {"running": {}}}],
                    "initContainerStatuses": [
                        _terminated(c["name"], 0, "")
                        if c.get("restartPolicy") != "Always"
                        else {"name": c["name"], "state": {"running": {}}}
                        for c in job["spec"]["template"]["spec"].get("initContainers") or []
                    ],
                },
            },
        )
        self.kube.external_patch(
            "jobs", NAMESPACE, name, {"status": {"startTime": timestamps.rfc3339(timestamps.now())}}
        )
        return pod

    def succeed(
        self, job_id: str, message: str = SUCCESS_MESSAGE, *, push: tuple[int, str] = (0, "")
    ) -> None:
        """The build exited 0; then the kubelet stopped the push sidecar, which ended with
        `push` (exit code, termination message); the Job is Complete either way."""
        complete = [("SuccessCriteriaMet", ""), ("Complete", "")]
        self._end(job_id, "Succeeded", 0, message, complete, push=push)

    def fail(self, job_id: str, message: str = "make: *** [all] Error 2") -> None:
        failed = [("FailureTarget", "BackoffLimitExceeded"), ("Failed", "BackoffLimitExceeded")]
        self._end(job_id, "Failed", 2, message, failed)

    def cannot_pull(self, job_id: str, *, minutes_ago: float) -> None:
        """The Job's pod has been waiting on its image since `minutes_ago`."""
        pod = self._pod(job_id)
        since = timestamps.rfc3339(timestamps.now() - dt.timedelta(minutes=minutes_ago))
        self.kube.external_patch(
            "pods",
            NAMESPACE,
            pod,
            {
                "status": {
                    "phase": "Pending",
                    "startTime": since,
                    "containerStatuses": [
                        {
                            "name": "build",
                            "state": {
                                "waiting": {
                                    "reason": "ImagePullBackOff",
                                    "message": "Back-off pulling image",
                                }
                            },
                        }
                    ],
                }
            },
        )

    def _pod(self, job_id: str) -> str:
        pods = self.pods_of(job_name(job_id))
        if not pods:
            return str(self.start_pod(job_id)["metadata"]["name"])
        return pods[0].name

    def _end(
        self,
        job_id: str,
        phase: str,
        exit_code: int,
        message: str,
        conditions: list[tuple[str, str]],
        *,
        push: tuple[int, str] = (0, ""),
    ) -> None:
        pod = self._pod(job_id)
        body = self.kube.get_object("pods", NAMESPACE, pod) or {}
        init = [
            _terminated(c["name"], *(push if c.get("restartPolicy") == "Always" else (0, "")))
            for c in body.get("spec", {}).get("initContainers") or []
        ]
        self.kube.external_patch(
            "pods",
            NAMESPACE,
            pod,
            {
                "status": {
                    "phase": phase,
                    "containerStatuses": [_terminated("build", exit_code, message)],
                    "initContainerStatuses": init,
                }
            },
        )
        job_conditions = [
            {"type": kind, "status": "True", "reason": reason} for kind, reason in conditions
        ]
        # As the Job controller counts its ended pods (pkg/controller/job/job_controller.go:
        # the pod counted, `active` down to 0, the terminal conditions after).
        counted = "succeeded" if phase == "Succeeded" else "failed"
        self.kube.external_patch(
            "jobs",
            NAMESPACE,
            job_name(job_id),
            {"status": {"conditions": job_conditions, "active": 0, counted: 1}},
        )

    # ---- the operator ---------------------------------------------------------------------

    def life(
        self,
        *,
        hook: Callable[[str], None] = no_crash,
        clock: Clock | None = None,
        reporter_id: str | None = None,
    ) -> Life:
        """A fresh operator process over this world."""
        records = JobRecords(self.kube)
        reporter = Reporter(
            records=records,
            kube=self.kube,
            clients=self.clients,
            finished_ttl_seconds=self.settings.finished_job_ttl_seconds,
            lease_seconds=self.settings.report_lease_seconds,
            hook=hook,
        )
        if reporter_id is not None:
            reporter.reporter_id = reporter_id
        runtime = Runtime(
            settings=self.settings,
            # Never used: the fakes answer in the event loop. Creating it starts no thread.
            executor=concurrent.futures.ThreadPoolExecutor(max_workers=1),
            kube=self.kube,
            clients=self.clients,
            records=records,
            reporter=reporter,
            metrics=Metrics(process_metrics=False),
        )
        reporter.metrics = runtime.metrics
        supervisor = workerloop.in_flight_supervisor(runtime, NAMESPACE, WORKER, samples.WORKER.uid)
        supervisor.clock = clock = clock or Clock()
        ctx = claimer.ClaimContext(
            records=records,
            reporter=reporter,
            client=self.cp,
            namespace=NAMESPACE,
            build_job=self.manifest,
            post_event=supervisor.post_event,
            claiming_now=runtime.claiming_now,
            hook=hook,
            worker=WORKER,
            metrics=runtime.metrics,
            on_in_progress=supervisor.in_progress,
        )
        return Life(self, runtime, supervisor, ctx, clock)


@dataclass(repr=False)
class Life:
    """One run of the operator process (see the module doc)."""

    world: World
    runtime: Runtime
    supervisor: InFlightSupervisor
    ctx: claimer.ClaimContext
    clock: Clock

    def probe_due(self) -> None:
        """Let the cancellation probe's interval pass (the claim's AcknowledgeJob counts as the
        last probe of a job this process dispatched)."""
        self.clock.advance(self.world.settings.cancel_probe_seconds)

    @property
    def records(self) -> JobRecords:
        return self.runtime.records

    @property
    def reporter(self) -> Reporter:
        return self.runtime.reporter

    async def claim(self, raw: dict[str, Any]) -> claimer.ClaimOutcome:
        return await claimer.process_polled_job(self.ctx, raw)

    async def supervise(self) -> None:
        await self.supervisor.supervise(self.world.index(), self.world.pods_of)


def decoded(secret: Body | None) -> dict[str, str]:
    """The Secret's data, decoded."""
    return {
        key: base64.b64decode(value).decode()
        for key, value in ((secret or {}).get("data") or {}).items()
    }
