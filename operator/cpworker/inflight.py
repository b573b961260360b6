"""Supervises one worker's in-flight Jobs (called from its poll task: no extra tasks).

For every Job of the worker, from the watch index:

- `claiming` (older than the recovery age, not being claimed by us right now) -> recover
  the claim (claimer.recover_claiming);
- `running` and finished in Kubernetes (either terminal step, or only classic sidecars left
  running) -> report it (the Job event handler's fast path may have failed, e.g. throttled:
  this is the level-based safety net);
- `running`, no pod: the Job's FailedCreate events say why (quota, admission) -> a refusal
  only the template can fix fails at once, a quota shortage waits CPWORKER_QUOTA_WAIT_SECONDS;
- `running`, its pod never started within its patience -> report it (decided on fresh pods);
- `running` -> refresh its credentials before they expire (GetJobDetails), probe for
  cancellation (AcknowledgeJob with the recorded nonce answers the job's current status),
  hand long jobs over with a continuation token when enabled.

And every CPWORKER_JOB_RELIST_SECONDS, while the worker has jobs in flight, one list of its
Jobs: an indexed Job the list lacks and a GET cannot find vanished while a watch was
interrupted (kopf never reports such a deletion); it is reported as vanished and hidden from
every count (jobindex.VanishedJobs). A 404 on a Job being acted on is checked the same way.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from cpworker import claimer, codepipeline, jobdata, names, results, timestamps
from cpworker.jobindex import JobSummary, PodSummary, VanishedJobs, summarize_job
from cpworker.jobrecord import JobRecords
from cpworker.kube import Body, KubeError, NotFoundError
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
# A released Job gets its pod within moments; one without a pod for this long has its
# FailedCreate events read (one list call per round while it lasts).
REFUSAL_LOOKUP_AFTER_SECONDS = 1.0
# Phases of Jobs a watch gap could leave as ghosts that matter (counted or to be reported).
_UNSETTLED = frozenset({names.Phase.CLAIMING.value, names.Phase.RUNNING.value, ""})


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
    # The worker whose Jobs these are (for the relist), and the operator's record of Jobs
    # that vanished in a watch gap (shared by every supervisor of the operator).
    namespace: str = ""
    worker: str = ""
    vanished: VanishedJobs = field(default_factory=VanishedJobs)
    state: SupervisionState = field(default_factory=SupervisionState)
    clock: Callable[[], float] = field(default=lambda: asyncio.get_running_loop().time())
    # The last Kubernetes error of the latest round (None: it met none); the worker's
    # condition shows it (kubehealth).
    kube_error: KubeError | None = None
    # Claims the latest round completed (their Secret and release went through now): proof
    # that a failed claim's writes succeed again, which the worker's condition waits for.
    claims_recovered: int = 0

    def in_progress(self, job_name: str) -> None:
        """CodePipeline just said this job is in progress (its claim's AcknowledgeJob): probe
        it an interval from now, not at once (it used to cost a second call per job)."""
        self.state.last_probe[job_name] = self.clock()

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
        indexed = list(jobs)
        kube_error: KubeError | None = None
        self.claims_recovered = 0
        try:
            await self._relist(indexed)
        except KubeError as exc:
            log.warning("listing the Jobs of worker %s/%s: %s", self.namespace, self.worker, exc)
            kube_error = exc
        for job in self.vanished.hide(indexed):
            seen.add(job.name)
            if job.name in self.state.busy or job.deleting:
                continue
            self.state.busy.add(job.name)
            try:
                await self._one(job, pods_of(job.name), now)
            except NotFoundError as exc:
                await self._check_vanished(job, exc)
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

    # ---- Jobs that vanished in a watch gap ---------------------------------------------

    async def _relist(self, indexed: list[JobSummary]) -> None:
        """Every relist interval, while the worker has unsettled Jobs: which of them does the
        API server no longer have?"""
        if not self.worker:
            return
        key = (self.namespace, self.worker)
        self.vanished.keep_only(self.namespace, self.worker, indexed)
        unsettled = [job for job in self.vanished.hide(indexed) if job.phase in _UNSETTLED]
        # The index starts from a fresh list (kopf's): the first relist is due an interval
        # later.
        last = self.vanished.relisted_at.setdefault(key, self.clock())
        if not unsettled or self.clock() - last < self.settings.job_relist_seconds:
            return
        self.vanished.relisted_at[key] = self.clock()
        listed = await self.records.listed_uids(self.namespace, self.worker)
        # Missing from a (possibly cached) list: a GET says whether it is really gone.
        for job in unsettled:
            if (
                job.uid not in listed
                and job.name not in self.state.busy
                and await self.records.vanished(job.body)
            ):
                await self._gone(job)

    async def _check_vanished(self, job: JobSummary, error: KubeError) -> None:
        """A 404 while acting on a Job: gone (vanished), or only something of it (its Secret)."""
        try:
            gone = await self.records.vanished(job.body)
        except KubeError as exc:
            log.warning("supervising Job %s/%s: %s (then %s)", job.namespace, job.name, error, exc)
            return
        if gone:
            await self._gone(job)
        else:
            log.warning("supervising Job %s/%s: %s", job.namespace, job.name, error)

    async def _gone(self, job: JobSummary) -> None:
        """The API server no longer has this Job, though its watch never said so."""
        log.warning(
            "Job %s/%s vanished without a watch event (deleted during a watch gap)",
            job.namespace,
            job.name,
        )
        self.vanished.add(job)
        if (
            job.phase == names.Phase.RUNNING
            and job.annotations.get(names.ANNOTATION_RESULT) != names.Result.CONTINUED
        ):
            await self.reporter.vanished(job)
        self.reporter.forget(job.name)

    # ---- one Job ------------------------------------------------------------------------

    async def _client(self, job: JobSummary) -> codepipeline.CodePipelineClient:
        return await self.clients.for_worker(
            job.annotations.get(names.ANNOTATION_REGION, ""),
            job.annotations.get(names.ANNOTATION_ROLE_ARN),
        )

    async def _one(self, job: JobSummary, pods: list[PodSummary], now: dt.datetime) -> None:
        if job.phase == names.Phase.CLAIMING:
            if job.name not in self.claiming_now:
                outcome = await claimer.recover_claiming(
                    self.records,
                    await self._client(job),
                    job.body,
                    min_age_seconds=self.settings.claim_recovery_age_seconds,
                    now=now,
                    metrics=self.metrics,
                )
                if outcome is claimer.ClaimOutcome.DISPATCHED:
                    self.claims_recovered += 1
            return
        if job.phase != names.Phase.RUNNING:
            return
        if job.annotations.get(names.ANNOTATION_RESULT) == names.Result.CONTINUED:
            await self._await_continuation(job)
            return
        if await self._acted_on_outcome(job, pods, now):
            return
        try:
            await self._refresh_credentials(job, now)
        except NotFoundError:
            raise  # the Job (or its Secret) is gone: supervise decides which
        except (codepipeline.CodePipelineError, KubeError) as exc:
            # Retried next round; meanwhile the probe below still learns whether it was
            # cancelled (a job CodePipeline forgot also fails its GetJobDetails).
            log.warning("refreshing the credentials of Job %s/%s: %s", job.namespace, job.name, exc)
        if await self._probe_cancelled(job):
            return
        await self._maybe_hand_over(job)

    async def _acted_on_outcome(
        self, job: JobSummary, pods: list[PodSummary], now: dt.datetime
    ) -> bool:
        """Report a Job that ended or cannot start, stop a pod where only classic sidecars
        run; True when one of these happened (nothing else is due for the Job then)."""
        outcome = results.outcome_from(job.body, [p.body for p in pods])
        if outcome.finished:
            await self.reporter.finished(job, pods)
            return True
        if outcome.kind is results.OutcomeKind.NEVER_STARTED:
            return await self._never_started(job, outcome, now)
        if outcome.reason == results.SIDECARS_STOP_REASON and outcome.pod:
            # Only classic sidecars run, the outputs are yet to be uploaded: stop the pod.
            await self.records.stop_for_sidecars(job.body, outcome.pod)
            log.info(
                "Job %s/%s: stopping pod %s, where only sidecars still run (%s)",
                job.namespace,
                job.name,
                outcome.pod,
                ", ".join(outcome.lingering),
            )
            return True
        return False

    async def _never_started(
        self, job: JobSummary, outcome: results.Outcome, now: dt.datetime
    ) -> bool:
        """Report a pod that cannot start once it has waited as long as its reason allows;
        True when reported. The decision is taken again on fresh pods: the pod index may lag,
        or keep a pod deleted during a watch gap."""
        refusals: list[Body] | None = None

        async def classified(found: results.Outcome) -> results.Outcome:
            nonlocal refusals
            if found.reason != results.NO_POD_REASON or found.since is None:
                return found
            if (now - found.since).total_seconds() < REFUSAL_LOOKUP_AFTER_SECONDS:
                return found
            if refusals is None:
                refusals = await self.records.failed_creates(job.body)
            return results.with_refusal(found, refusals)

        if not self._expired(await classified(outcome), now):
            return False
        pods = await self.reporter.fresh_pods(job)
        fresh = await classified(results.outcome_from(job.body, [p.body for p in pods]))
        if fresh.kind is not results.OutcomeKind.NEVER_STARTED or not self._expired(fresh, now):
            return False
        if fresh.reason in {results.NO_POD_REASON, results.FAILED_CREATE} and (
            await self.records.vanished(job.body)
        ):
            # No pod because there is no Job any more (deleted in a watch gap, its pods too).
            await self._gone(job)
            return True
        await self.reporter.never_started(job, fresh)
        return True

    def _expired(self, outcome: results.Outcome, now: dt.datetime) -> bool:
        return results.never_started_expired(
            outcome,
            now,
            self.settings.never_started_grace_seconds,
            quota_wait_seconds=self.settings.quota_wait_seconds,
        )

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
