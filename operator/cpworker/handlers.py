"""kopf wiring only: every handler delegates to a stage module.

Handlers are registered on a registry built per operator (`build_registry`), and all state
lives in the `Runtime` passed in kopf's `memo`, so that two operators can run in one process
(tests) without sharing anything.

- Jobs and Pods: `kopf.index` + `kopf.on.event` with label filters. Never on.create/on.update
  on Jobs: kopf would write its annotations and finalizers onto them.
- CustomActionWorker: create/resume/update validate the spec (event + wake the loop); one
  daemon per worker runs the poll loop (poller) and tending; delete honours deletionPolicy
  behind our finalizer `cpworker.io/finalizer`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import kopf

from cpworker import (
    claimer,
    codepipeline,
    jobdata,
    kube,
    logging_setup,
    manifests,
    models,
    names,
    poller,
    reporter,
    results,
    tending,
    watcher,
)
from cpworker.settings import OperatorSettings

if TYPE_CHECKING:
    from mypy_boto3_codepipeline.type_defs import ActionTypeIdTypeDef, JobTypeDef

log = logging.getLogger(__name__)

WORKERS = (names.GROUP, names.VERSION, names.PLURAL)
MANAGED = {names.LABEL_MANAGED_BY: names.MANAGED_BY_VALUE}
# Environment variable naming a stage at which the operator exits abruptly: restart-safety
# tests only (the stages call `Runtime.hook`). Never set in production.
CRASH_AT_ENV = "CPWORKER_TEST_CRASH_AT"
CRASH_EXIT_CODE = 86


@dataclass
class Runtime:
    """Everything the handlers share for one operator instance (kept in kopf's memo)."""

    settings: OperatorSettings
    executor: concurrent.futures.ThreadPoolExecutor
    kube: kube.KubeClient
    clients: codepipeline.CodePipelineClients
    loops: dict[tuple[str, str], poller.PollLoop] = field(default_factory=dict)
    claiming_now: set[str] = field(default_factory=set)
    guard: reporter.ReportGuard = field(default_factory=reporter.ReportGuard)
    crash_at: str | None = None

    @classmethod
    def create(
        cls,
        settings: OperatorSettings,
        *,
        kubeconfig: str | None = None,
        crash_at: str | None = None,
    ) -> Runtime:
        executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.executor_threads, thread_name_prefix="cpworker-io"
        )
        api_client = kube.load_api_client(kubeconfig)
        options = codepipeline.ClientOptions(
            rate_per_second=settings.rate_per_second, burst=settings.rate_burst
        )
        return cls(
            settings=settings,
            executor=executor,
            kube=kube.KubeClient(api_client, executor),
            clients=codepipeline.CodePipelineClients(executor, options),
            # A crashed reporter's claim expires after a few tending rounds (at most 30 s).
            guard=reporter.ReportGuard(
                lease_seconds=max(2.0, min(30.0, 4 * settings.cancel_probe_seconds))
            ),
            crash_at=crash_at if crash_at is not None else os.environ.get(CRASH_AT_ENV),
        )

    def hook(self, stage: str) -> None:
        """Stage boundary: exits abruptly when a restart test asked for it."""
        if self.crash_at and self.crash_at == stage:
            log.warning("crash requested at %s: exiting", stage)
            logging.shutdown()
            os._exit(CRASH_EXIT_CODE)

    def tending_settings(self) -> tending.TendingSettings:
        s = self.settings
        return tending.TendingSettings(
            credentials_refresh_seconds=s.credentials_refresh_seconds,
            cancel_probe_seconds=s.cancel_probe_seconds,
            never_started_grace_seconds=s.never_started_grace_seconds,
            continuation_after_seconds=s.continuation_after_seconds,
            # A claim takes a few calls; a claiming Job older than this was abandoned.
            claim_recovery_age_seconds=min(30.0, s.cancel_probe_seconds),
            finished_job_ttl_seconds=s.finished_job_ttl_seconds,
        )

    def tend_interval(self) -> float:
        s = self.settings
        return max(0.2, min(5.0, s.cancel_probe_seconds, s.never_started_grace_seconds / 2))

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def kopf_settings(settings: kopf.OperatorSettings, ours: OperatorSettings) -> None:
    """Our own finalizer and annotation prefix, quiet event posting, peering."""
    settings.persistence.finalizer = names.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=names.KOPF_ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=names.KOPF_ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    # kopf turns handler log lines into Events; ours are posted explicitly.
    settings.posting.level = logging.WARNING
    settings.peering.priority = ours.peering_priority
    # Server-side selection: the operator never receives (or keeps) other people's Jobs and
    # Pods, which bounds memory in busy clusters (the handlers' label filters stay as well).
    managed = f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY_VALUE}"
    settings.watching.label_selectors["batch", "v1", "jobs"] = managed
    settings.watching.label_selectors["v1", "pods"] = managed
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330


# --------------------------------------------------------------------------------------------
# Per-worker plumbing (pure glue between kopf's view of a worker and the stages)
# --------------------------------------------------------------------------------------------


@dataclass
class WorkerBuilder:
    """claimer.Builder for one worker: binds its spec and the operator settings."""

    worker: manifests.WorkerRef
    spec: models.CustomActionWorkerSpec
    settings: OperatorSettings

    def job(self, job: jobdata.Job, secret: codepipeline.SecretProperties) -> kube.Body:
        return manifests.build_job(
            worker=self.worker,
            spec=self.spec,
            job=job,
            secret_property_names=tending.secret_names_for(job.data, secret),
            settings=self.settings,
            now=dt.datetime.now(dt.UTC),
        )

    def secret(
        self, job: jobdata.Job, secret: codepipeline.SecretProperties, job_name: str, job_uid: str
    ) -> kube.Body:
        # Belt and braces: the log filter masks these values should one ever reach a log line.
        logging_setup.SECRETS.add(secret_values_of(job, secret))
        return manifests.build_secret(
            job_name=job_name,
            namespace=self.worker.namespace,
            job_uid=job_uid,
            worker_name=self.worker.name,
            job=job,
            secret_property_names=tending.secret_names_for(job.data, secret),
        )

    def continuation_token(self, job_name: str, job_uid: str) -> str:
        return manifests.continuation_token(job_name, job_uid, self.worker.namespace)

    def continued_job_name(self, token: str) -> tuple[str, str] | None:
        ref = manifests.parse_continuation_token(token)
        if ref is None or (ref.namespace and ref.namespace != self.worker.namespace):
            return None
        return (ref.job_name, ref.job_uid)


def secret_values_of(job: jobdata.Job, secret: codepipeline.SecretProperties) -> list[str]:
    """The job's secret configuration values and artifact secret key and token."""
    values = [
        value.get_secret_value()
        for key, value in job.data.configuration().items()
        if secret.is_secret(key)
    ]
    creds = job.data.artifact_credentials
    if creds is not None:
        values += [
            creds.secret_access_key.get_secret_value(),
            creds.session_token.get_secret_value(),
        ]
    return values


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
    problems = manifests.validate_job_template(
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


def poll_target(spec: models.CustomActionWorkerSpec, live: int) -> poller.PollTarget:
    action_type: ActionTypeIdTypeDef = spec.action_type_id.model_dump()  # type: ignore[assignment]
    return poller.PollTarget(
        action_type_id=action_type,
        query_param=dict(spec.query_param) or None,
        max_in_flight=spec.max_in_flight,
        max_batch_size=max(1, spec.batch_size(live))
        if spec.max_batch_size is None
        else (spec.max_batch_size),
        min_interval=float(spec.polling.min_interval_seconds),
        max_interval=float(spec.polling.max_interval_seconds),
    )


def worker_jobs(index: kopf.Index[Any, Any], namespace: str, name: str) -> list[watcher.JobSummary]:
    key = (namespace, names.worker_label_value(name))
    return list(index[key]) if key in index else []


def job_pods(
    index: kopf.Index[Any, Any], namespace: str, job_name: str
) -> list[watcher.PodSummary]:
    key = (namespace, job_name)
    return list(index[key]) if key in index else []


async def pods_from_api(rt: Runtime, job: watcher.JobSummary) -> list[watcher.PodSummary]:
    """A Job's pods, fresh from the API (the pod index may lag behind the Job's end)."""
    selector = f"{names.LABEL_WORKER}={names.worker_label_value(job.worker)}"
    pods = await rt.kube.list_pods(job.namespace, selector)
    return [watcher.summarize_pod(p) for p in pods if watcher.owning_job(p) == job.name]


def make_tender(rt: Runtime, namespace: str, name: str, uid: str) -> tending.Tender:
    ref = {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {"name": name, "namespace": namespace, "uid": uid},
    }

    async def post(reason: str, message: str, type_: str) -> None:
        await rt.kube.post_event(ref, reason, message, type_=type_)

    async def list_pods(job: watcher.JobSummary) -> list[watcher.PodSummary]:
        return await pods_from_api(rt, job)

    return tending.Tender(
        kube=rt.kube,
        clients=rt.clients,
        settings=rt.tending_settings(),
        post_event=post,
        claiming_now=rt.claiming_now,
        guard=rt.guard,
        list_pods=list_pods,
        hook=rt.hook,
    )


# --------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------


def build_registry() -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(id="login", registry=registry)
    def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
        """kopf talks to the API with the same kubeconfig / in-cluster identity as we do."""
        rt: Runtime = memo["runtime"]
        info: kopf.ConnectionInfo = kube.connection_info(rt.kube.configuration)
        return info

    @kopf.index("batch", "v1", "jobs", id="cpw_jobs", labels=MANAGED, registry=registry)
    def cpw_jobs(body: kopf.Body, **_: Any) -> dict[tuple[str, str], watcher.JobSummary]:
        return {watcher.job_index_key(body): watcher.summarize_job(body)}

    @kopf.index("", "v1", "pods", id="cpw_pods", labels=MANAGED, registry=registry)
    def cpw_pods(body: kopf.Body, **_: Any) -> dict[tuple[str, str], watcher.PodSummary]:
        job = watcher.owning_job(body)
        if job is None:
            return {}
        return {(str(body.metadata.namespace), job): watcher.summarize_pod(body)}

    @kopf.on.event("batch", "v1", "jobs", id="job_event", labels=MANAGED, registry=registry)
    async def job_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:  # noqa: A002
        await on_job_event(memo["runtime"], type, body)

    @kopf.on.resume(*WORKERS, id="validate", registry=registry)
    @kopf.on.create(*WORKERS, id="validate", registry=registry)
    @kopf.on.update(*WORKERS, id="validate", registry=registry)
    async def worker_changed(
        *,
        spec: kopf.Spec,
        namespace: str | None,
        name: str,
        body: kopf.Body,
        memo: kopf.Memo,
        **_: Any,
    ) -> None:
        rt: Runtime = memo["runtime"]
        view = view_worker(spec, rt.settings)
        loop = rt.loops.get((namespace or "", name))
        if loop is not None:
            loop.wake.set()
        if view.problem is not None:
            await rt.kube.post_event(body, "InvalidSpec", view.problem[:1024], type_="Warning")
            # Permanent: retrying cannot fix a spec; the next edit triggers this again.
            raise kopf.PermanentError(f"invalid spec: {view.problem[:500]}")
        if view.spec is not None:
            for warning in models.spec_warnings(view.spec):
                await rt.kube.post_event(body, "SpecWarning", warning[:1024], type_="Warning")

    @kopf.daemon(
        *WORKERS,
        id="poll",
        registry=registry,
        # The loop checks `stopped` at least every second: let it finish its step.
        cancellation_backoff=2.0,
        cancellation_timeout=10.0,
    )
    async def worker_daemon(
        *,
        stopped: kopf.DaemonStopped,
        spec: kopf.Spec,
        meta: kopf.Meta,
        status: kopf.Status,
        namespace: str | None,
        name: str,
        uid: str,
        memo: kopf.Memo,
        **indexes: Any,
    ) -> None:
        await run_worker(
            memo["runtime"],
            stopped=stopped,
            spec=spec,
            meta=meta,
            status=status,
            namespace=namespace or "",
            name=name,
            uid=uid,
            index_jobs=indexes["cpw_jobs"],
            index_pods=indexes["cpw_pods"],
        )

    @kopf.on.delete(*WORKERS, id="finalize", registry=registry)
    async def worker_deleted(
        *,
        spec: kopf.Spec,
        namespace: str | None,
        name: str,
        uid: str,
        body: kopf.Body,
        memo: kopf.Memo,
        **indexes: Any,
    ) -> None:
        await drain_or_cancel(
            memo["runtime"],
            spec=spec,
            namespace=namespace or "",
            name=name,
            uid=uid,
            body=body,
            index_jobs=indexes["cpw_jobs"],
            index_pods=indexes["cpw_pods"],
        )

    @kopf.on.probe(id="kubernetes_api", registry=registry)
    async def kubernetes_api(memo: kopf.Memo, **_: Any) -> str:
        """Liveness: the API answers through the operator's own client and executor."""
        rt: Runtime = memo["runtime"]
        version = await rt.kube.request("GET", "/version")
        return str(version.get("gitVersion", "ok"))

    @kopf.on.probe(id="workers", registry=registry)
    def workers(memo: kopf.Memo, **_: Any) -> int:
        rt: Runtime = memo["runtime"]
        return len(rt.loops)

    @kopf.on.cleanup(id="cleanup", registry=registry)
    def cleanup(memo: kopf.Memo, **_: Any) -> None:
        rt: Runtime = memo["runtime"]
        rt.close()

    return registry


async def on_job_event(rt: Runtime, event_type: str | None, body: kopf.Body) -> None:
    """A labelled Job changed: report it when it finished (or vanished); wake its worker."""
    job = watcher.summarize_job(body)
    loop = rt.loops.get((job.namespace, job.worker))
    unsettled = (
        job.phase == names.Phase.RUNNING
        and job.annotations.get(names.ANNOTATION_RESULT) != names.Result.CONTINUED
    )
    if unsettled and (event_type == "DELETED" or job.finished is not None):
        tender = make_tender(rt, job.namespace, job.worker, "")
        try:
            if event_type == "DELETED":
                # Deleted by someone else before it was reported: say so, do not let
                # CodePipeline wait for its timeout.
                await tender.report_vanished(job)
            else:
                await tender.report_finished(job)
        except (codepipeline.CodePipelineError, kube.KubeError) as exc:
            # Tending retries a finished Job: it stays `running` until reported.
            log.warning("reporting Job %s/%s failed, will retry: %s", job.namespace, job.name, exc)
    if event_type == "DELETED":
        rt.guard.forget(job.name)
    if loop is not None and (event_type == "DELETED" or job.finished is not None):
        loop.wake.set()  # capacity may have freed up


# --------------------------------------------------------------------------------------------
# The worker daemon and deletion, as plain functions (handlers above only forward)
# --------------------------------------------------------------------------------------------


async def run_worker(  # noqa: PLR0915 - one closure per collaborator of the poll loop
    rt: Runtime,
    *,
    stopped: kopf.DaemonStopped,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    namespace: str,
    name: str,
    uid: str,
    index_jobs: kopf.Index[Any, Any],
    index_pods: kopf.Index[Any, Any],
) -> None:
    settings = rt.settings
    ref = {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {"name": name, "namespace": namespace, "uid": uid},
    }

    async def post(reason: str, message: str, type_: str) -> None:
        await rt.kube.post_event(ref, reason, message, type_=type_)

    async def write_status(patch: dict[str, Any]) -> None:
        await rt.kube.patch_worker_status(namespace, name, patch)

    publisher = poller.StatusPublisher(write_status)
    publisher.adopt(status)
    await reporter.initialise_counters(rt.kube, namespace, name)
    tender = make_tender(rt, namespace, name, uid)
    cache: dict[str, Any] = {}

    def current() -> WorkerView:
        generation = meta.get("generation")
        if cache.get("generation") != generation or "view" not in cache:
            cache["generation"] = generation
            cache["view"] = view_worker(spec, settings)
        view: WorkerView = cache["view"]
        return view

    def live_jobs() -> int:
        return sum(1 for job in worker_jobs(index_jobs, namespace, name) if job.live)

    def target() -> poller.PollTarget | None:
        view = current()
        if view.spec is None or view.spec.paused:
            return None
        return poll_target(view.spec, live_jobs())

    async def client() -> codepipeline.CodePipelineClient:
        view = current()
        # target() returned a PollTarget, so the view is valid.
        assert view.spec is not None
        assert view.region is not None
        return await rt.clients.for_worker(view.region, view.spec.role_arn)

    async def handle_jobs(jobs: Sequence[JobTypeDef]) -> None:
        view = current()
        assert view.spec is not None
        ctx = claimer.ClaimContext(
            kube=rt.kube,
            client=await client(),
            namespace=namespace,
            build=WorkerBuilder(manifests.WorkerRef(name, namespace, uid), view.spec, settings),
            post_event=post,
            claiming_now=rt.claiming_now,
            hook=rt.hook,
        )
        outcomes = await claimer.process_polled_jobs(ctx, jobs)
        for outcome in outcomes:
            if outcome is claimer.ClaimOutcome.LOST_RACE:
                await reporter.increment_counter(rt.kube, namespace, name, "lostRaces")

    async def tend() -> None:
        jobs = worker_jobs(index_jobs, namespace, name)
        await tender.tend(jobs, lambda job_name: job_pods(index_pods, namespace, job_name))

    async def report(outcome: poller.PollOutcome) -> None:
        view = current()
        generation = meta.get("generation")
        in_flight = live_jobs()
        if view.problem is not None:
            await publisher.publish(
                ready=False,
                reason=models.Reason.INVALID_SPEC,
                message=view.problem,
                generation=generation,
                in_flight=in_flight,
            )
        elif view.spec is not None and view.spec.paused:
            await publisher.publish(
                ready=False,
                reason=models.Reason.PAUSED,
                message=f"spec.paused is true: not polling; {in_flight} "
                "job(s) in flight run to the end",
                generation=generation,
                in_flight=in_flight,
            )
        elif outcome.error is not None:
            reason, message = poller.condition_for_error(outcome.error)
            await publisher.publish(
                ready=False,
                reason=reason,
                message=message,
                generation=generation,
                in_flight=in_flight,
                error=(reason, message),
            )
        else:
            message = (
                "polling for jobs"
                if outcome.polled
                else "at capacity (maxInFlight reached): waiting for jobs to finish"
            )
            await publisher.publish(
                ready=True,
                reason=models.Reason.POLLING,
                message=message,
                generation=generation,
                in_flight=in_flight,
                polled_ok=outcome.polled,
            )

    loop = poller.PollLoop(
        client=client,
        target=target,
        live_jobs=live_jobs,
        handle_jobs=handle_jobs,
        tend=tend,
        report=report,
        slow_retry_interval=60.0,
        tend_interval=rt.tend_interval(),
    )
    rt.loops[(namespace, names.worker_label_value(name))] = loop
    rt.loops[(namespace, name)] = loop
    try:
        await loop.run(lambda: bool(stopped))
    finally:
        rt.loops.pop((namespace, name), None)
        rt.loops.pop((namespace, names.worker_label_value(name)), None)


async def drain_or_cancel(
    rt: Runtime,
    *,
    spec: Mapping[str, Any],
    namespace: str,
    name: str,
    uid: str,
    body: kopf.Body,
    index_jobs: kopf.Index[Any, Any],
    index_pods: kopf.Index[Any, Any],
) -> None:
    """Finalizer: Drain waits for in-flight jobs (bounded by their deadlines); Cancel fails them.

    Escape hatch (documented): `kubectl patch caw NAME --type=json -p
    '[{"op":"remove","path":"/metadata/finalizers"}]'` releases a stuck worker; its Jobs are
    then garbage-collected and CodePipeline times their jobs out.
    """
    policy = str(spec.get("deletionPolicy") or "Drain")
    jobs = [job for job in worker_jobs(index_jobs, namespace, name) if job.live]
    if not jobs:
        return
    tender = make_tender(rt, namespace, name, uid)
    if policy == "Cancel":
        message = (
            f"the CustomActionWorker {namespace}/{name} was deleted with deletionPolicy Cancel"
        )
        for job in jobs:
            await cancel_one(rt, job, message)
        await rt.kube.post_event(
            body,
            "JobsCancelled",
            f"{len(jobs)} in-flight job(s) failed and deleted",
            type_="Warning",
        )
        return
    # Drain: keep reporting (tending is not running any more: the daemon stopped).
    await tender.tend(jobs, lambda job_name: job_pods(index_pods, namespace, job_name))
    message = f"draining: {len(jobs)} job(s) in flight; they end by their activeDeadlineSeconds"
    now = dt.datetime.now(dt.UTC)
    status = models.CustomActionWorkerStatus(
        conditions=[
            models.ready_condition(
                ready=False, reason=models.Reason.DELETING, message=message, now=now
            )
        ],
        in_flight=len(jobs),
    )
    with contextlib.suppress(kube.KubeError):
        await rt.kube.patch_worker_status(namespace, name, models.status_patch(status))
    raise kopf.TemporaryError(message, delay=max(1.0, rt.tend_interval()))


async def cancel_one(rt: Runtime, job: watcher.JobSummary, message: str) -> None:
    """Fail one in-flight job in CodePipeline and delete its Kubernetes Job."""
    if job.phase == names.Phase.RUNNING and job.job_id:
        client = await rt.clients.for_worker(
            job.annotations.get(names.ANNOTATION_REGION, ""),
            job.annotations.get(names.ANNOTATION_ROLE_ARN),
        )
        call = results.failure_result(
            job_id=job.job_id,
            failure_type="JobFailed",
            message=message,
            external_execution_id=results.external_execution_id(job.namespace, job.name),
        )
        await reporter.send(client, call)
    await rt.kube.patch_job(
        job.namespace,
        job.name,
        {"metadata": {"annotations": {names.ANNOTATION_PHASE: names.Phase.CANCELLED.value}}},
    )
    await rt.kube.delete_job(job.namespace, job.name)
    await rt.kube.delete_secret(job.namespace, job.name)
