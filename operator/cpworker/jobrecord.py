"""The Job record: every write to a Kubernetes Job and its Secret, as the protocol's verbs.

The Job (its annotations) and its Secret are the operator's durable record of a CodePipeline
job: what phase the claim is in, which nonces were tried, when it was released, who reports
it, what was reported. This module is the only one that changes them, so the stages read as
protocol steps (`create_suspended`, `add_nonce_candidate`, `release`, ...) and a newcomer finds
every state transition in one file:

    create_suspended ──► add_nonce_candidate ──► record_nonce ──► release ──► claim_report
      (claiming)            (before each ack)     (the winner)    (running)  (peering only)
          │                                                                       ▼
          └──► abandon / abandon_unless_contested              mark_reported (reported, TTL)
                                                 mark_cancelled (cancelled) ──► abandon
    hand-over:  record_handover_intent ──► mark_continued ──► adopt_continuation (new job id)

The Secret is built by `jobsecret.build_secret` (the one builder) and written only here
(`ensure_secret`, `refresh_credentials`, `delete_secret`, `delete_orphaned_secret`); every path
that writes secret values registers them with the log filter first.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Collection, Mapping
from typing import Any, Final

from cpworker import jobsecret, logging_setup, names, timestamps
from cpworker.jobdata import Job, JobData
from cpworker.kube import AlreadyExistsError, Body, ConflictError, KubeClient, NotFoundError

# At most this many nonces are kept as candidates (each redelivery adds one).
MAX_NONCE_CANDIDATES: Final = 4
# Conflicting writes to a Job's candidates are retried this often (each re-reads the Job).
CANDIDATE_ATTEMPTS: Final = 5
# Jobs this process remembers facts of (their secret configuration values, to redact reports
# without reading the Secret back; whether it deleted their Secret); beyond this the oldest
# are forgotten, which costs a read or a repeated delete, never a wrong answer.
REMEMBERED_JOBS: Final = 10_000


# --- Reading the record (pure) ---------------------------------------------------------------


def annotations_of(job: Mapping[str, Any]) -> dict[str, str]:
    return dict((job.get("metadata") or {}).get("annotations") or {})


def phase_of(job: Mapping[str, Any]) -> str:
    return annotations_of(job).get(names.ANNOTATION_PHASE, "")


def nonce_candidates(job: Mapping[str, Any]) -> list[str]:
    """The nonces recorded as tried, oldest first."""
    raw = annotations_of(job).get(names.ANNOTATION_NONCE_CANDIDATES, "")
    return [n for n in raw.split(",") if n]


def known_nonces(job: Mapping[str, Any]) -> list[str]:
    """The recorded nonce and every candidate, newest first, without repeats."""
    recorded = annotations_of(job).get(names.ANNOTATION_NONCE, "")
    nonces = [n for n in [recorded, *nonce_candidates(job)] if n]
    return list(dict.fromkeys(reversed(nonces)))


def _with_candidate(job: Mapping[str, Any], nonce: str) -> str:
    current = [n for n in nonce_candidates(job) if n != nonce]
    return ",".join([*current, nonce][-MAX_NONCE_CANDIDATES:])


def _where(job: Mapping[str, Any]) -> tuple[str, str]:
    metadata = job["metadata"]
    return str(metadata["namespace"]), str(metadata["name"])


# --- Patches (pure: the shape of each transition) ---------------------------------------------


def _annotate(annotations: Mapping[str, str | None], **metadata: Any) -> Body:
    return {"metadata": {**metadata, "annotations": dict(annotations)}}


def as_claiming(manifest: Mapping[str, Any], nonce: str, available_at: dt.datetime) -> Body:
    """The Job manifest forced into the claiming state, whatever the builder produced."""
    job = {**manifest, "spec": {**manifest.get("spec", {}), "suspend": True}}
    metadata = dict(manifest.get("metadata") or {})
    metadata["annotations"] = {
        **(metadata.get("annotations") or {}),
        names.ANNOTATION_PHASE: names.Phase.CLAIMING.value,
        names.ANNOTATION_NONCE: nonce,
        names.ANNOTATION_NONCE_CANDIDATES: nonce,
        names.ANNOTATION_AVAILABLE_AT: timestamps.rfc3339_ms(available_at),
    }
    job["metadata"] = metadata
    return job


def release_patch(now: dt.datetime) -> Body:
    """Merge patch that starts a claimed Job: `suspend: false`, phase `running`, and when."""
    return {
        **_annotate(
            {
                names.ANNOTATION_PHASE: names.Phase.RUNNING.value,
                names.ANNOTATION_RELEASED_AT: timestamps.rfc3339_ms(now),
            }
        ),
        "spec": {"suspend": False},
    }


def reported_patch(
    result: names.Result,
    finished_ttl_seconds: int,
    now: dt.datetime,
    *,
    reporter_id: str | None = None,
) -> Body:
    """Merge patch for a Job whose result CodePipeline has: phase, result, when, who sent it
    (the operator instance; a standalone one takes no lease that would say it), and its TTL.

    The TTL is set only now: a finished but unreported Job must outlive an operator outage,
    or its result would be lost with it.
    """
    annotations = {
        names.ANNOTATION_PHASE: names.Phase.REPORTED.value,
        names.ANNOTATION_RESULT: result.value,
        names.ANNOTATION_REPORTED_AT: timestamps.rfc3339_ms(now),
    }
    if reporter_id is not None:
        annotations[names.ANNOTATION_REPORTER] = f"{reporter_id} {now.timestamp():.0f}"
    return {
        **_annotate(annotations),
        "spec": {"ttlSecondsAfterFinished": finished_ttl_seconds},
    }


def continuation_patch(job: Job, *, previous_job_id: str, now: dt.datetime) -> Body:
    """Merge patch that makes an existing Job track continuation job `job`, once CodePipeline
    answered InProgress to its nonce: the Job keeps its name (named after the first job); its
    job-id label and annotations move to the new job, which is `running` at once."""
    return {
        "metadata": {
            "labels": {names.LABEL_JOB_ID: names.job_label_value(job.id)},
            "annotations": {
                names.ANNOTATION_JOB_ID: job.id,
                names.ANNOTATION_NONCE: job.nonce,
                names.ANNOTATION_ACCOUNT_ID: job.account_id,
                names.ANNOTATION_CONTINUATION_OF: previous_job_id,
                names.ANNOTATION_PHASE: names.Phase.RUNNING.value,
                names.ANNOTATION_RESULT: None,
                names.ANNOTATION_CONTINUATION_PENDING: None,
                names.ANNOTATION_CREDENTIALS_ISSUED_AT: timestamps.rfc3339(now),
            },
        }
    }


def held_by_another_reporter(
    job: Mapping[str, Any], reporter_id: str, *, now: float, lease_seconds: float
) -> bool:
    """True while another reporter's claim on this Job is younger than the lease.

    The annotation is "<reporter id> <epoch seconds>"; `now` is epoch seconds too. An
    unreadable claim counts as expired.
    """
    holder, _, since = annotations_of(job).get(names.ANNOTATION_REPORTER, "").partition(" ")
    try:
        age = now - float(since)
    except ValueError:
        return False
    return bool(holder) and holder != reporter_id and age < lease_seconds


def _remember(memory: dict[str, Any], key: str, value: Any) -> None:
    """Keep `key` as the newest entry of a bounded memory (the oldest are forgotten)."""
    memory.pop(key, None)
    memory[key] = value
    while len(memory) > REMEMBERED_JOBS:
        del memory[next(iter(memory))]


def may_report(
    job: Mapping[str, Any], job_id: str, reporter_id: str, *, now: float, lease_seconds: float
) -> bool:
    """True when this Job still runs `job_id` and no other reporter holds a live claim."""
    annotations = annotations_of(job)
    return (
        annotations.get(names.ANNOTATION_PHASE) == names.Phase.RUNNING
        and annotations.get(names.ANNOTATION_JOB_ID) == job_id
        and not held_by_another_reporter(job, reporter_id, now=now, lease_seconds=lease_seconds)
    )


# --- The verbs --------------------------------------------------------------------------------


class JobRecords:
    """Every write to Jobs and their Secrets, through one Kubernetes client."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube
        # Job uid -> the secret configuration values written into its Secret by this process,
        # so that a report need not read the Secret back (after a restart it does).
        self._redactions: dict[str, list[str]] = {}
        # Job uids whose Secret this process deleted (an ordered set): the sweeper need not.
        self._secrets_deleted: dict[str, None] = {}

    def _remember_redactions(self, job_uid: str, values: list[str]) -> None:
        self._secrets_deleted.pop(job_uid, None)
        _remember(self._redactions, job_uid, values)

    def deleted_secret_of(self, job: Mapping[str, Any]) -> bool:
        """True when this process deleted this Job's Secret (by uid) and wrote none since."""
        return str(job["metadata"].get("uid")) in self._secrets_deleted

    async def get(self, namespace: str, name: str) -> Body | None:
        """The Job as stored now, or None if it does not exist."""
        try:
            return await self.kube.get_job(namespace, name)
        except NotFoundError:
            return None

    async def vanished(self, job: Mapping[str, Any]) -> bool:
        """True when this Job (by uid) no longer exists: deleted, or replaced by a namesake."""
        namespace, name = _where(job)
        fresh = await self.get(namespace, name)
        return fresh is None or fresh["metadata"].get("uid") != job["metadata"].get("uid")

    async def listed_uids(self, namespace: str, worker: str) -> set[str]:
        """The uids of one worker's Jobs as the API server lists them now (from its watch
        cache: cheap; `vanished` confirms what is missing)."""
        jobs = await self.kube.list_jobs(
            namespace, names.worker_selector(worker), resource_version="0"
        )
        return {str(job["metadata"].get("uid")) for job in jobs}

    async def failed_creates(self, job: Mapping[str, Any]) -> list[Body]:
        """The Job controller's FailedCreate events on this Job: why it has no pod."""
        namespace, name = _where(job)
        selector = (
            f"involvedObject.kind=Job,involvedObject.name={name},"
            f"involvedObject.uid={job['metadata'].get('uid', '')},reason=FailedCreate"
        )
        return await self.kube.list_events(namespace, selector)

    # ---- the claim ------------------------------------------------------------------------

    async def create_suspended(
        self, manifest: Mapping[str, Any], nonce: str, *, available_at: dt.datetime
    ) -> tuple[Body, bool]:
        """Create the suspended Job (phase claiming, `nonce` recorded and a candidate, and
        when the job became available: the poll, or the event that announced it).

        Returns (the Job, whether we created it). `AlreadyExists` means this job was dispatched
        before (by us in an earlier life, or by another replica): the existing Job is returned
        untouched and the claimer decides.
        """
        job = as_claiming(manifest, nonce, available_at)
        namespace = str(job["metadata"]["namespace"])
        try:
            return await self.kube.create_job(namespace, job), True
        except AlreadyExistsError:
            return await self.kube.get_job(namespace, str(job["metadata"]["name"])), False

    async def add_nonce_candidate(
        self, job: Mapping[str, Any], nonce: str, *, continuation_of: str | None = None
    ) -> Body:
        """Record `nonce` as tried before acknowledging it, so that recovery knows every
        nonce that may have won (and a losing replica never deletes a winner's Job).

        The list is rewritten under a resourceVersion precondition (re-read on Conflict), so a
        candidate another replica adds at the same moment is never lost. `continuation_of`:
        the nonce is a continuation job's (its id), recorded as pending in the same write.
        """
        namespace, name = _where(job)
        for _ in range(CANDIDATE_ATTEMPTS):
            annotations: dict[str, str | None] = {
                names.ANNOTATION_NONCE_CANDIDATES: _with_candidate(job, nonce)
            }
            if continuation_of is not None:
                annotations[names.ANNOTATION_CONTINUATION_PENDING] = f"{continuation_of} {nonce}"
            version = job["metadata"].get("resourceVersion")
            try:
                return await self.kube.patch_job(
                    namespace, name, _annotate(annotations, resourceVersion=version)
                )
            except ConflictError:
                job = await self.kube.get_job(namespace, name)
        raise ConflictError(
            "PATCH", name, 409, "Conflict", "the Job kept changing while recording a nonce"
        )

    async def record_nonce(self, job: Mapping[str, Any], nonce: str) -> None:
        """Record the nonce CodePipeline answered InProgress to (the only one that counts)."""
        if annotations_of(job).get(names.ANNOTATION_NONCE) == nonce:
            return
        namespace, name = _where(job)
        await self.kube.patch_job(namespace, name, _annotate({names.ANNOTATION_NONCE: nonce}))

    async def release(self, job: Mapping[str, Any]) -> Body:
        """Let the acknowledged Job run: `suspend: false`, phase `running`, release time."""
        namespace, name = _where(job)
        return await self.kube.patch_job(namespace, name, release_patch(timestamps.now()))

    async def abandon(self, job: Mapping[str, Any]) -> None:
        """Delete a Job that must not run or is done with (and its pods, and its Secret)."""
        namespace, name = _where(job)
        await self.kube.delete_job(namespace, name)
        # Delete the Secret too: GC would, but a slow GC must not keep credentials around.
        await self.delete_secret(job)

    async def abandon_unless_contested(self, job: Mapping[str, Any], nonces: set[str]) -> bool:
        """Delete a claiming Job whose claim failed, unless someone else is claiming it too.

        Another replica that found this Job (AlreadyExists) records its nonce as a candidate
        *before* acknowledging. So a candidate that is not ours means the Job may already be
        theirs: leave it to recovery, which re-acknowledges every candidate. The delete is
        conditional on the resourceVersion read here, closing the window between read and
        delete.
        """
        namespace, name = _where(job)
        fresh = await self.get(namespace, name)
        if fresh is None:
            return True
        if set(known_nonces(fresh)) - nonces:
            return False
        version = str(fresh["metadata"].get("resourceVersion") or "")
        try:
            await self.kube.delete_job(namespace, name, resource_version=version)
        except ConflictError:
            return False
        await self.delete_secret(fresh)
        return True

    # ---- continuation ---------------------------------------------------------------------

    async def record_handover_intent(self, job: Mapping[str, Any], job_id: str) -> None:
        """Before the continuation Put: a crash between the Put and `mark_continued` must not
        make the next cancellation probe (which then hears "Succeeded") delete the Job."""
        namespace, name = _where(job)
        await self.kube.patch_job(
            namespace, name, _annotate({names.ANNOTATION_HANDOVER_OF: job_id})
        )

    async def mark_continued(self, job: Mapping[str, Any]) -> None:
        """The Job's current CodePipeline job ended with a continuation token."""
        namespace, name = _where(job)
        patch = _annotate({names.ANNOTATION_RESULT: names.Result.CONTINUED.value})
        await self.kube.patch_job(namespace, name, patch)

    async def drop_pending_continuation(self, job: Mapping[str, Any]) -> None:
        """The pending continuation is not ours to adopt (taken elsewhere, or it ended)."""
        namespace, name = _where(job)
        patch = _annotate({names.ANNOTATION_CONTINUATION_PENDING: None})
        await self.kube.patch_job(namespace, name, patch)

    async def adopt_continuation(
        self, job: Mapping[str, Any], continued: Job, *, previous_job_id: str
    ) -> Body:
        """The continuation job `continued` (acknowledged: InProgress) now owns the Job."""
        namespace, name = _where(job)
        patch = continuation_patch(continued, previous_job_id=previous_job_id, now=timestamps.now())
        return await self.kube.patch_job(namespace, name, patch)

    # ---- in flight ------------------------------------------------------------------------

    async def mark_cancelled(self, fresh: Mapping[str, Any]) -> bool:
        """CodePipeline no longer wants this job: record it, then delete the Job.

        `fresh` is the Job just read; the patch is conditional on its resourceVersion, so a
        change in between (a report, a hand-over) wins and nothing is deleted (False).
        """
        namespace, name = _where(fresh)
        version = fresh["metadata"].get("resourceVersion")
        patch = _annotate(
            {names.ANNOTATION_PHASE: names.Phase.CANCELLED.value}, resourceVersion=version
        )
        try:
            await self.kube.patch_job(namespace, name, patch)
        except ConflictError:
            return False
        await self.abandon(fresh)
        return True

    async def mark_cancelled_by_worker(self, job: Mapping[str, Any]) -> None:
        """The worker was deleted with deletionPolicy Cancel (its job already failed in
        CodePipeline): record it and delete the Job and Secret, unconditionally."""
        namespace, name = _where(job)
        await self.kube.patch_job(
            namespace, name, _annotate({names.ANNOTATION_PHASE: names.Phase.CANCELLED.value})
        )
        await self.abandon(job)

    async def record_pod_end(self, namespace: str, job_name: str, record: str) -> None:
        """A pod of this Job was ended from outside (results.pod_end_record): kept on the Job,
        because the pod is deleted before the Job's failure is reported. Gone is fine."""
        try:
            await self.kube.patch_job(
                namespace, job_name, _annotate({names.ANNOTATION_POD_ENDED: record})
            )
        except NotFoundError:
            return

    async def stop_for_sidecars(self, job: Mapping[str, Any], pod: str) -> None:
        """Only classic sidecars still run in `pod`, and its outputs are to be uploaded: record
        the pod and suspend the Job, so that the Job controller deletes the pod gracefully
        (the kubelet stops the sidecars, then the push sidecar, which uploads) and starts no
        other (results: `_stopped_for_sidecars`)."""
        namespace, name = _where(job)
        patch = _annotate({names.ANNOTATION_SIDECARS_STOPPED: pod})
        patch["spec"] = {"suspend": True}
        await self.kube.patch_job(namespace, name, patch)

    async def record_stopped_pod(self, namespace: str, job_name: str, record: str) -> None:
        """The push container of a pod being deleted terminated (results.stopped_pod_record):
        the pod's final state is kept on the Job, because the pod goes right after. Gone is
        fine."""
        try:
            await self.kube.patch_job(
                namespace, job_name, _annotate({names.ANNOTATION_STOPPED_POD: record})
            )
        except NotFoundError:
            return

    # ---- reporting ------------------------------------------------------------------------

    async def claim_report(
        self, job: Mapping[str, Any], job_id: str, *, reporter_id: str, lease_seconds: float
    ) -> bool:
        """Take the right to report this Job, so that replicas do not all send the result.

        A conditional patch (the resourceVersion just read) records the reporter; a replica
        that loses the race gets Conflict and leaves it. A claim older than the lease is taken
        over (its reporter crashed before `mark_reported`). True also when the Job is gone: the
        result must reach CodePipeline anyway.

        The Job is read first, not taken from the watch: a Job that just finished is still
        being written by the Job controller (its second terminal condition, completionTime),
        so the watch's version failed the precondition for most reports (`cpworker bench`).
        """
        namespace, name = _where(job)
        fresh = await self.get(namespace, name)
        if fresh is None:
            return True
        now = time.time()
        if not may_report(fresh, job_id, reporter_id, now=now, lease_seconds=lease_seconds):
            return False
        patch = _annotate(
            {names.ANNOTATION_REPORTER: f"{reporter_id} {now:.0f}"},
            resourceVersion=fresh["metadata"].get("resourceVersion"),
        )
        try:
            await self.kube.patch_job(namespace, name, patch)
        except ConflictError:
            return False
        except NotFoundError:
            pass  # gone: the result must reach CodePipeline anyway
        return True

    async def mark_reported(
        self,
        job: Mapping[str, Any],
        result: names.Result,
        finished_ttl_seconds: int,
        *,
        reporter_id: str | None = None,
    ) -> None:
        """CodePipeline has the result: phase `reported`, what was reported, by whom, and the
        TTL. A Job deleted meanwhile is fine (there is nothing left to mark)."""
        namespace, name = _where(job)
        patch = reported_patch(
            result, finished_ttl_seconds, timestamps.now(), reporter_id=reporter_id
        )
        try:
            await self.kube.patch_job(namespace, name, patch)
        except NotFoundError:
            return

    async def delete(self, job: Mapping[str, Any]) -> None:
        """Delete a reported Job that must not linger (a pod that never started)."""
        namespace, name = _where(job)
        await self.kube.delete_job(namespace, name)

    # ---- the Secret -----------------------------------------------------------------------

    async def ensure_secret(
        self, job: Mapping[str, Any], cp_job: Job, secret_property_names: Collection[str]
    ) -> None:
        """Create the Job's Secret (owned by the Job), or refresh its data if it exists."""
        namespace, name = _where(job)
        # Belt and braces: the log filter masks these should one ever reach a log line.
        logging_setup.SECRETS.add(jobsecret.masked_values(cp_job.data, secret_property_names))
        secret = jobsecret.build_secret(
            job_name=name,
            namespace=namespace,
            job_uid=str(job["metadata"]["uid"]),
            worker_name=annotations_of(job).get(names.ANNOTATION_WORKER, ""),
            job=cp_job,
            secret_property_names=secret_property_names,
        )
        self._redactions.pop(str(job["metadata"]["uid"]), None)  # until written again
        try:
            await self.kube.create_secret(namespace, secret)
        except AlreadyExistsError:
            # A Secret left by an earlier Job of the same name still names that Job as its
            # owner, and the garbage collector would delete it under this Job's pod: the
            # whole metadata we own is rewritten, owner reference included.
            metadata = secret["metadata"]
            patch: Body = {
                "metadata": {
                    "labels": metadata["labels"],
                    "annotations": metadata["annotations"],
                    "ownerReferences": metadata["ownerReferences"],
                },
                "data": secret["data"],
            }
            await self.kube.patch_secret(namespace, name, patch)
        self._remember_redactions(
            str(job["metadata"]["uid"]),
            jobsecret.secret_configuration_values(cp_job.data, secret_property_names),
        )

    async def has_secret(self, job: Mapping[str, Any]) -> bool:
        namespace, name = _where(job)
        try:
            await self.kube.get_secret(namespace, name)
        except NotFoundError:
            return False
        return True

    async def refresh_credentials(
        self,
        job: Mapping[str, Any],
        *,
        job_id: str,
        account_id: str,
        data: JobData,
        secret_property_names: Collection[str],
        now: dt.datetime,
    ) -> None:
        """Rewrite the Secret with the fresh credentials of GetJobDetails (pods see the update
        through the volume), then record when they were issued."""
        namespace, name = _where(job)
        logging_setup.SECRETS.add(jobsecret.masked_values(data, secret_property_names))
        patch = jobsecret.credentials_patch(job_id, account_id, data, secret_property_names)
        uid = str(job["metadata"]["uid"])
        self._redactions.pop(uid, None)  # until written again
        await self.kube.patch_secret(namespace, name, patch)
        self._remember_redactions(
            uid, jobsecret.secret_configuration_values(data, secret_property_names)
        )
        issued = _annotate({names.ANNOTATION_CREDENTIALS_ISSUED_AT: timestamps.rfc3339(now)})
        await self.kube.patch_job(namespace, name, issued)

    async def delete_secret(self, job: Mapping[str, Any]) -> None:
        namespace, name = _where(job)
        await self.kube.delete_secret(namespace, name)
        uid = str(job["metadata"].get("uid"))
        self._redactions.pop(uid, None)
        _remember(self._secrets_deleted, uid, None)

    async def delete_orphaned_secret(self, namespace: str, name: str, gone_uid: str) -> bool:
        """Delete the Secret `name` if no existing Job owns it: its Job (uid `gone_uid`) was
        deleted while the garbage collector lags, or it lost its owner reference (a Job
        deleted with propagationPolicy Orphan). A Secret that a newer Job of the same name
        owns stays. Conditional on the Secret read here (a write in between wins).

        True when no orphaned Secret is left (deleted, none, or not orphaned).
        """
        try:
            secret = await self.kube.get_secret(namespace, name)
        except NotFoundError:
            return True
        metadata = secret["metadata"]
        owners = {
            str(ref.get("uid"))
            for ref in metadata.get("ownerReferences") or []
            if ref.get("kind") == "Job"
        }
        if owners - {gone_uid}:
            current = await self.get(namespace, name)
            if current is not None and str(current["metadata"].get("uid")) in owners:
                return True  # a newer Job of that name owns it
        try:
            await self.kube.delete_secret(
                namespace,
                name,
                uid=str(metadata.get("uid") or ""),
                resource_version=str(metadata.get("resourceVersion") or ""),
            )
        except ConflictError:
            return False  # changed since read (a new Job's claim took it over): look again
        self._redactions.pop(gone_uid, None)
        return True

    async def secret_configuration(self, job: Mapping[str, Any]) -> list[str]:
        """The job's secret configuration values (to redact them from what is reported):
        as written by this process, or read from the Secret."""
        remembered = self._redactions.get(str(job["metadata"].get("uid")))
        if remembered is not None:
            return list(remembered)
        namespace, name = _where(job)
        try:
            secret = await self.kube.get_secret(namespace, name)
        except NotFoundError:
            return []
        return jobsecret.stored_secret_configuration(secret)
