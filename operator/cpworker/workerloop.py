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

import asyncio
import functools
import json
import logging
import random
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import kopf

from cpworker import (
    claimer,
    codepipeline,
    events,
    jobdata,
    jobindex,
    jobtemplate,
    kube,
    kubehealth,
    models,
    names,
    results,
    timestamps,
    wakeups,
    workerstatus,
)
from cpworker.inflight import InFlightSupervisor
from cpworker.jobmanifest import WorkerRef, build_job, effective_deadline
from cpworker.poller import Handled, PollLoop, PollOutcome, PollTarget
from cpworker.runtime import ActionTypeKey, RunningWorker, Runtime
from cpworker.settings import OperatorSettings
from cpworker.wakeups import Wakeups

if TYPE_CHECKING:
    from mypy_boto3_codepipeline.type_defs import JobTypeDef

log = logging.getLogger(__name__)

# A budget stretching idle intervals by more than this makes the workers say so.
BUDGET_LIMITED_STRETCH = 1.05
# The longest idle pause while one of the worker's Jobs waits for its continuation job.
CONTINUATION_POLL_SECONDS = 30.0
# How often a new worker looks for kopf's finalizer before its first poll.
FINALIZER_CHECK_SECONDS = 0.2
# How long a new worker waits for kopf's finalizer before it adds the finalizer itself, and
# the longest wait between its own attempts (doubling from the first).
FINALIZER_GRACE_SECONDS = 5.0
FINALIZER_GRACE_MAX_SECONDS = 60.0


@dataclass(frozen=True)
class WorkerView:
    """A worker's validated spec, or why it cannot be served."""

    spec: models.CustomActionWorkerSpec | None
    region: str | None
    problem: str | None


@functools.lru_cache(maxsize=256)
def _template_problems(
    template: str, max_active_deadline_seconds: int, artifacts: str
) -> tuple[str, ...]:
    """The problems of a jobTemplate (canonical JSON, with the spec's artifacts as JSON): a
    fleet's workers mostly share a few templates, and validating one costs milliseconds (its
    schema), so each distinct template is validated once — at a thousand workers, seconds of
    start-up CPU."""
    return tuple(
        jobtemplate.validate_job_template(
            json.loads(template),
            max_active_deadline_seconds=max_active_deadline_seconds,
            artifacts=models.Artifacts.model_validate_json(artifacts),
        )
    )


def view_worker(spec: Mapping[str, Any], settings: OperatorSettings) -> WorkerView:
    """Validate a worker's spec (models + template rules + region) into a WorkerView."""
    try:
        parsed = models.parse_spec(spec)
    except models.InvalidSpecError as exc:
        return WorkerView(None, None, exc.message)
    problems = _template_problems(
        json.dumps(parsed.job_template.model_dump(mode="json", by_alias=True), sort_keys=True),
        settings.default_active_deadline_seconds,
        parsed.artifacts.model_dump_json(by_alias=True),
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
        self.status = workerstatus.WorkerStatus(
            rt.kube, namespace, name, heartbeat_seconds=rt.settings.status_heartbeat_seconds
        )
        self.status.publisher.adopt(status)
        self.supervisor = in_flight_supervisor(rt, namespace, name, uid)
        # What the Kubernetes API did to this worker's claims and supervision (its condition).
        self.kube_health = kubehealth.KubernetesHealth(clock=time.monotonic)
        self.keys = [(namespace, name), (namespace, names.worker_label_value(name))]
        self._view: tuple[object, WorkerView] | None = None
        self._client: codepipeline.CodePipelineClient | None = None
        self.loop = PollLoop(
            client=self.client,
            target=self.target,
            live_jobs=self.live_jobs,
            handle_jobs=self.claim,
            tend=self.supervise,
            report=self.show,
            slow_retry_interval=rt.settings.slow_retry_seconds,
            tend_interval=rt.settings.supervise_interval_seconds,
            # An idle worker still needs rounds while its last one failed: the error stays on
            # its condition until a clean round (after an outage, within seconds, not minutes).
            has_work=lambda: (
                bool(self.jobs())
                or self.rt.sweeper.has_pending()
                or self.kube_health.supervision_failed
            ),
            first_delay=self.first_delay,
            budget_key=self.keys[0],
        )
        # After a hand-over, its continuation job is about to appear: poll for it at once.
        self.supervisor.on_hand_over = self.loop.event_arrived

    # ---- what the loop asks -------------------------------------------------------------

    def view(self) -> WorkerView:
        """The validated spec, recomputed only when the generation changes."""
        generation = self.meta.get("generation")
        if self._view is None or self._view[0] != generation:
            self._view = (generation, view_worker(self.spec, self.rt.settings))
        return self._view[1]

    def jobs(self) -> list[jobindex.JobSummary]:
        """The worker's Jobs, without those known to have vanished in a watch gap."""
        return self.rt.vanished.hide(
            jobindex.worker_jobs(self.index_jobs, self.namespace, self.name)
        )

    def live_jobs(self) -> int:
        return sum(1 for job in self.jobs() if job.live)

    def action_type_key(self) -> ActionTypeKey | None:
        spec = self.view().spec
        if spec is None:
            return None
        a = spec.action_type_id
        return (a.category, a.owner, a.provider, a.version)

    def query_param(self) -> Mapping[str, str]:
        spec = self.view().spec
        return spec.query_param if spec is not None else {}

    def region(self) -> str | None:
        return self.view().region

    def target(self) -> PollTarget | None:
        spec = self.view().spec
        budget = self._client.budget if self._client is not None else None
        if spec is None or spec.paused:
            if budget is not None:
                budget.demand.drop(self.keys[0])
            return None
        woken_by = self.rt.wakeups(self.action_type_key())
        ceiling = wakeups.idle_ceiling(
            float(spec.polling.max_interval_seconds),
            woken_by,
            self.rt.settings.events_idle_ceiling_seconds,
        )
        if any(self._awaits_continuation(job) for job in self.jobs()):
            # No event announces a continuation job: poll for it often enough.
            ceiling = min(ceiling, CONTINUATION_POLL_SECONDS)
        if budget is not None:
            # The budget spaces every worker's idle polls alike when together they would
            # ask for more than it carries (instead of queueing polls for minutes).
            budget.demand.want(self.keys[0], ceiling)
            ceiling *= budget.stretch
        # While events wake the worker, a poll that found nothing goes straight back to the
        # ceiling: the next job announces itself.
        return PollTarget.of(spec, max_interval=ceiling, gradual=woken_by is not Wakeups.EVENTS)

    @staticmethod
    def _awaits_continuation(job: jobindex.JobSummary) -> bool:
        return job.live and job.annotations.get(names.ANNOTATION_RESULT) == names.Result.CONTINUED

    def first_delay(self) -> float:
        """The first poll waits a random part of what the budget needs to serve every worker's
        first poll once: a thousand workers starting together do not queue their polls."""
        budget = self._client.budget if self._client is not None else None
        if budget is None:
            return 0.0
        return random.uniform(0, budget.demand.workers / budget.poll_capacity)  # noqa: S311

    def budget_limited(self) -> bool:
        budget = self._client.budget if self._client is not None else None
        return budget is not None and budget.stretch > BUDGET_LIMITED_STRETCH

    async def client(self) -> codepipeline.CodePipelineClient:
        view = self.view()
        # target() returned a PollTarget, so the view is valid.
        assert view.spec is not None
        assert view.region is not None
        self._client = await self.rt.clients.for_worker(view.region, view.spec.role_arn)
        return self._client

    def probe_action(self, pipeline: str, execution_id: str, stage: str, action: str) -> bool:
        """An event says this action ended: probe its job now, if it runs here."""
        found = False
        for job in self.jobs():
            a = job.annotations
            if (
                a.get(names.ANNOTATION_PIPELINE) == pipeline
                and a.get(names.ANNOTATION_STAGE) == stage
                and a.get(names.ANNOTATION_ACTION) == action
                and a.get(names.ANNOTATION_PIPELINE_EXECUTION_ID, execution_id) == execution_id
            ):
                self.supervisor.probe_soon(job.name)
                found = True
        if found:
            self.loop.supervise_now()
        return found

    # ---- what the loop does -------------------------------------------------------------

    async def claim(self, jobs: Sequence[JobTypeDef]) -> Handled:
        spec = self.view().spec
        assert spec is not None
        worker = WorkerRef(self.name, self.namespace, self.uid)
        settings = self.rt.settings
        failures: list[kube.KubeError] = []

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
            worker=self.name,
            metrics=self.rt.metrics,
            on_kube_error=failures.append,
            on_in_progress=self.supervisor.in_progress,
        )
        outcomes = await claimer.process_polled_jobs(ctx, jobs)
        for outcome in outcomes:
            if outcome is claimer.ClaimOutcome.LOST_RACE:
                await self.status.count("lostRaces")
        if failures:
            self.kube_health.claims_failed(failures[-1])
            # Say so now, not at the next (backed-off) poll.
            await self.publish(PollOutcome(polled=True, jobs=jobs))
            return Handled.BACK_OFF
        self.kube_health.claims_succeeded()
        return Handled.DONE

    async def supervise(self) -> None:
        # The whole index: the supervisor's relist decides what vanished.
        await self.supervisor.supervise(
            jobindex.worker_jobs(self.index_jobs, self.namespace, self.name),
            lambda job: jobindex.job_pods(self.index_pods, self.namespace, job),
        )
        self.kube_health.supervision_round(self.supervisor.kube_error)
        if self.supervisor.claims_recovered:
            # A claim the API broke off went through after all: claims work again.
            self.kube_health.claims_succeeded()
        await self.rt.sweeper.sweep(self.jobs())

    async def show(self, outcome: PollOutcome) -> None:
        action_type = self.action_type_key()
        if (
            outcome.jobs
            and action_type is not None
            and not outcome.woken_by_event
            and not outcome.first  # after a start, jobs that waited for us prove nothing
            and self.rt.wakeups(action_type) is Wakeups.EVENTS
        ):
            self.rt.job_without_event(action_type)
        if outcome.polled:
            if outcome.error is None:
                self.rt.metrics.poll_succeeded(self.namespace, self.name, jobs=len(outcome.jobs))
            else:
                self.rt.metrics.poll_failed(self.namespace, self.name)
        await self.publish(outcome)

    async def publish(self, outcome: PollOutcome) -> None:
        """The worker's status and gauges after a poll (and after claims that failed)."""
        view = self.view()
        await self.status.show(
            problem=view.problem,
            paused=view.spec is not None and view.spec.paused,
            error=outcome.error,
            polled=outcome.polled,
            in_flight=self.live_jobs(),
            generation=self.meta.get("generation"),
            wakeups=self.rt.wakeups(self.action_type_key()),
            budget_limited=self.budget_limited(),
            kube_error=self.kube_health.problem(),
        )
        self.measure()

    def measure(self) -> None:
        """The worker's gauges: readiness, capacity, the oldest job, its deadline and idle
        ceiling (the alerts compare against the last two)."""
        spec = self.view().spec
        live = [job for job in self.jobs() if job.live]
        released = [
            when
            for job in live
            if (when := timestamps.parse(job.annotations.get(names.ANNOTATION_RELEASED_AT)))
        ]
        target = self.target()
        condition = self.status.publisher.ready_condition()
        self.rt.metrics.worker_state(
            self.namespace,
            self.name,
            ready=condition is not None and condition.status == "True",
            reason=condition.reason if condition is not None else "Unknown",
            in_flight=len(live),
            max_in_flight=spec.max_in_flight if spec is not None else 0,
            paused=spec is None or spec.paused,
            oldest_in_flight_since=min(released) if released else None,
            job_deadline_seconds=(
                float(effective_deadline(spec, self.rt.settings)) if spec is not None else None
            ),
            poll_max_interval_seconds=target.max_interval if target is not None else None,
        )

    async def announce_ready(self) -> None:
        """Ready before the first poll where nothing is in doubt: the action type exists (one
        cached ListActionTypes per region serves every worker, not a poll per worker)."""
        view = self.view()
        if view.spec is None or view.spec.paused:
            return
        client = await self.client()
        self.target()  # counts this worker in its budget's demand before its first poll
        try:
            known = await client.action_type(view.spec.action_type_id.model_dump())
        except codepipeline.CodePipelineError:
            return  # cannot tell: the first poll will say
        missing = codepipeline.ActionTypeNotFoundError(
            "ListActionTypes", "ActionTypeNotFoundException", "not among the custom action types"
        )
        await self.status.show(
            problem=None,
            paused=False,
            error=missing if known is None else None,
            polled=False,
            in_flight=self.live_jobs(),
            generation=self.meta.get("generation"),
            wakeups=self.rt.wakeups(self.action_type_key()),
            budget_limited=self.budget_limited(),
            first_poll_pending=known is not None,
        )

    async def until_finalized(self, stopped: kopf.DaemonStopped) -> None:
        """Wait for kopf's finalizer on the worker before dispatching anything: deleted without
        it, the worker would vanish at once and its running Jobs be garbage-collected, with no
        drain. `meta` is kopf's live view of the worker.

        kopf adds the finalizer with its first patch of the worker, and retries a 5xx itself.
        But that patch names the resourceVersion kopf read, so a status write in between makes
        it conflict, and kopf retries only on the worker's next watch event, which an idle
        worker may never have (found by the faults e2e: a worker stayed at "first poll soon"
        for good). So after FINALIZER_GRACE_SECONDS the worker adds it itself, from a fresh
        read, and the wait ends as soon as the server has it: kopf's view of a big fleet lags
        (found at 10,000 workers, where retrying from that view conflicted every time and the
        retries filled the request threads)."""
        since = time.monotonic()
        grace = FINALIZER_GRACE_SECONDS
        while names.FINALIZER not in (self.meta.get("finalizers") or []) and not stopped:
            await stopped.wait(FINALIZER_CHECK_SECONDS)  # a stop ends the wait at once
            if time.monotonic() - since >= grace and not stopped:
                if await self.add_finalizer():
                    return
                since = time.monotonic()
                # A server that refuses keeps refusing for a while: a fleet backs off together.
                grace = min(grace * 2, FINALIZER_GRACE_MAX_SECONDS)

    async def add_finalizer(self) -> bool:
        """Add our finalizer to the worker as the server has it now; True once it is there.

        The patch names the resourceVersion just read, because finalizers are replaced whole:
        another controller's finalizer added in between is kept (the patch conflicts, and the
        next round reads again). False also while the worker is being deleted (none may be
        added then; kopf stops this daemon)."""
        try:
            fresh = await self.rt.kube.get_worker(self.namespace, self.name)
            metadata = fresh.get("metadata") or {}
            finalizers = list(metadata.get("finalizers") or [])
            if names.FINALIZER in finalizers:
                return True
            if metadata.get("deletionTimestamp"):
                return False
            await self.rt.kube.patch_worker_metadata(
                self.namespace,
                self.name,
                {"finalizers": [*finalizers, names.FINALIZER]},
                resource_version=str(metadata.get("resourceVersion") or ""),
            )
        except kube.ConflictError:
            log.info(
                "adding the finalizer to worker %s/%s conflicted: retried",
                self.namespace,
                self.name,
            )
            return False
        except kube.KubeError as exc:
            log.warning(
                "adding the finalizer to worker %s/%s (retried): %s", self.namespace, self.name, exc
            )
            return False
        log.info("added the finalizer to worker %s/%s itself", self.namespace, self.name)
        return True

    async def run(self, stopped: kopf.DaemonStopped) -> None:
        try:
            await self.status.initialise_counters()
        except kube.KubeError as exc:
            # Only cosmetic (0 instead of blank): a refused write must not cost the worker
            # kopf's 60 s daemon back-off; the first count writes the counters anyway.
            log.warning("starting the counters of worker %s/%s: %s", self.namespace, self.name, exc)
        await self.rt.register(
            self, self.keys, on_event=functools.partial(on_action_event, self.rt)
        )

        async def wake_on_stop() -> None:
            await stopped.wait()
            self.loop.wake.set()

        waiter = asyncio.create_task(wake_on_stop())
        try:
            await self.announce_ready()
            await self.until_finalized(stopped)
            await self.loop.run(lambda: bool(stopped))
        finally:
            waiter.cancel()
            self.status.publisher.close()
            if self._client is not None:
                self._client.budget.demand.drop(self.keys[0])
            self.rt.unregister(self.keys)


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
        probe_interval=rt.cancel_probe_seconds,
        metrics=rt.metrics,
        namespace=namespace,
        worker=name,
        vanished=rt.vanished,
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
    indexed = jobindex.worker_jobs(index_jobs, namespace, name)
    jobs = [job for job in rt.vanished.hide(indexed) if job.live]
    keys = {(namespace, name), (namespace, names.worker_label_value(name))}
    if not jobs:
        rt.draining -= keys
        rt.metrics.forget_worker(namespace, name)
        return
    rt.draining |= keys  # its Jobs' events are still ours (serves_job)
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
        rt.draining -= keys
        return
    # Drain: keep reporting (the worker's loop is not running any more: the daemon stopped).
    supervisor = in_flight_supervisor(rt, namespace, name, uid)
    await supervisor.supervise(indexed, lambda job: jobindex.job_pods(index_pods, namespace, job))
    await workerstatus.publish_draining(rt.kube, namespace, name, len(jobs))
    raise kopf.TemporaryError(
        workerstatus.draining_message(len(jobs)),
        delay=max(1.0, rt.settings.supervise_interval_seconds),
    )


async def _report(report: Awaitable[bool], job: jobindex.JobSummary) -> None:
    try:
        await report
    except (codepipeline.CodePipelineError, kube.KubeError) as exc:
        # The supervisor retries a finished Job: it stays `running` until reported.
        log.warning("reporting Job %s/%s failed, will retry: %s", job.namespace, job.name, exc)


def serves_job(rt: Runtime, job: jobindex.JobSummary) -> bool:
    """Whether this operator acts on `job`: always without a worker selector (it serves every
    worker of its namespaces, and reports the Jobs of deleted workers too); with one (a
    shard), only while the Job's worker runs here.

    Shards share namespaces, so every shard sees every labelled Job there; without this, two
    shards would both report a finished Job (CodePipeline would keep the first result, at the
    price of a second Put and a race on every job). A shard's Job whose worker is not
    running here right now — being deleted (its finalizer drains it), or not started yet —
    is reported by that worker's supervision, the level-based safety net, within seconds.
    (A kopf index of the served workers would say it too, but costs hundreds of MiB and much
    CPU at a thousand workers: kopf re-indexes on every status write.)
    """
    if rt.settings.worker_selector is None:
        return True
    key = (job.namespace, job.worker)
    return key in rt.workers or key in rt.draining


async def job_changed(
    rt: Runtime,
    event_type: str | None,
    body: Mapping[str, Any],
    pods: Sequence[jobindex.PodSummary] = (),
) -> None:
    """A labelled Job changed: report it when it finished (or vanished); wake its worker.
    `pods`: its pods as the pod index holds them (the last state of those already gone).
    Jobs of workers another shard serves are left to that shard (`serves_job`)."""
    job = jobindex.summarize_job(body)
    if not serves_job(rt, job):
        return
    unsettled = (
        job.phase == names.Phase.RUNNING
        and job.annotations.get(names.ANNOTATION_RESULT) != names.Result.CONTINUED
    )
    ended = event_type == "DELETED" or job.finished is not None
    if unsettled and ended:
        if event_type == "DELETED":
            # Deleted by someone else before it was reported: say so, do not let
            # CodePipeline wait for its timeout (then forgotten, below: so not in the
            # background).
            await _report(rt.reporter.vanished(job), job)
        else:
            # Not in the handler: kopf runs a bounded number of handlers at once
            # (KOPF_OBJECT_WORKERS), and every event of an object waiting for a slot is kept
            # in full meanwhile. A report holding a slot for its six API calls made a
            # 1,000-job burst peak at 526 MiB, against 250 without the bound.
            rt.spawn(_report(rt.reporter.finished(job, pods), job), name=f"report {job.name}")
    if event_type == "DELETED":
        rt.reporter.forget(job.name)
        await rt.sweeper.job_gone(body)
    worker = rt.workers.get((job.namespace, job.worker))
    if worker is None:
        return
    if ended:
        worker.loop.poll_now()  # capacity may have freed up
    else:
        # A claim the faults broke off leaves a Job for recovery; the worker's last round may
        # have run before the index held it, and an idle worker's next is a minute away.
        worker.loop.job_changed()


async def pod_changed(rt: Runtime, event_type: str | None, body: Mapping[str, Any]) -> None:
    """A labelled pod changed: what the Job's report needs of a pod that is about to go is
    recorded on its Job, once each: a pod ended from outside (evicted, preempted, rejected),
    which the Job controller lets be deleted as soon as it counted it (results.pod_end_record),
    and the final state of a pod being deleted once its push sidecar's verdict is in
    (results.stopped_pod_record)."""
    metadata = body.get("metadata") or {}
    uid = str(metadata.get("uid", ""))
    job = jobindex.owning_job(body)
    namespace = str(metadata.get("namespace", ""))
    recorders = (
        ("pod-ended", results.pod_end_record(body), rt.records.record_pod_end),
        # A pod being deleted whose push verdict is in: gone before the Job is reported.
        ("stopped-pod", results.stopped_pod_record(body), rt.records.record_stopped_pod),
    )
    for kind, record, write in recorders:
        key = f"{uid}/{kind}"
        if record is None or job is None or key in rt.recorded_pod_ends:
            continue
        try:
            await write(namespace, job, record)
        except kube.KubeError as exc:
            log.warning(
                "recording the %s of pod %s on Job %s: %s", kind, metadata.get("name"), job, exc
            )
        else:
            rt.recorded_pod_ends.add(key)
    if event_type == "DELETED":
        rt.recorded_pod_ends.difference_update({f"{uid}/pod-ended", f"{uid}/stopped-pod"})


async def on_action_event(rt: Runtime, event: events.ActionEvent) -> None:
    """A CodePipeline action event: wake the workers that can take its job, or probe the job
    whose action ended. Harmless when duplicated, late, or for no worker of ours."""
    if event.action_type[1] != "Custom":
        return
    workers = [
        w
        for w in rt.running_workers()
        if w.action_type_key() == event.action_type
        and (not event.region or w.region() in (None, event.region))
    ]
    if event.state == events.STARTED:
        rt.event_seen(event.action_type)
        for worker in await workers_for(workers, event):
            worker.loop.event_arrived()
            rt.metrics.event_acted_on(worker.namespace, worker.name)
    elif event.state in events.ENDED_STATES:
        for worker in workers:
            worker.probe_action(event.pipeline, event.execution_id, event.stage, event.action)


async def workers_for(
    workers: list[RunningWorker], event: events.ActionEvent
) -> list[RunningWorker]:
    """The workers whose queryParam the event's action matches (its configuration, from
    GetPipeline, cached per pipeline version); all of them when that cannot be read.

    Without this, one event of an action type served by a thousand workers (one per pool)
    would wake all of them to poll.
    """
    if not workers or not any(w.query_param() for w in workers):
        return workers
    client = await workers[0].client()
    configuration = await client.action_configuration(
        event.pipeline, event.pipeline_version, event.stage, event.action
    )
    if configuration is None:
        return workers
    return [
        w
        for w in workers
        if all(configuration.get(key) == value for key, value in w.query_param().items())
    ]
