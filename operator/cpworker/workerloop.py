"""One CustomActionWorker's life in the operator: its poll loop, its drain, its Job events.

kopf starts one daemon per worker (handlers.py); the daemon runs a `Worker` here until kopf
stops it. Each cycle of the worker's loop (poller.PollLoop):

    supervise in-flight Jobs (inflight) ─► poll within free capacity (poller)
        ─► claim what the poll returned (claimer) ─► show the outcome (workerstatus)

Deleting a worker drains its in-flight jobs (deletionPolicy Drain) or fails them (Cancel).
A labelled Job's watch event reports it when it finished or vanished (reporter) and wakes its
worker, whose capacity may have freed up.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import kopf

from cpworker import (
    claimer,
    codepipeline,
    jobdata,
    jobindex,
    jobtemplate,
    kube,
    models,
    names,
    timestamps,
    workerstatus,
)
from cpworker.inflight import InFlightSupervisor
from cpworker.jobmanifest import WorkerRef, build_job
from cpworker.poller import PollLoop, PollOutcome, PollTarget
from cpworker.runtime import Runtime
from cpworker.settings import OperatorSettings

if TYPE_CHECKING:
    from mypy_boto3_codepipeline.type_defs import JobTypeDef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerView:
    """A worker's validated spec, or why it cannot be served."""

    spec: models.CustomActionWorkerSpec | None
    region: str | None
    problem: str | None


def view_worker(spec: Mapping[str, Any], settings: OperatorSettings) -> WorkerView:
    """Validate a worker's spec (models + template rules + region) into a WorkerView."""
    try:
        parsed = models.parse_spec(spec)
    except models.InvalidSpecError as exc:
        return WorkerView(None, None, exc.message)
    problems = jobtemplate.validate_job_template(
        parsed.job_template, max_active_deadline_seconds=settings.default_active_deadline_seconds
    )
    if problems:
        return WorkerView(None, None, "; ".join(problems))
    region = parsed.effective_region(settings.default_region)
    if region is None:
        return WorkerView(
            None, None, "no region: set spec.region or the operator's CPWORKER_DEFAULT_REGION"
        )
    return WorkerView(parsed, region, None)


def worker_reference(namespace: str, name: str, uid: str) -> dict[str, Any]:
    """A worker as an event's involvedObject."""
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {"name": name, "namespace": namespace, "uid": uid},
    }


class Worker:
    """One CustomActionWorker while its daemon runs: its spec, its Jobs, its loop."""

    def __init__(
        self,
        rt: Runtime,
        *,
        spec: Mapping[str, Any],
        meta: Mapping[str, Any],
        status: Mapping[str, Any],
        namespace: str,
        name: str,
        uid: str,
        index_jobs: Mapping[Any, Any],
        index_pods: Mapping[Any, Any],
    ) -> None:
        self.rt = rt
        self.spec = spec  # kopf's live view: always the current spec
        self.meta = meta
        self.namespace = namespace
        self.name = name
        self.uid = uid
        self.index_jobs = index_jobs
        self.index_pods = index_pods
        self.status = workerstatus.WorkerStatus(rt.kube, namespace, name)
        self.status.publisher.adopt(status)
        self.supervisor = in_flight_supervisor(rt, namespace, name, uid)
        self._view: tuple[object, WorkerView] | None = None
        self.loop = PollLoop(
            client=self.client,
            target=self.target,
            live_jobs=self.live_jobs,
            handle_jobs=self.claim,
            tend=self.supervise,
            report=self.show,
            slow_retry_interval=rt.settings.slow_retry_seconds,
            tend_interval=rt.settings.supervise_interval_seconds,
        )

    # ---- what the loop asks -------------------------------------------------------------

    def view(self) -> WorkerView:
        """The validated spec, recomputed only when the generation changes."""
        generation = self.meta.get("generation")
        if self._view is None or self._view[0] != generation:
            self._view = (generation, view_worker(self.spec, self.rt.settings))
        return self._view[1]

    def jobs(self) -> list[jobindex.JobSummary]:
        return jobindex.worker_jobs(self.index_jobs, self.namespace, self.name)

    def live_jobs(self) -> int:
        return sum(1 for job in self.jobs() if job.live)

    def target(self) -> PollTarget | None:
        spec = self.view().spec
        if spec is None or spec.paused:
            return None
        return PollTarget.of(spec)

    async def client(self) -> codepipeline.CodePipelineClient:
        view = self.view()
        # target() returned a PollTarget, so the view is valid.
        assert view.spec is not None
        assert view.region is not None
        return await self.rt.clients.for_worker(view.region, view.spec.role_arn)

    # ---- what the loop does -------------------------------------------------------------

    async def claim(self, jobs: Sequence[JobTypeDef]) -> None:
        spec = self.view().spec
        assert spec is not None
        worker = WorkerRef(self.name, self.namespace, self.uid)
        settings = self.rt.settings

        def build(job: jobdata.Job, secrets: frozenset[str]) -> dict[str, Any]:
            return build_job(
                worker=worker,
                spec=spec,
                job=job,
                secret_property_names=secrets,
                settings=settings,
                now=timestamps.now(),
            )

        ctx = claimer.ClaimContext(
            records=self.rt.records,
            reporter=self.rt.reporter,
            client=await self.client(),
            namespace=self.namespace,
            build_job=build,
            post_event=self.supervisor.post_event,
            claiming_now=self.rt.claiming_now,
            hook=self.rt.hook,
        )
        for outcome in await claimer.process_polled_jobs(ctx, jobs):
            if outcome is claimer.ClaimOutcome.LOST_RACE:
                await self.status.count("lostRaces")

    async def supervise(self) -> None:
        await self.supervisor.supervise(
            self.jobs(), lambda job: jobindex.job_pods(self.index_pods, self.namespace, job)
        )

    async def show(self, outcome: PollOutcome) -> None:
        view = self.view()
        await self.status.show(
            problem=view.problem,
            paused=view.spec is not None and view.spec.paused,
            error=outcome.error,
            polled=outcome.polled,
            in_flight=self.live_jobs(),
            generation=self.meta.get("generation"),
        )

    async def run(self, stopped: kopf.DaemonStopped) -> None:
        await self.status.initialise_counters()
        keys = [(self.namespace, self.name), (self.namespace, names.worker_label_value(self.name))]
        for key in keys:
            self.rt.loops[key] = self.loop
        try:
            await self.loop.run(lambda: bool(stopped))
        finally:
            for key in keys:
                self.rt.loops.pop(key, None)


def in_flight_supervisor(rt: Runtime, namespace: str, name: str, uid: str) -> InFlightSupervisor:
    """The supervisor of one worker's in-flight Jobs, posting events on that worker."""
    ref = worker_reference(namespace, name, uid)

    async def post(reason: str, message: str, type_: str) -> None:
        await rt.kube.post_event(ref, reason, message, type_=type_)

    return InFlightSupervisor(
        records=rt.records,
        reporter=rt.reporter,
        clients=rt.clients,
        settings=rt.settings,
        post_event=post,
        claiming_now=rt.claiming_now,
    )


async def drain_or_cancel(
    rt: Runtime,
    *,
    spec: Mapping[str, Any],
    namespace: str,
    name: str,
    uid: str,
    body: Mapping[str, Any],
    index_jobs: Mapping[Any, Any],
    index_pods: Mapping[Any, Any],
) -> None:
    """Finalizer: Drain waits for in-flight jobs (bounded by their deadlines); Cancel fails them.

    Escape hatch (documented): `kubectl patch caw NAME --type=json -p
    '[{"op":"remove","path":"/metadata/finalizers"}]'` releases a stuck worker; its Jobs are
    then garbage-collected and CodePipeline times their jobs out.
    """
    jobs = [job for job in jobindex.worker_jobs(index_jobs, namespace, name) if job.live]
    if not jobs:
        return
    if str(spec.get("deletionPolicy") or "Drain") == "Cancel":
        message = (
            f"the CustomActionWorker {namespace}/{name} was deleted with deletionPolicy Cancel"
        )
        for job in jobs:
            await rt.reporter.cancel(job, message)
        await rt.kube.post_event(
            body,
            "JobsCancelled",
            f"{len(jobs)} in-flight job(s) failed and deleted",
            type_="Warning",
        )
        return
    # Drain: keep reporting (the worker's loop is not running any more: the daemon stopped).
    supervisor = in_flight_supervisor(rt, namespace, name, uid)
    await supervisor.supervise(jobs, lambda job: jobindex.job_pods(index_pods, namespace, job))
    await workerstatus.publish_draining(rt.kube, namespace, name, len(jobs))
    raise kopf.TemporaryError(
        workerstatus.draining_message(len(jobs)),
        delay=max(1.0, rt.settings.supervise_interval_seconds),
    )


async def job_changed(rt: Runtime, event_type: str | None, body: Mapping[str, Any]) -> None:
    """A labelled Job changed: report it when it finished (or vanished); wake its worker."""
    job = jobindex.summarize_job(body)
    unsettled = (
        job.phase == names.Phase.RUNNING
        and job.annotations.get(names.ANNOTATION_RESULT) != names.Result.CONTINUED
    )
    ended = event_type == "DELETED" or job.finished is not None
    if unsettled and ended:
        try:
            if event_type == "DELETED":
                # Deleted by someone else before it was reported: say so, do not let
                # CodePipeline wait for its timeout.
                await rt.reporter.vanished(job)
            else:
                await rt.reporter.finished(job)
        except (codepipeline.CodePipelineError, kube.KubeError) as exc:
            # The supervisor retries a finished Job: it stays `running` until reported.
            log.warning("reporting Job %s/%s failed, will retry: %s", job.namespace, job.name, exc)
    if event_type == "DELETED":
        rt.reporter.forget(job.name)
    loop = rt.loops.get((job.namespace, job.worker))
    if loop is not None and ended:
        loop.wake.set()  # capacity may have freed up
