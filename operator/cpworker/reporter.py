"""Sends a finished job's result to CodePipeline, then cleans up after it.

Order: PutJob*Result -> annotate the Job `phase: reported` (+ result) -> delete the Secret ->
event on the worker -> counters in the worker's status. A crash after the Put and before the
annotation repeats the Put after a restart; CodePipeline then answers
InvalidJobStateException ("already ended"), which counts as done. So reporting is
idempotent across restarts and never retried forever.

Everything needed (job id, region, role, worker) is read from the Job's annotations, so a
job is reported even after its worker resource is gone.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cpworker import codepipeline, manifests, names, results
from cpworker.kube import Body, ConflictError, KubeClient, KubeError, NotFoundError

log = logging.getLogger(__name__)


async def send(client: codepipeline.CodePipelineClient, call: results.ReportCall) -> bool:
    """Put the result. False when CodePipeline says the job already ended (or is unknown)."""
    params = call.params
    job_id = str(params["jobId"])
    try:
        if call.succeeded:
            await client.put_job_success_result(
                job_id,
                execution_details=params.get("executionDetails"),
                output_variables=params.get("outputVariables"),
                current_revision=params.get("currentRevision"),
                continuation_token=params.get("continuationToken"),
            )
        else:
            await client.put_job_failure_result(job_id, params["failureDetails"])
    except (codepipeline.InvalidJobStateError, codepipeline.JobNotFoundError) as exc:
        log.info("job %s had already ended in CodePipeline (%s): recorded", job_id, exc.code)
        return False
    return True


def result_of(call: results.ReportCall) -> names.Result:
    if call.params.get("continuationToken"):
        return names.Result.CONTINUED
    return names.Result.SUCCEEDED if call.succeeded else names.Result.FAILED


def summary_of(call: results.ReportCall) -> str:
    if call.succeeded:
        return str((call.params.get("executionDetails") or {}).get("summary", "succeeded"))
    return str((call.params.get("failureDetails") or {}).get("message", "failed"))


async def secret_values(kube: KubeClient, namespace: str, name: str) -> list[str]:
    """The job's secret configuration values (to redact them from what is reported)."""
    try:
        secret = await kube.get_secret(namespace, name)
    except NotFoundError:
        return []
    values: list[str] = []
    for key, encoded in (secret.get("data") or {}).items():
        if not key.startswith(manifests.SECRET_CONFIG_FILE_PREFIX) and key != (
            manifests.SECRET_CONFIG_KEY
        ):
            continue
        try:
            text = base64.b64decode(encoded).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            continue
        if key == manifests.SECRET_CONFIG_KEY:
            with contextlib.suppress(ValueError, AttributeError):
                values += [str(v) for v in json.loads(text).values()]
        else:
            values.append(text)
    return [v for v in values if v]


def worker_reference(job_body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The worker a Job belongs to, as an event's involvedObject."""
    metadata = job_body.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    uid = ""
    for ref in metadata.get("ownerReferences") or []:
        if ref.get("kind") == names.KIND:
            uid = str(ref.get("uid", ""))
    name = annotations.get(names.ANNOTATION_WORKER)
    if not name:
        return None
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {"name": name, "namespace": metadata.get("namespace", ""), "uid": uid},
    }


# One lock per worker: counter updates of one process never race each other; across
# replicas the resourceVersion precondition catches the race.
_COUNTER_LOCKS: dict[tuple[int, str, str], asyncio.Lock] = {}
COUNTERS = ("succeeded", "failed", "lostRaces")


async def _update_status(
    kube: KubeClient,
    namespace: str,
    worker: str,
    change: Callable[[Mapping[str, Any]], dict[str, Any] | None],
) -> None:
    """Read-modify-write of the worker's status under a resourceVersion precondition.

    `change` maps the current status to the fields to write, or None when nothing is to be
    written. The worker may be gone: then there is nothing to count.
    """
    key = (id(asyncio.get_running_loop()), namespace, worker)
    lock = _COUNTER_LOCKS.setdefault(key, asyncio.Lock())
    async with lock:
        for _ in range(5):
            try:
                body = await kube.get_worker(namespace, worker)
            except NotFoundError:
                return
            fields = change(body.get("status") or {})
            if not fields:
                return
            patch = {
                "metadata": {"resourceVersion": body["metadata"].get("resourceVersion")},
                "status": fields,
            }
            try:
                await kube.request(
                    "PATCH",
                    f"/apis/{names.GROUP}/{names.VERSION}/namespaces/{namespace}/"
                    f"{names.PLURAL}/{worker}/status",
                    patch,
                    content_type="application/merge-patch+json",
                )
            except ConflictError:
                continue
            except NotFoundError:
                return
            return
        log.warning("could not update the status of worker %s/%s (conflicts)", namespace, worker)


async def increment_counter(kube: KubeClient, namespace: str, worker: str, field: str) -> None:
    """Add one to `status.<field>` (optimistic concurrency; the worker may be gone)."""
    await _update_status(
        kube, namespace, worker, lambda status: {field: int(status.get(field) or 0) + 1}
    )


async def initialise_counters(kube: KubeClient, namespace: str, worker: str) -> None:
    """Start absent counters at 0 (so `kubectl get caw` shows 0, not blank); never resets one."""
    await _update_status(
        kube,
        namespace,
        worker,
        lambda status: {c: 0 for c in COUNTERS if c not in status} or None,
    )


@dataclass
class ReportGuard:
    """Reports each (Job, CodePipeline job) once per process, whoever notices first.

    The Job event handler and the tending loop may both see a finished Job; the index that
    tending reads can lag behind the annotation the first report wrote. Without this, the
    second report would reach CodePipeline and come back "already ended".
    """

    busy: set[str] = field(default_factory=set)
    done: dict[str, str] = field(default_factory=dict)
    # Identifies this operator instance in the Job's reporter annotation.
    reporter_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    # How long a reporter's claim on a Job holds before another may take over.
    lease_seconds: float = 30.0

    async def once(self, job_name: str, job_id: str, action: Callable[[], Awaitable[bool]]) -> bool:
        """Run `action` unless it runs or ran for this job; it returns whether it is done."""
        if job_name in self.busy or self.done.get(job_name) == job_id:
            return False
        self.busy.add(job_name)
        try:
            handled = await action()
            if handled:
                self.done[job_name] = job_id
        finally:
            self.busy.discard(job_name)
        return handled

    def forget(self, job_name: str) -> None:
        self.done.pop(job_name, None)


# Who is sending a Job's result, and since when: "<reporter id> <epoch seconds>".
ANNOTATION_REPORTER = f"{names.GROUP}/reporter"


async def claim_report(
    kube: KubeClient,
    namespace: str,
    name: str,
    job_id: str,
    *,
    reporter_id: str,
    lease_seconds: float = 30.0,
) -> bool:
    """Take the right to report this Job, so that replicas do not all send the result.

    A conditional patch (the resourceVersion just read) records the reporter; a replica
    that loses the race gets Conflict and leaves it. A claim older than the lease is taken
    over (its reporter crashed before `phase: reported`). Duplicates would be harmless
    (CodePipeline answers "already ended") but noisy.
    """
    try:
        fresh = await kube.get_job(namespace, name)
    except NotFoundError:
        return True  # report anyway: the result must reach CodePipeline
    metadata = fresh.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    if (
        annotations.get(names.ANNOTATION_PHASE) != names.Phase.RUNNING
        or annotations.get(names.ANNOTATION_JOB_ID) != job_id
    ):
        return False
    holder, _, since = str(annotations.get(ANNOTATION_REPORTER, "")).partition(" ")
    try:
        age = time.time() - float(since)
    except ValueError:
        age = float("inf")
    if holder and holder != reporter_id and age < lease_seconds:
        return False
    patch = {
        "metadata": {
            "resourceVersion": metadata.get("resourceVersion"),
            "annotations": {ANNOTATION_REPORTER: f"{reporter_id} {time.time():.0f}"},
        }
    }
    try:
        await kube.patch_job(namespace, name, patch)
    except ConflictError:
        return False
    except NotFoundError:
        return True
    return True


async def mark_reported(
    kube: KubeClient, namespace: str, name: str, result: names.Result, finished_ttl_seconds: int
) -> None:
    await kube.patch_job(namespace, name, manifests.reported_patch(result, finished_ttl_seconds))


async def report(
    kube: KubeClient,
    clients: codepipeline.CodePipelineClients,
    job_body: Body,
    call: results.ReportCall,
    *,
    delete_job: bool = False,
    hook: Callable[[str], None] | None = None,
    reporter_id: str = "",
    lease_seconds: float = 30.0,
    finished_ttl_seconds: int,
) -> bool:
    """Report one job and clean up.

    Returns True when the job is settled (result accepted, or CodePipeline says it had
    already ended); False when another reporter holds the claim (tending tries again).
    """
    metadata = job_body["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    annotations = metadata.get("annotations") or {}
    job_id = annotations[names.ANNOTATION_JOB_ID]
    client = await clients.for_worker(
        annotations.get(names.ANNOTATION_REGION, ""), annotations.get(names.ANNOTATION_ROLE_ARN)
    )
    if str(call.params.get("jobId")) != job_id:
        raise ValueError("the report is for another job than the Job's annotation")
    if reporter_id and not await claim_report(
        kube, namespace, name, job_id, reporter_id=reporter_id, lease_seconds=lease_seconds
    ):
        return False
    accepted = await send(client, call)
    if hook is not None:
        hook("after-put")
    with contextlib.suppress(NotFoundError):
        await mark_reported(kube, namespace, name, result_of(call), finished_ttl_seconds)
    await kube.delete_secret(namespace, name)
    if delete_job:
        await kube.delete_job(namespace, name)
    worker = worker_reference(job_body)
    if worker is None:
        return True
    if accepted:
        reason = "JobSucceeded" if call.succeeded else "JobFailed"
        message = f"job {job_id} (Job {name}): {summary_of(call)}"
        event_type = "Normal" if call.succeeded else "Warning"
        counter = "succeeded" if call.succeeded else "failed"
    else:
        reason, event_type, counter = "JobAlreadyEnded", "Normal", ""
        message = f"job {job_id} (Job {name}) had already ended in CodePipeline"
    try:
        await kube.post_event(worker, reason, message[:1024], type_=event_type)
        if counter:
            await increment_counter(kube, namespace, worker["metadata"]["name"], counter)
    except KubeError as exc:
        log.warning("reported job %s but could not update its worker: %s", job_id, exc)
    return True
