"""Looks after one worker's in-flight Jobs (called from its poll task: no extra tasks).

For every Job of the worker, from the watch index (no listing calls):

- `claiming` (older than the recovery age, not being claimed by us right now) -> recover;
- `running` and finished in Kubernetes -> report (the event handler's fast path may have
  failed, e.g. throttled: this is the level-based safety net);
- `running`, never started within the grace period -> report SystemUnavailable, delete;
- `running` -> refresh credentials before they expire (GetJobDetails), probe for
  cancellation (AcknowledgeJob with the stored nonce returns the job's current status),
  hand long jobs over with a continuation token when enabled.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from cpworker import claimer, codepipeline, dispatcher, jobdata, manifests, names, results
from cpworker.kube import Body, ConflictError, KubeClient, KubeError, NotFoundError
from cpworker.reporter import ReportGuard, report, secret_values, send
from cpworker.watcher import JobSummary, PodSummary, summarize_job

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TendingSettings:
    credentials_refresh_seconds: float
    cancel_probe_seconds: float
    never_started_grace_seconds: float
    continuation_after_seconds: float
    claim_recovery_age_seconds: float
    finished_job_ttl_seconds: int


@dataclass
class TendingState:
    """Per-worker memory of when each Job was last probed (lost on restart: probes sooner)."""

    last_probe: dict[str, float] = field(default_factory=dict)
    tracked_since: dict[tuple[str, str], float] = field(default_factory=dict)
    busy: set[str] = field(default_factory=set)


def _parse(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _rfc3339(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Tender:
    kube: KubeClient
    clients: codepipeline.CodePipelineClients
    settings: TendingSettings
    post_event: Callable[[str, str, str], Awaitable[None]]
    claiming_now: set[str]
    guard: ReportGuard
    list_pods: Callable[[JobSummary], Awaitable[list[PodSummary]]]
    hook: Callable[[str], None] | None = None
    state: TendingState = field(default_factory=TendingState)
    clock: Callable[[], float] = field(default=lambda: asyncio.get_running_loop().time())

    async def tend(
        self, jobs: Iterable[JobSummary], pods_of: Callable[[str], list[PodSummary]]
    ) -> None:
        now = dt.datetime.now(dt.UTC)
        seen: set[str] = set()
        for job in list(jobs):
            seen.add(job.name)
            if job.name in self.state.busy or job.deleting:
                continue
            self.state.busy.add(job.name)
            try:
                await self._tend_one(job, pods_of(job.name), now)
            except (codepipeline.CodePipelineError, KubeError) as exc:
                log.warning("tending Job %s/%s: %s", job.namespace, job.name, exc)
            finally:
                self.state.busy.discard(job.name)
        for gone in set(self.state.last_probe) - seen:
            self.state.last_probe.pop(gone, None)
        for key in [k for k in self.state.tracked_since if k[0] not in seen]:
            self.state.tracked_since.pop(key, None)

    async def _client(self, job: JobSummary) -> codepipeline.CodePipelineClient:
        return await self.clients.for_worker(
            job.annotations.get(names.ANNOTATION_REGION, ""),
            job.annotations.get(names.ANNOTATION_ROLE_ARN),
        )

    async def _tend_one(self, job: JobSummary, pods: list[PodSummary], now: dt.datetime) -> None:
        if job.phase == names.Phase.CLAIMING:
            if job.name not in self.claiming_now:
                await claimer.recover_claiming(
                    self.kube,
                    await self._client(job),
                    dict(job.body),
                    min_age_seconds=self.settings.claim_recovery_age_seconds,
                    now=now,
                )
            return
        if job.phase != names.Phase.RUNNING:
            return
        continued = job.annotations.get(names.ANNOTATION_RESULT) == names.Result.CONTINUED
        outcome = results.outcome_from(job.body, [p.body for p in pods])
        if outcome.finished:
            if not continued:
                await self.report_finished(job)
            return
        if results.never_started_expired(outcome, now, self.settings.never_started_grace_seconds):
            call = results.result_for(
                outcome, job_id=job.job_id, namespace=job.namespace, job_name=job.name
            )

            async def fail_never_started() -> bool:
                return await report(
                    self.kube,
                    self.clients,
                    dict(job.body),
                    call,
                    delete_job=True,
                    hook=self.hook,
                    reporter_id=self.guard.reporter_id,
                    lease_seconds=self.guard.lease_seconds,
                    finished_ttl_seconds=self.settings.finished_job_ttl_seconds,
                )

            await self.guard.once(job.name, job.job_id, fail_never_started)
            return
        if continued:
            return
        await self._refresh_credentials(job, now)
        if await self._probe_cancelled(job):
            return
        await self._maybe_continue(job)

    async def report_finished(self, job: JobSummary) -> bool:
        """Report a Job that ended in Kubernetes, once (event handler and tending share this)."""

        async def send_report() -> bool:
            pods = await self.list_pods(job)
            return await report_finished(
                self.kube,
                self.clients,
                dict(job.body),
                pods,
                hook=self.hook,
                reporter_id=self.guard.reporter_id,
                lease_seconds=self.guard.lease_seconds,
                finished_ttl_seconds=self.settings.finished_job_ttl_seconds,
            )

        return await self.guard.once(job.name, job.job_id, send_report)

    async def report_vanished(self, job: JobSummary) -> bool:
        """A `running` Job was deleted (not by us) before it was reported."""
        if job.finished is not None:
            return await self.report_finished(job)
        call = results.failure_result(
            job_id=job.job_id,
            failure_type="JobFailed",
            message=f"Kubernetes Job {job.namespace}/{job.name} was deleted before it finished",
            external_execution_id=results.external_execution_id(job.namespace, job.name),
        )

        async def send_failure() -> bool:
            return await report(
                self.kube,
                self.clients,
                dict(job.body),
                call,
                hook=self.hook,
                reporter_id=self.guard.reporter_id,
                lease_seconds=self.guard.lease_seconds,
                finished_ttl_seconds=self.settings.finished_job_ttl_seconds,
            )

        return await self.guard.once(job.name, job.job_id, send_failure)

    async def _refresh_credentials(self, job: JobSummary, now: dt.datetime) -> None:
        issued = _parse(job.annotations.get(names.ANNOTATION_CREDENTIALS_ISSUED_AT))
        if issued is not None and not jobdata.credentials_need_refresh(
            issued, now, self.settings.credentials_refresh_seconds
        ):
            return
        client = await self._client(job)
        details = jobdata.parse_job_details(await client.get_job_details(job.job_id))
        secret_properties = await client.secret_properties(
            details.data.action_type_id.model_dump() if details.data.action_type_id else {}
        )
        secret_names = secret_names_for(details.data, secret_properties)
        patch = manifests.credentials_patch(
            details.id, details.account_id, details.data, secret_names
        )
        await self.kube.patch_secret(job.namespace, job.name, patch)
        await self.kube.patch_job(
            job.namespace,
            job.name,
            {"metadata": {"annotations": {names.ANNOTATION_CREDENTIALS_ISSUED_AT: _rfc3339(now)}}},
        )
        log.info("refreshed the artifact credentials of Job %s/%s", job.namespace, job.name)

    async def _probe_cancelled(self, job: JobSummary) -> bool:
        now = self.clock()
        last = self.state.last_probe.get(job.name)
        if last is not None and now - last < self.settings.cancel_probe_seconds:
            return False
        self.state.last_probe[job.name] = now
        nonce = job.annotations.get(names.ANNOTATION_NONCE, "")
        client = await self._client(job)
        try:
            status = await client.acknowledge_job(job.job_id, nonce)
        except codepipeline.JobNotFoundError:
            status = "NotFound"
        except codepipeline.InvalidNonceError:
            # Another delivery of this job exists now (it was re-queued): not ours anymore.
            status = "Superseded"
        if status == claimer.IN_PROGRESS:
            return False
        if job.name in self.guard.busy or self.guard.done.get(job.name) == job.job_id:
            return False  # being (or already) reported: that ended the job, not a stop
        return await cancel(self.kube, job, status, self.post_event)

    async def _maybe_continue(self, job: JobSummary) -> None:
        after = self.settings.continuation_after_seconds
        if after <= 0 or job.name in self.guard.busy:
            return
        key = (job.name, job.job_id)
        now = self.clock()
        since = self.state.tracked_since.setdefault(key, now)
        if now - since < after:
            return
        token = manifests.continuation_token(job.name, job.uid, job.namespace)
        call = results.success_result(
            job_id=job.job_id,
            external_execution_id=results.external_execution_id(job.namespace, job.name),
            report=results.ContainerReport(summary=f"Kubernetes Job {job.name} still running"),
            continuation_token=token,
        )
        # Intent first: a crash between the Put and the `result: continued` annotation must
        # not make the next probe (which then sees "Succeeded") cancel the running Job.
        await self.kube.patch_job(
            job.namespace,
            job.name,
            {"metadata": {"annotations": {ANNOTATION_HANDOVER: job.job_id}}},
        )
        accepted = await send(await self._client(job), call)
        if self.hook is not None:
            self.hook("after-handover")
        if accepted:
            await mark_continued(self.kube, job)
            await self.post_event(
                "JobHandedOver",
                f"job {job.job_id} handed over with a continuation token (Job {job.name} runs on)",
                "Normal",
            )


# The CodePipeline job id a hand-over (continuation token) was attempted for.
ANNOTATION_HANDOVER = f"{names.GROUP}/handover-of"


async def mark_continued(kube: KubeClient, job: JobSummary) -> None:
    """Record that the Job's current CodePipeline job ended with a continuation token."""
    await kube.patch_job(
        job.namespace,
        job.name,
        {"metadata": {"annotations": {names.ANNOTATION_RESULT: names.Result.CONTINUED.value}}},
    )


def secret_names_for(
    data: jobdata.JobData, secret_properties: codepipeline.SecretProperties
) -> frozenset[str]:
    """The configuration properties to treat as secret (all of them when unknown)."""
    keys = data.configuration().keys()
    return frozenset(k for k in keys if secret_properties.is_secret(k))


async def cancel(
    kube: KubeClient,
    job: JobSummary,
    status: str,
    post_event: Callable[[str, str, str], Awaitable[None]],
) -> bool:
    """CodePipeline no longer wants this job: record it and delete the Kubernetes Job.

    The index may be stale: the Job may have finished and been reported (which is why
    CodePipeline no longer says InProgress). So the Job is re-read, and only a Job that is
    still `running`, unfinished and on the same CodePipeline job is cancelled, with a
    resourceVersion precondition so that a change in between wins.
    """
    try:
        fresh = summarize_job(await kube.get_job(job.namespace, job.name))
    except NotFoundError:
        return True
    if (
        fresh.phase != names.Phase.RUNNING
        or fresh.finished is not None
        or fresh.job_id != job.job_id
    ):
        return False
    if status == "Succeeded" and fresh.annotations.get(ANNOTATION_HANDOVER) == job.job_id:
        # Our own hand-over went through but a crash lost its annotation: finish recording it.
        await mark_continued(kube, job)
        return False
    try:
        await kube.patch_job(
            job.namespace,
            job.name,
            {
                "metadata": {
                    "resourceVersion": fresh.body["metadata"].get("resourceVersion"),
                    "annotations": {names.ANNOTATION_PHASE: names.Phase.CANCELLED.value},
                }
            },
        )
    except ConflictError:
        return False
    await dispatcher.abandon(kube, job.namespace, job.name)
    await post_event(
        "JobCancelled",
        f"job {job.job_id} is {status} in CodePipeline (stopped, superseded or timed out): "
        f"Kubernetes Job {job.name} deleted",
        "Warning",
    )
    return True


async def report_finished(
    kube: KubeClient,
    clients: codepipeline.CodePipelineClients,
    job_body: Body,
    pods: list[PodSummary],
    *,
    hook: Callable[[str], None] | None = None,
    reporter_id: str = "",
    lease_seconds: float = 30.0,
    finished_ttl_seconds: int,
) -> bool:
    """Report a Job that ended in Kubernetes (the watcher's and tending's common path)."""
    metadata = job_body["metadata"]
    annotations = metadata.get("annotations") or {}
    outcome = results.outcome_from(job_body, [p.body for p in pods])
    if not outcome.finished:
        return False
    redact = await secret_values(kube, metadata["namespace"], metadata["name"])
    call = results.result_for(
        outcome,
        job_id=annotations[names.ANNOTATION_JOB_ID],
        namespace=metadata["namespace"],
        job_name=metadata["name"],
        redact=redact,
    )
    return await report(
        kube,
        clients,
        job_body,
        call,
        hook=hook,
        reporter_id=reporter_id,
        lease_seconds=lease_seconds,
        finished_ttl_seconds=finished_ttl_seconds,
    )
