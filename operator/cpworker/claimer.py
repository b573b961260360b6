"""The claim protocol for polled jobs (docs/architecture.md, "The claim protocol").

For each job PollForJobs returned:

1. parse it (jobdata); malformed -> acknowledge and fail it (ConfigurationError), never lost;
2. a continuation (data.continuationToken naming our Job) -> resume tracking that Job;
3. build the Job; an invalid template -> acknowledge and fail (ConfigurationError);
4. create the suspended Job (phase claiming) and its Secret (jobrecord);
5. AcknowledgeJob: InProgress -> release; InvalidNonce -> lost race (counted); other -> delete.

Nonces. The nonce a Job records is the one that *succeeded*. A nonce being tried is first
added to the Job's nonce candidates, so that a crash between a successful acknowledgement
and recording it still leaves the winning nonce on record for recovery (`recover_claiming`),
which tries every candidate. Overwriting the recorded nonce before acknowledging would let a
losing replica erase the winner's nonce.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from cpworker import codepipeline, continuation, jobdata, names, results, timestamps
from cpworker.jobmanifest import ManifestError, dropped_sidecars
from cpworker.jobrecord import JobRecords, known_nonces, phase_of
from cpworker.kube import Body, KubeError
from cpworker.metrics import Metrics
from cpworker.reporter import Reporter, send
from cpworker.timeline import timeline_of

if TYPE_CHECKING:
    import datetime as dt

    from mypy_boto3_codepipeline.type_defs import JobTypeDef

log = logging.getLogger(__name__)

IN_PROGRESS: Final = "InProgress"
# What acknowledging a job CodePipeline does not know answers (it ended long ago, or never
# was ours): like a terminal status, it means "do not run it".
NOT_FOUND: Final = "NotFound"
# 400 BadRequest / 422 Invalid: the Job as built can never be created.
REFUSED_STATUSES: Final = frozenset({400, 422})
# 403 Forbidden is admission's answer too (quota, webhooks), but also RBAC's: only a 403 whose
# message an admission step wrote (results.classify_refusal knows it) is a refusal.
FORBIDDEN: Final = 403
# Claims of one batch run side by side (each is a few sequential calls); the executor and
# the rate budget still bound the operator as a whole.
CLAIM_CONCURRENCY: Final = 8


class ClaimOutcome(enum.StrEnum):
    DISPATCHED = "dispatched"
    ALREADY_DISPATCHED = "already-dispatched"
    LOST_RACE = "lost-race"
    NOT_IN_PROGRESS = "not-in-progress"
    REJECTED = "rejected"  # malformed job data or an unusable template: reported as failed
    CONTINUED = "continued"
    CONTINUATION_MISSING = "continuation-missing"
    SKIPPED = "skipped"


# Builds the suspended Job for a job and its secret property names (raises ManifestError).
BuildJob = Callable[[jobdata.Job, frozenset[str]], Body]
# (reason, message, type) -> event on the worker
PostEvent = Callable[[str, str, str], Awaitable[None]]


@dataclass
class ClaimContext:
    records: JobRecords
    reporter: Reporter
    client: codepipeline.CodePipelineClient
    namespace: str
    build_job: BuildJob
    post_event: PostEvent
    # Job names being claimed by this process right now: recovery leaves them alone.
    claiming_now: set[str] = field(default_factory=set)
    # Crash hooks for restart tests: called with a stage name.
    hook: Callable[[str], None] = field(default=lambda _stage: None)
    # The worker the jobs are claimed for (metrics carry it as a label).
    worker: str = ""
    metrics: Metrics | None = None
    # Told of each Kubernetes error a claim ends with (the worker's condition shows it).
    on_kube_error: Callable[[KubeError], None] = field(default=lambda _error: None)
    # Told of each Job released because CodePipeline just answered InProgress (by name): that
    # answer is as good as a cancellation probe's, so the next one can wait its interval.
    on_in_progress: Callable[[str], None] = field(default=lambda _name: None)


def _claimed(metrics: Metrics | None, released: Mapping[str, Any]) -> None:
    """Dispatch is done: measure it from the released Job's record."""
    worker = (released["metadata"].get("annotations") or {}).get(names.ANNOTATION_WORKER)
    if metrics is not None and worker:
        metrics.job_claimed(released["metadata"]["namespace"], worker, timeline_of(released))


async def acknowledge(
    client: codepipeline.CodePipelineClient, job_id: str, nonce: str
) -> str | None:
    """The job's status for this nonce, or None on InvalidNonce (someone else holds it);
    NOT_FOUND when CodePipeline does not know the job."""
    try:
        return await client.acknowledge_job(job_id, nonce)
    except codepipeline.InvalidNonceError:
        return None
    except codepipeline.JobNotFoundError:
        return NOT_FOUND


async def fail_unclaimable(
    ctx: ClaimContext,
    job_id: str,
    nonce: str,
    failure_type: results.FailureType,
    message: str,
) -> bool:
    """Acknowledge then fail a job we cannot run, so it is not left to time out silently."""
    if await acknowledge(ctx.client, job_id, nonce) != IN_PROGRESS:
        return False
    return await ctx.reporter.reject(ctx.client, job_id, failure_type, message)


async def secret_names(
    client: codepipeline.CodePipelineClient, data: jobdata.JobData
) -> frozenset[str]:
    """The job's configuration properties to keep secret (all of them when unknown)."""
    if data.action_type_id is None:  # nothing to look up: hide every value
        return jobdata.ALL_SECRET.of(data)
    return (await client.secret_properties(data.action_type_id.model_dump())).of(data)


async def process_polled_job(ctx: ClaimContext, raw: JobTypeDef | dict[str, Any]) -> ClaimOutcome:
    """Run one polled job through the claim protocol."""
    available_at = timestamps.now()
    try:
        job = jobdata.parse_job(raw)
    except jobdata.InvalidJobDataError as exc:
        if exc.job_id and exc.nonce:
            await fail_unclaimable(ctx, exc.job_id, exc.nonce, "ConfigurationError", exc.message)
            await ctx.post_event("JobRejected", f"job {exc.job_id}: {exc.message}", "Warning")
        else:
            log.warning("dropping a polled job without a usable id or nonce: %s", exc.message)
        return ClaimOutcome.REJECTED

    if job.data.continuation_token:
        return await continue_job(ctx, job)

    secrets = await secret_names(ctx.client, job.data)
    try:
        manifest = ctx.build_job(job, secrets)
    except ManifestError as exc:
        return await _reject(ctx, job, f"the worker's job template cannot run this job: {exc}")

    name = str(manifest["metadata"]["name"])
    ctx.claiming_now.add(name)
    try:
        return await _claim(ctx, job, secrets, manifest, available_at)
    finally:
        ctx.claiming_now.discard(name)


async def _reject(
    ctx: ClaimContext,
    job: jobdata.Job,
    message: str,
    failure_type: results.FailureType = "ConfigurationError",
) -> ClaimOutcome:
    """Fail a job whose Kubernetes Job cannot exist, so CodePipeline hears why at once."""
    await fail_unclaimable(ctx, job.id, job.nonce, failure_type, message)
    await ctx.post_event("JobRejected", f"job {job.id}: {message}"[:1024], "Warning")
    return ClaimOutcome.REJECTED


def refusal(exc: KubeError, what: str) -> tuple[results.FailureType, str] | None:
    """(failure type, message) when the API server refused `what` for good or for a while
    (invalid, or refused by admission: quota, a webhook, Pod Security); None for an error
    worth retrying (throttling, 5xx, RBAC)."""
    failure_type, _, hint = results.classify_refusal(exc.detail)
    if exc.status in REFUSED_STATUSES:
        failure_type = "ConfigurationError"
    elif exc.status != FORBIDDEN or not hint:
        return None
    detail = f"{exc.detail} ({hint})" if hint else exc.detail
    return failure_type, f"the Kubernetes API refused {what}: {detail}"


def sidecars_unsupported_message(containers: Sequence[str]) -> str:
    """Why a job cannot run on a cluster without native sidecars, and what to do."""
    return (
        "the Kubernetes API server dropped restartPolicy: Always from the artifact container "
        f"{', '.join(containers)}: it does not support native sidecar containers (Kubernetes "
        "1.29 or newer, feature gate SidecarContainers), which cpworker needs to upload output "
        "artifacts after the job's containers. Upgrade the cluster to 1.29+, or set "
        "spec.artifacts.enabled: false in the CustomActionWorker and move the artifacts in "
        "your own containers"
    )


async def _create(
    ctx: ClaimContext, job: jobdata.Job, manifest: Body, available_at: dt.datetime
) -> tuple[Body, bool] | None:
    """Create the suspended Job: (the Job, whether we created it), or None when it cannot
    run on this cluster (then the job was failed, saying why)."""
    try:
        record, created = await ctx.records.create_suspended(
            manifest, job.nonce, available_at=available_at
        )
    except KubeError as exc:
        refused = refusal(exc, "the Job built from the job template")
        if refused is None or "exceeded quota" in exc.detail:
            # A Job quota frees up: left unacknowledged, the job is delivered again.
            raise
        # No retry can fix what the API server refuses; without this the job would be
        # polled, refused and redelivered until CodePipeline times it out silently.
        await _reject(ctx, job, refused[1], refused[0])
        return None
    if created and (dropped := dropped_sidecars(record)):
        # Without native sidecars the push container would block as an ordinary init
        # container until the Job's deadline: fail now, saying why (and run nothing).
        await ctx.records.abandon(record)
        await _reject(ctx, job, sidecars_unsupported_message(dropped))
        return None
    return record, created


async def _write_secret(
    ctx: ClaimContext, job: jobdata.Job, record: Body, secrets: frozenset[str], *, created: bool
) -> bool:
    """Create (or refresh) the Job's Secret; False when the API server refused it (then the
    job was failed, saying why, and the Job deleted). Without this the claim would stop here
    every time, and recovery would acknowledge the job every round and never run it."""
    try:
        await ctx.records.ensure_secret(record, job, secrets)
    except KubeError as exc:
        refused = refusal(exc, "the job's Secret")
        if refused is None:
            raise
        await _reject(ctx, job, refused[1], refused[0])
        if created or phase_of(record) == names.Phase.CLAIMING:
            await ctx.records.abandon(record)
        return False
    return True


async def _write_record(
    ctx: ClaimContext,
    job: jobdata.Job,
    secrets: frozenset[str],
    manifest: Body,
    available_at: dt.datetime,
) -> tuple[Body, bool] | ClaimOutcome:
    """The suspended Job and its Secret, before acknowledging: (the Job, whether we created
    it), or how the claim ended (refused, or the Job already settled)."""
    ctx.hook("before-job")
    made = await _create(ctx, job, manifest, available_at)
    if made is None:
        return ClaimOutcome.REJECTED
    record, created = made
    if not created:
        if phase_of(record) in (names.Phase.REPORTED, names.Phase.CANCELLED):
            return ClaimOutcome.SKIPPED
        record = await ctx.records.add_nonce_candidate(record, job.nonce)
    ctx.hook("before-secret")
    if not await _write_secret(ctx, job, record, secrets, created=created):
        return ClaimOutcome.REJECTED
    return record, created


async def _claim(
    ctx: ClaimContext,
    job: jobdata.Job,
    secrets: frozenset[str],
    manifest: Body,
    available_at: dt.datetime,
) -> ClaimOutcome:
    written = await _write_record(ctx, job, secrets, manifest, available_at)
    if isinstance(written, ClaimOutcome):
        return written
    record, created = written
    ctx.hook("before-ack")
    status = await acknowledge(ctx.client, job.id, job.nonce)
    ctx.hook("after-ack")
    if status is None:
        if created:
            await ctx.records.abandon_unless_contested(record, {job.nonce})
        await ctx.post_event(
            "LostRace", f"job {job.id} was acknowledged by another worker", "Normal"
        )
        if ctx.metrics is not None:
            ctx.metrics.job_lost_race(ctx.namespace, ctx.worker)
        return ClaimOutcome.LOST_RACE
    if status != IN_PROGRESS:
        if created or phase_of(record) == names.Phase.CLAIMING:
            await ctx.records.abandon(record)
        return ClaimOutcome.NOT_IN_PROGRESS
    await ctx.records.record_nonce(record, job.nonce)
    already_running = phase_of(record) == names.Phase.RUNNING
    ctx.hook("before-release")
    released = await ctx.records.release(record)
    ctx.hook("after-release")
    ctx.on_in_progress(str(record["metadata"]["name"]))
    if not already_running:
        _claimed(ctx.metrics, released)
    if already_running:
        return ClaimOutcome.ALREADY_DISPATCHED
    name = record["metadata"]["name"]
    await ctx.post_event("JobDispatched", f"job {job.id} dispatched as Job {name}", "Normal")
    return ClaimOutcome.DISPATCHED


async def continue_job(ctx: ClaimContext, job: jobdata.Job) -> ClaimOutcome:
    """A continuation: resume tracking the Job the token names; no new Job.

    The nonce is recorded as a candidate before the acknowledgement (see the module doc);
    only after InProgress does the Job's job-id label and annotations move to the new job.
    """
    ref = continuation.job_named_by(job.data.continuation_token or "", ctx.namespace)
    existing = await ctx.records.get(ctx.namespace, ref.job_name) if ref else None
    if existing is not None and ref is not None and existing["metadata"].get("uid") != ref.job_uid:
        existing = None  # same name, another Job: the original is gone
    if existing is None or ref is None:
        what = (
            f"Kubernetes Job {ref.job_name} in namespace {ctx.namespace}"
            if ref
            else "no cpworker Job"
        )
        message = (
            f"the continuation token names {what}, which no longer exists: the work it "
            "tracked is lost; run the action again"
        )
        await fail_unclaimable(ctx, job.id, job.nonce, "JobFailed", message)
        await ctx.post_event("ContinuationLost", f"job {job.id}: {message}", "Warning")
        return ClaimOutcome.CONTINUATION_MISSING
    previous_id = existing["metadata"].get("annotations", {}).get(names.ANNOTATION_JOB_ID, "")
    ctx.claiming_now.add(ref.job_name)
    try:
        record = await ctx.records.add_nonce_candidate(existing, job.nonce, continuation_of=job.id)
        status = await acknowledge(ctx.client, job.id, job.nonce)
        if status != IN_PROGRESS:
            await ctx.records.drop_pending_continuation(record)
            return ClaimOutcome.LOST_RACE if status is None else ClaimOutcome.NOT_IN_PROGRESS
        record = await ctx.records.adopt_continuation(record, job, previous_job_id=previous_id)
    finally:
        ctx.claiming_now.discard(ref.job_name)
    try:
        await ctx.records.ensure_secret(record, job, await secret_names(ctx.client, job.data))
    except KubeError as exc:
        # The Job keeps running with the credentials it has; the supervisor refreshes them.
        log.warning("could not refresh the Secret of continued Job %s: %s", ref.job_name, exc)
    await ctx.post_event(
        "JobContinued",
        f"job {job.id} continues job {previous_id} on Job {ref.job_name}",
        "Normal",
    )
    return ClaimOutcome.CONTINUED


async def recover_continuation(
    records: JobRecords, client: codepipeline.CodePipelineClient, job: Mapping[str, Any]
) -> ClaimOutcome | None:
    """Finish adopting a continuation whose claim was interrupted after the candidate was
    recorded (a crash, or a write that failed): CodePipeline will not deliver it again.

    Acknowledging again answers whether it is ours: InProgress -> move the Job to the new job
    id and give it fresh credentials; anything else -> it is not ours to adopt.
    """
    annotations = job["metadata"].get("annotations") or {}
    pending = annotations.get(names.ANNOTATION_CONTINUATION_PENDING, "")
    job_id, _, nonce = pending.partition(" ")
    if not job_id or not nonce:
        return None
    status = await acknowledge(client, job_id, nonce)
    if status != IN_PROGRESS:
        await records.drop_pending_continuation(job)
        return ClaimOutcome.LOST_RACE if status is None else ClaimOutcome.NOT_IN_PROGRESS
    details = jobdata.parse_job_details(await client.get_job_details(job_id))
    continued = jobdata.Job(
        id=details.id, nonce=nonce, account_id=details.account_id, data=details.data
    )
    previous_id = annotations.get(names.ANNOTATION_JOB_ID, "")
    record = await records.adopt_continuation(job, continued, previous_job_id=previous_id)
    await records.ensure_secret(record, continued, await secret_names(client, details.data))
    log.info("adopted continuation %s on Job %s", job_id, job["metadata"]["name"])
    return ClaimOutcome.CONTINUED


async def process_polled_jobs(
    ctx: ClaimContext, jobs: Sequence[JobTypeDef | dict[str, Any]]
) -> list[ClaimOutcome]:
    """Claim a polled batch, a few jobs at a time, so that a full batch dispatches quickly."""

    async def claim_one(raw: JobTypeDef | dict[str, Any]) -> ClaimOutcome:
        try:
            return await process_polled_job(ctx, raw)
        except (codepipeline.CodePipelineError, KubeError) as exc:
            # Leaves a claiming Job at worst; recovery resolves it.
            log.warning("claim failed, recovery will resolve it: %s", exc)
            if isinstance(exc, KubeError):
                ctx.on_kube_error(exc)
            return ClaimOutcome.SKIPPED

    return await codepipeline.gather_limited([claim_one(raw) for raw in jobs], CLAIM_CONCURRENCY)


async def recover_claiming(
    records: JobRecords,
    client: codepipeline.CodePipelineClient,
    job: Mapping[str, Any],
    *,
    min_age_seconds: float,
    now: dt.datetime,
    metrics: Metrics | None = None,
) -> ClaimOutcome | None:
    """Resolve a Job left in phase `claiming` (crash, or another replica mid-claim).

    Re-acknowledging with each recorded nonce answers the ambiguity: InProgress -> ours,
    release it; every nonce invalid -> a newer delivery exists that this Job does not know
    of, delete it (if the newer delivery reaches us, the poll re-creates the Job); a
    terminal status -> the job ended, delete it. Young Jobs are left alone: they are
    probably being claimed right now.
    """
    metadata = job["metadata"]
    created = timestamps.parse(metadata.get("creationTimestamp"))
    if created is not None and (now - created).total_seconds() < min_age_seconds:
        return None
    # The watch index may lag behind a claim that just released the Job: act only on a Job
    # that is still claiming as stored (else the release, and its measurement, came twice).
    # (The nonces stay those of the view: one recorded since is another claim under way,
    # which `abandon_unless_contested` leaves alone.)
    fresh = await records.get(str(metadata.get("namespace", "")), str(metadata.get("name", "")))
    stored = ((fresh or {}).get("metadata") or {}).get("annotations") or {}
    if fresh is None or stored.get(names.ANNOTATION_PHASE) != names.Phase.CLAIMING:
        return None
    job_id = (metadata.get("annotations") or {}).get(names.ANNOTATION_JOB_ID, "")
    nonces = known_nonces(job)
    for nonce in nonces:
        status = await acknowledge(client, job_id, nonce)
        if status is None:
            continue
        if status == IN_PROGRESS:
            await records.record_nonce(job, nonce)
            try:
                await restore_secret(records, client, job, nonce)
            except KubeError as exc:
                refused = refusal(exc, "the job's Secret")
                if refused is None:
                    raise
                await send(
                    client,
                    results.failure_result(
                        job_id=job_id, failure_type=refused[0], message=refused[1]
                    ),
                )
                await records.abandon(job)
                return ClaimOutcome.REJECTED
            _claimed(metrics, await records.release(job))
            return ClaimOutcome.DISPATCHED
        await records.abandon(job)
        return ClaimOutcome.NOT_IN_PROGRESS
    # Every nonce we know of is stale: a newer delivery exists. Delete unless a claim on
    # this Job started since we read it (its nonce would be a new candidate).
    await records.abandon_unless_contested(job, set(nonces))
    return ClaimOutcome.LOST_RACE


async def restore_secret(
    records: JobRecords,
    client: codepipeline.CodePipelineClient,
    job: Mapping[str, Any],
    nonce: str,
) -> None:
    """Re-create a claiming Job's Secret when a crash came between the Job and the Secret.

    The job data (with fresh credentials) comes from GetJobDetails, so the pod never starts
    without its Secret.
    """
    if await records.has_secret(job):
        return
    job_id = job["metadata"]["annotations"][names.ANNOTATION_JOB_ID]
    details = jobdata.parse_job_details(await client.get_job_details(job_id))
    restored = jobdata.Job(
        id=details.id, nonce=nonce, account_id=details.account_id, data=details.data
    )
    await records.ensure_secret(job, restored, await secret_names(client, details.data))
    metadata = job["metadata"]
    log.info(
        "re-created the missing Secret of claiming Job %s/%s",
        metadata["namespace"],
        metadata["name"],
    )
