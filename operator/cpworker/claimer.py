"""The claim protocol for polled jobs (docs/architecture.md, "The claim protocol").

For each job PollForJobs returned:

1. parse it (jobdata); malformed -> acknowledge and fail it (ConfigurationError), never lost;
2. a continuation (data.continuationToken naming our Job) -> resume tracking that Job;
3. build the manifests; an invalid template -> acknowledge and fail (ConfigurationError);
4. create the suspended Job (phase claiming) and its Secret (dispatcher);
5. AcknowledgeJob: InProgress -> release; InvalidNonce -> lost race (counted); other -> delete.

Nonces. The nonce a Job records is the one that *succeeded*. A nonce being tried is first
added to `cpworker.io/nonce-candidates`, so that a crash between a successful
acknowledgement and the annotation update still leaves the winning nonce on record for
recovery (`recover_claiming`), which tries every candidate. Overwriting the recorded nonce
before acknowledging would let a losing replica erase the winner's nonce.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from cpworker import codepipeline, dispatcher, jobdata, manifests, names
from cpworker.kube import Body, KubeClient, KubeError, NotFoundError
from cpworker.manifests import ManifestError

if TYPE_CHECKING:
    from mypy_boto3_codepipeline.type_defs import JobTypeDef

log = logging.getLogger(__name__)

ANNOTATION_NONCE_CANDIDATES = dispatcher.ANNOTATION_NONCE_CANDIDATES
MAX_NONCE_CANDIDATES = 4
IN_PROGRESS = "InProgress"


class ClaimOutcome(enum.StrEnum):
    DISPATCHED = "dispatched"
    ALREADY_DISPATCHED = "already-dispatched"
    LOST_RACE = "lost-race"
    NOT_IN_PROGRESS = "not-in-progress"
    REJECTED = "rejected"  # malformed job data or an unusable template: reported as failed
    CONTINUED = "continued"
    CONTINUATION_MISSING = "continuation-missing"
    SKIPPED = "skipped"


class Builder(Protocol):
    """Builds the manifests for one worker (handlers bind the spec, settings and clock)."""

    def job(self, job: jobdata.Job, secret: codepipeline.SecretProperties) -> Body:
        """The suspended Job (phase claiming); raises ManifestError."""
        ...

    def secret(
        self, job: jobdata.Job, secret: codepipeline.SecretProperties, job_name: str, job_uid: str
    ) -> Body:
        """The Secret owned by Job `job_name`/`job_uid`."""
        ...

    def continuation_token(self, job_name: str, job_uid: str) -> str:
        """The token that names a Job for a continuation hand-over."""
        ...

    def continued_job_name(self, token: str) -> tuple[str, str] | None:
        """(job name, uid) that a continuation token names, or None if it is not ours."""
        ...


# (reason, message, type) -> event on the worker
PostEvent = Callable[[str, str, str], Awaitable[None]]


@dataclass
class ClaimContext:
    kube: KubeClient
    client: codepipeline.CodePipelineClient
    namespace: str
    build: Builder
    post_event: PostEvent
    # Job names being claimed by this process right now: recovery leaves them alone.
    claiming_now: set[str] = field(default_factory=set)
    # Crash hooks for restart tests: called with a stage name; may raise to simulate a crash.
    hook: Callable[[str], None] = field(default=lambda _stage: None)


def _candidates(body: Body) -> list[str]:
    raw = dispatcher.annotations_of(body).get(ANNOTATION_NONCE_CANDIDATES, "")
    return [n for n in raw.split(",") if n]


def _with_candidate(body: Body, nonce: str) -> str:
    current = [n for n in _candidates(body) if n != nonce]
    return ",".join([*current, nonce][-MAX_NONCE_CANDIDATES:])


async def acknowledge(
    client: codepipeline.CodePipelineClient, job_id: str, nonce: str
) -> str | None:
    """The job's status for this nonce, or None on InvalidNonce (someone else holds it)."""
    try:
        return await client.acknowledge_job(job_id, nonce)
    except codepipeline.InvalidNonceError:
        return None


async def fail_unclaimable(
    client: codepipeline.CodePipelineClient,
    job_id: str,
    nonce: str,
    failure_type: str,
    message: str,
) -> bool:
    """Acknowledge then fail a job we cannot run, so it is not left to time out silently."""
    status = await acknowledge(client, job_id, nonce)
    if status != IN_PROGRESS:
        return False
    try:
        await client.put_job_failure_result(
            job_id,
            {"type": failure_type, "message": message[:5000]},  # type: ignore[typeddict-item]
        )
    except codepipeline.InvalidJobStateError:
        return False
    return True


async def process_polled_job(ctx: ClaimContext, raw: JobTypeDef | dict[str, Any]) -> ClaimOutcome:
    """Run one polled job through the claim protocol."""
    try:
        job = jobdata.parse_job(raw)
    except jobdata.InvalidJobDataError as exc:
        if exc.job_id and exc.nonce:
            await fail_unclaimable(
                ctx.client, exc.job_id, exc.nonce, "ConfigurationError", exc.message
            )
            await ctx.post_event("JobRejected", f"job {exc.job_id}: {exc.message}", "Warning")
        else:
            log.warning("dropping a polled job without a usable id or nonce: %s", exc.message)
        return ClaimOutcome.REJECTED

    if job.data.continuation_token:
        return await continue_job(ctx, job)

    secret_properties = await ctx.client.secret_properties(
        job.data.action_type_id.model_dump() if job.data.action_type_id else {}
    )
    try:
        job_manifest = ctx.build.job(job, secret_properties)
    except ManifestError as exc:
        return await _reject(ctx, job, f"the worker's job template cannot run this job: {exc}")

    name = str(job_manifest["metadata"]["name"])
    ctx.claiming_now.add(name)
    try:
        return await _claim(ctx, job, secret_properties, job_manifest, name)
    finally:
        ctx.claiming_now.discard(name)


# 400 BadRequest / 422 Invalid: the Job as built can never be created.
REFUSED_STATUSES = frozenset({400, 422})


async def _reject(ctx: ClaimContext, job: jobdata.Job, message: str) -> ClaimOutcome:
    """Fail a job whose Kubernetes Job cannot exist, so CodePipeline hears why at once."""
    await fail_unclaimable(ctx.client, job.id, job.nonce, "ConfigurationError", message)
    await ctx.post_event("JobRejected", f"job {job.id}: {message}"[:1024], "Warning")
    return ClaimOutcome.REJECTED


async def _claim(
    ctx: ClaimContext,
    job: jobdata.Job,
    secret_properties: codepipeline.SecretProperties,
    job_manifest: Body,
    name: str,
) -> ClaimOutcome:
    job_manifest.setdefault("metadata", {}).setdefault("annotations", {})[
        ANNOTATION_NONCE_CANDIDATES
    ] = job.nonce
    ctx.hook("before-job")
    try:
        body, created = await dispatcher.create_claiming_job(
            ctx.kube, ctx.namespace, job_manifest, job.nonce
        )
    except KubeError as exc:
        if exc.status not in REFUSED_STATUSES:
            raise
        # No retry can fix what the API server refuses; without this the job would be
        # polled, refused and redelivered until CodePipeline times it out silently.
        return await _reject(
            ctx, job, f"the Kubernetes API refused the Job built from the job template: {exc}"
        )
    if not created:
        phase = dispatcher.phase_of(body)
        if phase in (names.Phase.REPORTED, names.Phase.CANCELLED):
            return ClaimOutcome.SKIPPED
        body = await ctx.kube.patch_job(
            ctx.namespace,
            name,
            {
                "metadata": {
                    "annotations": {ANNOTATION_NONCE_CANDIDATES: _with_candidate(body, job.nonce)}
                }
            },
        )
    ctx.hook("before-secret")
    secret = ctx.build.secret(job, secret_properties, name, str(body["metadata"]["uid"]))
    await dispatcher.ensure_secret(ctx.kube, ctx.namespace, secret, body)
    ctx.hook("before-ack")
    status = await acknowledge(ctx.client, job.id, job.nonce)
    ctx.hook("after-ack")
    if status is None:
        if created:
            await dispatcher.abandon_unless_contested(ctx.kube, ctx.namespace, name, {job.nonce})
        await ctx.post_event(
            "LostRace", f"job {job.id} was acknowledged by another worker", "Normal"
        )
        return ClaimOutcome.LOST_RACE
    if status != IN_PROGRESS:
        if created or dispatcher.phase_of(body) == names.Phase.CLAIMING:
            await dispatcher.abandon(ctx.kube, ctx.namespace, name)
        return ClaimOutcome.NOT_IN_PROGRESS
    if dispatcher.annotations_of(body).get(names.ANNOTATION_NONCE) != job.nonce:
        await ctx.kube.patch_job(
            ctx.namespace, name, {"metadata": {"annotations": {names.ANNOTATION_NONCE: job.nonce}}}
        )
    already_running = dispatcher.phase_of(body) == names.Phase.RUNNING
    ctx.hook("before-release")
    await dispatcher.release(ctx.kube, ctx.namespace, name)
    ctx.hook("after-release")
    if already_running:
        return ClaimOutcome.ALREADY_DISPATCHED
    await ctx.post_event("JobDispatched", f"job {job.id} dispatched as Job {name}", "Normal")
    return ClaimOutcome.DISPATCHED


async def continue_job(ctx: ClaimContext, job: jobdata.Job) -> ClaimOutcome:
    """A continuation: resume tracking the Job the token names; no new Job.

    The nonce is recorded as a candidate before the acknowledgement (see the module doc);
    only after InProgress does the Job's job-id label and annotations move to the new job.
    """
    token = job.data.continuation_token or ""
    ref = ctx.build.continued_job_name(token)
    existing = await dispatcher.job_exists(ctx.kube, ctx.namespace, ref[0]) if ref else None
    if existing is not None and ref is not None and existing["metadata"].get("uid") != ref[1]:
        existing = None  # same name, another Job: the original is gone
    if existing is None or ref is None:
        what = f"Kubernetes Job {ref[0]} in namespace {ctx.namespace}" if ref else "no cpworker Job"
        message = (
            f"the continuation token names {what}, which no longer exists: the work it "
            "tracked is lost; run the action again"
        )
        await fail_unclaimable(ctx.client, job.id, job.nonce, "JobFailed", message)
        await ctx.post_event("ContinuationLost", f"job {job.id}: {message}", "Warning")
        return ClaimOutcome.CONTINUATION_MISSING
    name = ref[0]
    previous_id = dispatcher.annotations_of(existing).get(names.ANNOTATION_JOB_ID, "")
    ctx.claiming_now.add(name)
    try:
        await ctx.kube.patch_job(
            ctx.namespace,
            name,
            {
                "metadata": {
                    "annotations": {
                        ANNOTATION_NONCE_CANDIDATES: _with_candidate(existing, job.nonce)
                    }
                }
            },
        )
        status = await acknowledge(ctx.client, job.id, job.nonce)
        if status is None:
            return ClaimOutcome.LOST_RACE
        if status != IN_PROGRESS:
            return ClaimOutcome.NOT_IN_PROGRESS
        await ctx.kube.patch_job(
            ctx.namespace,
            name,
            {
                "metadata": {
                    "labels": {names.LABEL_JOB_ID: names.job_label_value(job.id)},
                    "annotations": {
                        names.ANNOTATION_JOB_ID: job.id,
                        names.ANNOTATION_NONCE: job.nonce,
                        names.ANNOTATION_ACCOUNT_ID: job.account_id,
                        names.ANNOTATION_CONTINUATION_OF: previous_id,
                        names.ANNOTATION_PHASE: names.Phase.RUNNING.value,
                        names.ANNOTATION_RESULT: None,
                        names.ANNOTATION_CREDENTIALS_ISSUED_AT: _rfc3339_now(),
                    },
                }
            },
        )
    finally:
        ctx.claiming_now.discard(name)
    secret_properties = await ctx.client.secret_properties(
        job.data.action_type_id.model_dump() if job.data.action_type_id else {}
    )
    try:
        secret = ctx.build.secret(job, secret_properties, name, ref[1])
        await dispatcher.ensure_secret(ctx.kube, ctx.namespace, secret, existing)
    except (ManifestError, KubeError) as exc:
        # The Job keeps running with the credentials it has; tending refreshes them later.
        log.warning("could not refresh the Secret of continued Job %s: %s", name, exc)
    await ctx.post_event(
        "JobContinued", f"job {job.id} continues job {previous_id} on Job {name}", "Normal"
    )
    return ClaimOutcome.CONTINUED


def _rfc3339_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Claims of one batch run side by side (each is a few sequential calls); the executor and
# the rate budget still bound the operator as a whole.
CLAIM_CONCURRENCY = 8


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
            return ClaimOutcome.SKIPPED

    return await codepipeline.gather_limited([claim_one(raw) for raw in jobs], CLAIM_CONCURRENCY)


async def recover_claiming(
    kube: KubeClient,
    client: codepipeline.CodePipelineClient,
    job: Body,
    *,
    min_age_seconds: float,
    now: dt.datetime | None = None,
) -> ClaimOutcome | None:
    """Resolve a Job left in phase `claiming` (crash, or another replica mid-claim).

    Re-acknowledging with each recorded nonce answers the ambiguity: InProgress -> ours,
    release it; every nonce invalid -> a newer delivery exists that this Job does not know
    of, delete it (if the newer delivery reaches us, the poll re-creates the Job); a
    terminal status -> the job ended, delete it. Young Jobs are left alone: they are
    probably being claimed right now.
    """
    metadata = job["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    annotations = dispatcher.annotations_of(job)
    created = _parse_time(metadata.get("creationTimestamp"))
    now = now or dt.datetime.now(dt.UTC)
    if created is not None and (now - created).total_seconds() < min_age_seconds:
        return None
    job_id = annotations.get(names.ANNOTATION_JOB_ID, "")
    nonces = [n for n in [annotations.get(names.ANNOTATION_NONCE, ""), *_candidates(job)] if n]
    for nonce in dict.fromkeys(reversed(nonces)):
        status = await acknowledge(client, job_id, nonce)
        if status is None:
            continue
        if status == IN_PROGRESS:
            await kube.patch_job(
                namespace, name, {"metadata": {"annotations": {names.ANNOTATION_NONCE: nonce}}}
            )
            await restore_secret(kube, client, job, nonce)
            await dispatcher.release(kube, namespace, name)
            return ClaimOutcome.DISPATCHED
        await dispatcher.abandon(kube, namespace, name)
        return ClaimOutcome.NOT_IN_PROGRESS
    # Every nonce we know of is stale: a newer delivery exists. Delete unless a claim on
    # this Job started since we read it (its nonce would be a new candidate).
    await dispatcher.abandon_unless_contested(kube, namespace, name, set(nonces))
    return ClaimOutcome.LOST_RACE


async def restore_secret(
    kube: KubeClient, client: codepipeline.CodePipelineClient, job: Body, nonce: str
) -> None:
    """Re-create a claiming Job's Secret when a crash came between the Job and the Secret.

    The job data (with fresh credentials) comes from GetJobDetails, so the pod never starts
    without its Secret.
    """
    metadata = job["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    try:
        await kube.get_secret(namespace, name)
    except NotFoundError:
        pass
    else:
        return
    annotations = dispatcher.annotations_of(job)
    details = jobdata.parse_job_details(
        await client.get_job_details(annotations[names.ANNOTATION_JOB_ID])
    )
    parsed = jobdata.Job(
        id=details.id, nonce=nonce, account_id=details.account_id, data=details.data
    )
    secret_properties = await client.secret_properties(
        details.data.action_type_id.model_dump() if details.data.action_type_id else {}
    )
    secret_names = frozenset(
        k for k in details.data.configuration() if secret_properties.is_secret(k)
    )
    secret = manifests.build_secret(
        job_name=name,
        namespace=namespace,
        job_uid=str(metadata["uid"]),
        worker_name=annotations.get(names.ANNOTATION_WORKER, ""),
        job=parsed,
        secret_property_names=secret_names,
    )
    await dispatcher.ensure_secret(kube, namespace, secret, job)
    log.info("re-created the missing Secret of claiming Job %s/%s", namespace, name)


def _parse_time(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None
