"""Supervises one worker's in-flight Jobs (called from its poll task: no extra tasks).

For every Job of the worker, from the watch index (no listing calls):

- `claiming` (older than the recovery age, not being claimed by us right now) -> recover
  the claim (claimer.recover_claiming);
- `running` and finished in Kubernetes -> report it (the Job event handler's fast path may
  have failed, e.g. throttled: this is the level-based safety net);
- `running`, its pod never started within the grace period -> report SystemUnavailable;
- `running` -> refresh its credentials before they expire (GetJobDetails), probe for
  cancellation (AcknowledgeJob with the recorded nonce answers the job's current status),
  hand long jobs over with a continuation token when enabled.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from cpworker import claimer, codepipeline, jobdata, names, results, timestamps
from cpworker.jobindex import JobSummary, PodSummary, summarize_job
from cpworker.jobrecord import JobRecords
from cpworker.kube import KubeError
from cpworker.metrics import Metrics
from cpworker.reporter import Reporter
from cpworker.settings import OperatorSettings

log = logging.getLogger(__name__)

# What the cancellation probe calls a job CodePipeline no longer knows, or handed to another
# delivery (re-queued): either way it is not ours anymore.
NOT_FOUND = "NotFound"
SUPERSEDED = "Superseded"
# CodePipeline creates a continuation job within moments of the hand-over (the worker polls
# for it promptly meanwhile); one that has not come after this long never will (the pipeline
# was stopped or superseded), and the Job it would have resumed no longer has a job to run for.
CONTINUATION_WAIT_SECONDS = 900.0


@dataclass
class SupervisionState:
    """Per-worker memory of probes and hand-over clocks (lost on restart: probes sooner)."""

    last_probe: dict[str, float] = field(default_factory=dict)
    tracked_since: dict[tuple[str, str], float] = field(default_factory=dict)
    # Since when a handed-over Job has waited for its continuation (by Job and old job id).
    continued_since: dict[tuple[str, str], float] = field(default_factory=dict)
    busy: set[str] = field(default_factory=set)


@dataclass
class InFlightSupervisor:
    records: JobRecords
    reporter: Reporter
    clients: codepipeline.CodePipelineClients
    settings: OperatorSettings
    # (reason, message, type) -> event on the worker
    post_event: Callable[[str, str, str], Awaitable[None]]
    # Job names being claimed by this process right now: recovery leaves them alone.
    claiming_now: set[str]
    # Seconds between cancellation probes of a running job (rarer while events work).
    probe_interval: Callable[[], float] | None = None
    metrics: Metrics | None = None
    # Called after a successful hand-over: the continuation job is about to appear.
    on_hand_over: Callable[[], None] = field(default=lambda: None)
    state: SupervisionState = field(default_factory=SupervisionState)
    clock: Callable[[], float] = field(default=lambda: asyncio.get_running_loop().time())
    # The last Kubernetes error of the latest round (None: it met none); the worker's
    # condition shows it (kubehealth).
    kube_error: KubeError | None = None

    def probe_soon(self, job_name: str) -> None:
        """Probe this job at the next supervision (an event says its action ended)."""
        self.state.last_probe.pop(job_name, None)

    def _probe_interval(self) -> float:
        if self.probe_interval is not None:
            return self.probe_interval()
        return self.settings.cancel_probe_seconds

    async def supervise(
        self, jobs: Iterable[JobSummary], pods_of: Callable[[str], list[PodSummary]]
    ) -> None:
        now = timestamps.now()
        seen: set[str] = set()
        kube_error: KubeError | None = None
        for job in list(jobs):
            seen.add(job.name)
            if job.name in self.state.busy or job.deleting:
                continue
            self.state.busy.add(job.name)
            try:
                await self._one(job, pods_of(job.name), now)
            except (codepipeline.CodePipelineError, KubeError) as exc:
                log.warning("supervising Job %s/%s: %s", job.namespace, job.name, exc)
                if isinstance(exc, KubeError):
                    kube_error = exc
            finally:
                self.state.busy.discard(job.name)
        self.kube_error = kube_error
        for gone in set(self.state.last_probe) - seen:
            self.state.last_probe.pop(gone, None)
        for since in (self.state.tracked_since, self.state.continued_since):
            for key in [k for k in since if k[0] not in seen]:
                since.pop(key, None)

    async def _client(self, job: JobSummary) -> codepipeline.CodePipelineClient:
        return await self.clients.for_worker(
            job.annotations.get(names.ANNOTATION_REGION, ""),
            job.annotations.get(names.ANNOTATION_ROLE_ARN),
        )

    async def _one(self, job: JobSummary, pods: list[PodSummary], now: dt.datetime) -> None:
        if job.phase == names.Phase.CLAIMING:
            if job.name not in self.claiming_now:
                await claimer.recover_claiming(
                    self.records,
                    await self._client(job),
                    job.body,
                    min_age_seconds=self.settings.claim_recovery_age_seconds,
                    now=now,
                    metrics=self.metrics,
                )
            return
        if job.phase != names.Phase.RUNNING:
            return
        if job.annotations.get(names.ANNOTATION_RESULT) == names.Result.CONTINUED:
            await self._await_continuation(job)
            return
        outcome = results.outcome_from(job.body, [p.body for p in pods])
        if outcome.finished:
            await self.reporter.finished(job)
            return
        if results.never_started_expired(outcome, now, self.settings.never_started_grace_seconds):
            await self.reporter.never_started(job, outcome)
            return
        try:
            await self._refresh_credentials(job, now)
        except (codepipeline.CodePipelineError, KubeError) as exc:
            # Retried next round; meanwhile the probe below still learns whether it was
            # cancelled (a job CodePipeline forgot also fails its GetJobDetails).
            log.warning("refreshing the credentials of Job %s/%s: %s", job.namespace, job.name, exc)
        if await self._probe_cancelled(job):
            return
        await self._maybe_hand_over(job)

    async def _await_continuation(self, job: JobSummary) -> None:
        """A handed-over Job waits for its continuation job: finish an interrupted adoption,
        or give up on a continuation that never comes."""
        if job.annotations.get(names.ANNOTATION_CONTINUATION_PENDING):
            if job.name not in self.claiming_now:
                await claimer.recover_continuation(self.records, await self._client(job), job.body)
            return
        key = (job.name, job.job_id)
        since = self.state.continued_since.setdefault(key, self.clock())
        if self.clock() - since < CONTINUATION_WAIT_SECONDS:
            return
        body = await self.records.get(job.namespace, job.name)
        if body is None:
            return
        why = (
            f"job {job.job_id} was handed over, but CodePipeline delivered no continuation "
            f"within {CONTINUATION_WAIT_SECONDS:.0f} s (the pipeline was stopped or superseded)"
        )
        if summarize_job(body).finished is not None:
            # Its work is done and nothing can take its result: settle it like a reported
            # Job (kept for inspection until its TTL), so it stops holding a slot.
            ttl = self.settings.finished_job_ttl_seconds
            await self.records.mark_reported(body, names.Result.CONTINUED, ttl)
            await self.records.delete_secret(body)
            message = f"{why}: Kubernetes Job {job.name} finished, its result goes nowhere"
        else:
            if not await self.records.mark_cancelled(body):
                return
            if self.metrics is not None and job.worker:
                self.metrics.job_cancelled(job.namespace, job.worker)
            message = f"{why}: Kubernetes Job {job.name} deleted"
        await self.post_event("ContinuationNeverCame", message, "Warning")

    async def _refresh_credentials(self, job: JobSummary, now: dt.datetime) -> None:
        issued = timestamps.parse(job.annotations.get(names.ANNOTATION_CREDENTIALS_ISSUED_AT))
        if issued is not None and not jobdata.credentials_need_refresh(
            issued, now, self.settings.credentials_refresh_seconds
        ):
            return
        client = await self._client(job)
        details = jobdata.parse_job_details(await client.get_job_details(job.job_id))
        await self.records.refresh_credentials(
            job.body,
            job_id=details.id,
            account_id=details.account_id,
            data=details.data,
            secret_property_names=await claimer.secret_names(client, details.data),
            now=now,
        )
        log.info("refreshed the artifact credentials of Job %s/%s", job.namespace, job.name)

    async def _probe_cancelled(self, job: JobSummary) -> bool:
        now = self.clock()
        last = self.state.last_probe.get(job.name)
        if last is not None and now - last < self._probe_interval():
            return False
        self.state.last_probe[job.name] = now
        nonce = job.annotations.get(names.ANNOTATION_NONCE, "")
        client = await self._client(job)
        try:
            status = await client.acknowledge_job(job.job_id, nonce)
        except codepipeline.JobNotFoundError:
            status = NOT_FOUND
        except codepipeline.InvalidNonceError:
            status = SUPERSEDED
        if status == claimer.IN_PROGRESS:
            return False
        if self.reporter.covers(job):
            return False  # being (or already) reported: that ended the job, not a stop
        return await self._cancel(job, status)

    async def _cancel(self, job: JobSummary, status: str) -> bool:
        """CodePipeline no longer wants this job: record it and delete the Kubernetes Job.

        The index may be stale: the Job may have finished and been reported (which is why
        CodePipeline no longer says InProgress). So the Job is re-read, and only a Job that is
        still `running`, unfinished and on the same CodePipeline job is cancelled, with a
        resourceVersion precondition so that a change in between wins.
        """
        body = await self.records.get(job.namespace, job.name)
        if body is None:
            return True
        fresh = summarize_job(body)
        if (
            fresh.phase != names.Phase.RUNNING
            or fresh.finished is not None
            or fresh.job_id != job.job_id
        ):
            return False
        if (
            status == "Succeeded"
            and fresh.annotations.get(names.ANNOTATION_HANDOVER_OF) == job.job_id
        ):
            # Our own hand-over went through but a crash lost its record: finish recording it.
            await self.records.mark_continued(body)
            return False
        if not await self.records.mark_cancelled(body):
            return False
        if self.metrics is not None and job.worker:
            self.metrics.job_cancelled(job.namespace, job.worker)
        await self.post_event(
            "JobCancelled",
            f"job {job.job_id} is {status} in CodePipeline (stopped, superseded or timed out): "
            f"Kubernetes Job {job.name} deleted",
            "Warning",
        )
        return True

    async def _maybe_hand_over(self, job: JobSummary) -> None:
        after = self.settings.continuation_after_seconds
        if after <= 0 or self.reporter.covers(job):
            return
        now = self.clock()
        since = self.state.tracked_since.setdefault((job.name, job.job_id), now)
        if now - since >= after and await self.reporter.hand_over(job):
            self.on_hand_over()
