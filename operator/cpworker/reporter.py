"""Where a result is sent to CodePipeline: the one way a result leaves the operator.

`Reporter` has one method per reason a CodePipeline job ends here:

- `finished`: the Kubernetes Job ended (either terminal step, or only classic sidecars still
  run: then the Job is deleted too, nothing else would stop them): success or failure from
  its pods;
- `vanished`: a running Job was deleted by someone else before it finished;
- `never_started`: its pod cannot start (refused, misconfigured, or not within its patience);
- `hand_over`: a long job is handed over with a continuation token (the action goes on);
- `cancel`: its worker was deleted with deletionPolicy Cancel;
- `reject`: a polled job that cannot run at all (malformed data, unusable template).

Order for a Job: with peering, take the report lease (replicas do not all send it; a
standalone operator is the only reporter and takes none) -> PutJob*Result ->
count it on the worker (once: `workerstatus.count_job`) -> `mark_reported` (phase, result,
TTL) -> delete the Secret -> event. A crash after the Put and before `mark_reported` repeats
the Put after a restart; CodePipeline then answers InvalidJobStateException ("already
ended"), which counts as done, and AcknowledgeJob with the recorded nonce tells whether it
holds the result being repeated (Succeeded or Failed): then the job is counted, idempotently,
had the crash come before the counter. Everything needed (job id, region, role, worker) is
read from the Job's annotations, so a job is reported even after its worker resource is gone.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cpworker import codepipeline, continuation, names, results, timestamps, workerstatus
from cpworker.jobindex import JobSummary, PodSummary, owner_uid, owning_job, summarize_pod
from cpworker.jobrecord import JobRecords
from cpworker.kube import KubeClient, KubeError
from cpworker.metrics import JobOutcome, Metrics
from cpworker.timeline import timeline_of

log = logging.getLogger(__name__)


class Sent(enum.Enum):
    """What CodePipeline made of a result."""

    ACCEPTED = "accepted"
    ALREADY_ENDED = "already-ended"  # InvalidJobStateException: reported, stopped, timed out
    UNKNOWN_JOB = "unknown-job"  # JobNotFoundException


async def put(client: codepipeline.CodePipelineClient, call: results.ReportCall) -> Sent:
    """Put the result; say whether CodePipeline took it or the job had already ended."""
    try:
        await client.put_result(call)
    except (codepipeline.InvalidJobStateError, codepipeline.JobNotFoundError) as exc:
        job_id = call.params.get("jobId")
        log.info("job %s had already ended in CodePipeline (%s): recorded", job_id, exc.code)
        if isinstance(exc, codepipeline.JobNotFoundError):
            return Sent.UNKNOWN_JOB
        return Sent.ALREADY_ENDED
    return Sent.ACCEPTED


async def send(client: codepipeline.CodePipelineClient, call: results.ReportCall) -> bool:
    """Put the result. False when CodePipeline says the job already ended (or is unknown)."""
    return await put(client, call) is Sent.ACCEPTED


# What AcknowledgeJob answers for a job that ended with a success or a failure result.
_ENDED_AS: dict[str, bool] = {"Succeeded": True, "Failed": False}


async def holds_our_result(
    client: codepipeline.CodePipelineClient, call: results.ReportCall, nonce: str
) -> bool:
    """After "already ended": does CodePipeline hold the result `call` repeats?

    AcknowledgeJob with the nonce that claimed the job answers its current status. Succeeded
    for a success (Failed for a failure) means an earlier life of this report got through
    (a crash came before it was recorded); TimedOut, or the other outcome, means the job
    ended without us. A stopped-and-abandoned job that we were failing anyway also answers
    Failed: counted as the failure it is.
    """
    if not nonce:
        return False
    try:
        status = await client.acknowledge_job(str(call.params.get("jobId")), nonce)
    except (codepipeline.InvalidNonceError, codepipeline.JobNotFoundError):
        return False
    return _ENDED_AS.get(status) is call.succeeded


def result_of(call: results.ReportCall) -> names.Result:
    if call.params.get("continuationToken"):
        return names.Result.CONTINUED
    return names.Result.SUCCEEDED if call.succeeded else names.Result.FAILED


def summary_of(call: results.ReportCall) -> str:
    if call.succeeded:
        return str((call.params.get("executionDetails") or {}).get("summary", "succeeded"))
    return str((call.params.get("failureDetails") or {}).get("message", "failed"))


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


@dataclass
class ReportGuard:
    """Reports each (Job, CodePipeline job) once per process, whoever notices first.

    The Job event handler and the in-flight supervisor may both see a finished Job; the index
    the supervisor reads can lag behind the annotation the first report wrote. Without this,
    the second report would reach CodePipeline and come back "already ended".
    """

    busy: set[str] = field(default_factory=set)
    done: dict[str, str] = field(default_factory=dict)

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

    def covers(self, job_name: str, job_id: str) -> bool:
        """True while this job is being reported, or once it was."""
        return job_name in self.busy or self.done.get(job_name) == job_id

    def forget(self, job_name: str) -> None:
        self.done.pop(job_name, None)


@dataclass
class Reporter:
    """Sends every result for one operator instance (shared by all its workers)."""

    records: JobRecords
    kube: KubeClient
    clients: codepipeline.CodePipelineClients
    finished_ttl_seconds: int
    metrics: Metrics | None = None
    # How long a reporter's claim on a Job holds before another replica may take over; None
    # when this operator is the only one (standalone): then no lease is taken at all.
    lease_seconds: float | None = 30.0
    # Crash hooks for restart tests: called with a stage name.
    hook: Callable[[str], None] = field(default=lambda _stage: None)
    guard: ReportGuard = field(default_factory=ReportGuard)
    # Identifies this operator instance in the Job's reporter annotation.
    reporter_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    # ---- why a job ends ------------------------------------------------------------------

    async def finished(self, job: JobSummary, known_pods: Sequence[PodSummary] = ()) -> bool:
        """Report a Job that ended in Kubernetes, once (event handler and supervisor share it).

        Its pods come from `known_pods` (the pod index) when that holds every pod the Job
        counted in its final state (`settled_pods`); else they are read fresh, and the index
        adds the last known state of pods already gone: an evicted pod is deleted as soon as
        the Job controller counted it, and its DisruptionTarget is the reason the job failed.
        """

        async def send_report() -> bool:
            pods = settled_pods(job, known_pods)
            if pods is None:
                pods = with_gone_pods(await self.fresh_pods(job), known_pods, job.uid)
            outcome = results.outcome_from(job.body, [p.body for p in pods])
            if not outcome.finished:
                return False
            if outcome.kind is results.OutcomeKind.FAILED and not (
                outcome.container or outcome.pod_reason
            ):
                # No pod says why: the Job may have recorded a pod ended from outside since.
                fresh = await self.records.get(job.namespace, job.name)
                if fresh is not None and fresh["metadata"].get("uid") == job.uid:
                    outcome = results.outcome_from(fresh, [p.body for p in pods])
            call = results.result_for(
                outcome,
                job_id=job.job_id,
                namespace=job.namespace,
                job_name=job.name,
                redact=await self.records.secret_configuration(job.body),
            )
            return await self._report(
                job, call, pods=[p.body for p in pods], delete_job=bool(outcome.lingering)
            )

        return await self.guard.once(job.name, job.job_id, send_report)

    async def vanished(self, job: JobSummary) -> bool:
        """A `running` Job was deleted (not by us) before it was reported."""
        if job.finished is not None:
            return await self.finished(job)
        call = results.failure_result(
            job_id=job.job_id,
            failure_type="JobFailed",
            message=f"Kubernetes Job {job.namespace}/{job.name} was deleted before it finished",
            external_execution_id=results.external_execution_id(job.namespace, job.name),
        )
        return await self.guard.once(job.name, job.job_id, lambda: self._report(job, call))

    async def never_started(self, job: JobSummary, outcome: results.Outcome) -> bool:
        """The Job's pod cannot start (refused, misconfigured, or waited for long enough): fail
        it and delete the Job."""
        call = results.result_for(
            outcome, job_id=job.job_id, namespace=job.namespace, job_name=job.name
        )
        return await self.guard.once(
            job.name, job.job_id, lambda: self._report(job, call, delete_job=True)
        )

    async def hand_over(self, job: JobSummary) -> bool:
        """End the current CodePipeline job with a continuation token; the Job runs on."""
        token = continuation.continuation_token(job.name, job.uid, job.namespace)
        call = results.success_result(
            job_id=job.job_id,
            external_execution_id=results.external_execution_id(job.namespace, job.name),
            report=results.ContainerReport(summary=f"Kubernetes Job {job.name} still running"),
            continuation_token=token,
        )
        # Intent first: a crash between the Put and `mark_continued` must not make the next
        # probe (which then hears "Succeeded") cancel the running Job.
        await self.records.record_handover_intent(job.body, job.job_id)
        accepted = await send(await self._client(job.body), call)
        self.hook("after-handover")
        if accepted:
            await self.records.mark_continued(job.body)
            self._measure(job, call, [])
            await self._post(
                job.body,
                "JobHandedOver",
                f"job {job.job_id} handed over with a continuation token (Job {job.name} runs on)",
                "Normal",
            )
        return accepted

    async def cancel(self, job: JobSummary, message: str) -> None:
        """Fail one in-flight job in CodePipeline (its worker was deleted with deletionPolicy
        Cancel) and delete its Kubernetes Job."""
        if job.phase == names.Phase.RUNNING and job.job_id:
            call = results.failure_result(
                job_id=job.job_id,
                failure_type="JobFailed",
                message=message,
                external_execution_id=results.external_execution_id(job.namespace, job.name),
            )
            if await send(await self._client(job.body), call):
                self._measure(job, call, [])
        await self.records.mark_cancelled_by_worker(job.body)

    async def reject(
        self,
        client: codepipeline.CodePipelineClient,
        job_id: str,
        failure_type: results.FailureType,
        message: str,
    ) -> bool:
        """Fail an acknowledged job that never got a Kubernetes Job (it cannot run)."""
        return await send(
            client,
            results.failure_result(job_id=job_id, failure_type=failure_type, message=message),
        )

    def covers(self, job: JobSummary) -> bool:
        """True while this job is being reported by this process, or once it was: then its
        end in CodePipeline is ours, not a cancellation."""
        return self.guard.covers(job.name, job.job_id)

    def forget(self, job_name: str) -> None:
        """The Job is gone: a later Job of the same name is a new record."""
        self.guard.forget(job_name)

    # ---- the one sequence every report of a Job follows -------------------------------

    async def _report(
        self,
        job: JobSummary,
        call: results.ReportCall,
        *,
        delete_job: bool = False,
        pods: list[Mapping[str, Any]] | None = None,
    ) -> bool:
        """Returns True when the job is settled (result accepted, or CodePipeline says it had
        already ended); False when another reporter holds the claim (we try again later)."""
        if str(call.params.get("jobId")) != job.job_id:
            raise ValueError("the report is for another job than the Job's annotation")
        if self.lease_seconds is not None and not await self.records.claim_report(
            job.body, job.job_id, reporter_id=self.reporter_id, lease_seconds=self.lease_seconds
        ):
            return False
        client = await self._client(job.body)
        sent = await put(client, call)
        self.hook("after-put")
        ours = sent is Sent.ACCEPTED or (
            sent is Sent.ALREADY_ENDED
            and await holds_our_result(
                client, call, job.annotations.get(names.ANNOTATION_NONCE, "")
            )
        )
        if ours and job.worker:
            # Before the record says "reported": a crash in between repeats the report, which
            # counts it then; the ledger in the same status write makes the count idempotent.
            counter = "succeeded" if call.succeeded else "failed"
            await workerstatus.count_job(self.kube, job.namespace, job.worker, counter, job.job_id)
        self.hook("after-count")
        await self.records.mark_reported(
            job.body, result_of(call), self.finished_ttl_seconds, reporter_id=self.reporter_id
        )
        self.hook("after-record")  # a crash here leaves the Secret to the sweeper
        await self.records.delete_secret(job.body)
        if delete_job:
            await self.records.delete(job.body)
        if sent is Sent.ACCEPTED:
            self._measure(job, call, pods or [])
        if ours:
            reason = "JobSucceeded" if call.succeeded else "JobFailed"
            message = f"job {job.job_id} (Job {job.name}): {summary_of(call)}"
            event_type = "Normal" if call.succeeded else "Warning"
        else:
            reason, event_type = "JobAlreadyEnded", "Normal"
            message = f"job {job.job_id} (Job {job.name}) had already ended in CodePipeline"
        try:
            await self._post(job.body, reason, message, event_type)
        except KubeError as exc:
            log.warning("reported job %s but could not post its event: %s", job.job_id, exc)
        return True

    def _measure(
        self, job: JobSummary, call: results.ReportCall, pods: list[Mapping[str, Any]]
    ) -> None:
        """The job's outcome and its stage latencies (from the Job record and its pods)."""
        if self.metrics is None or not job.worker:
            return
        result = result_of(call)
        outcome = {
            names.Result.SUCCEEDED: JobOutcome.SUCCEEDED,
            names.Result.CONTINUED: JobOutcome.CONTINUED,
        }.get(result, JobOutcome.FAILED)
        timeline = dataclasses.replace(timeline_of(job.body, pods), reported=timestamps.now())
        self.metrics.job_reported(
            job.namespace, job.worker, outcome, timeline, failure_type=call.failure_type
        )

    async def _client(self, job_body: Mapping[str, Any]) -> codepipeline.CodePipelineClient:
        annotations = (job_body.get("metadata") or {}).get("annotations") or {}
        return await self.clients.for_worker(
            annotations.get(names.ANNOTATION_REGION, ""), annotations.get(names.ANNOTATION_ROLE_ARN)
        )

    async def _post(
        self, job_body: Mapping[str, Any], reason: str, message: str, event_type: str
    ) -> None:
        worker = worker_reference(job_body)
        if worker is not None:
            await self.kube.post_event(worker, reason, message[:1024], type_=event_type)

    async def fresh_pods(self, job: JobSummary) -> list[PodSummary]:
        """A Job's pods, fresh from the API (the pod index may lag behind the Job's end).

        Selected by the label the Job controller puts on its pods (the Job's uid), not by
        the worker's: a worker with twenty jobs in flight would otherwise send twenty pods
        for each report."""
        pods = await self.kube.list_pods(job.namespace, names.job_pods_selector(job.uid))
        return [summarize_pod(p) for p in pods if owning_job(p) == job.name]


def settled_pods(job: JobSummary, known: Sequence[PodSummary]) -> list[PodSummary] | None:
    """This finished Job's pods from the pod index, when the index cannot lag behind: None
    unless no pod of the Job runs or terminates any more and the index holds, in a final
    phase, as many of its pods as the Job controller counted. A pod's phase is final once
    Succeeded or Failed (its status, termination messages included, is written with it), and
    a Job counts each terminated pod (`uncountedTerminatedPods` empty), so the index then
    holds what a fresh list would, and the list (an API request per job) is saved. Anything
    else (a pod still running in the index, one not in it yet, one deleted before it ended)
    is read fresh.

    Pods being deleted are in `status.terminating` only where the API server has
    JobPodReplacementPolicy (beta, on by default since 1.29); without the field, only the
    second terminal step (Complete, Failed), which waits for them, says none is left.
    """
    status = job.body.get("status") or {}
    if job.finished is None or status.get("active") or status.get("terminating"):
        return None
    if "terminating" not in status and not any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in status.get("conditions") or ()
    ):
        return None
    uncounted = status.get("uncountedTerminatedPods") or {}
    if any(uncounted.get(kind) for kind in ("succeeded", "failed")):
        return None
    ours = [pod for pod in known if owner_uid(pod.body) == job.uid]
    if any(pod.phase not in _FINAL_PHASES for pod in ours):
        return None
    counted = int(status.get("succeeded") or 0) + int(status.get("failed") or 0)
    if not ours or len(ours) < counted:
        return None
    return ours


_FINAL_PHASES = frozenset({"Succeeded", "Failed"})


def with_gone_pods(
    fresh: list[PodSummary], known: Sequence[PodSummary], job_uid: str
) -> list[PodSummary]:
    """The fresh pods, and the last known state of this Job's pods that are gone since."""
    listed = {pod.name for pod in fresh}
    gone = [
        pod for pod in known if pod.name not in listed and owner_uid(pod.body) in (job_uid, None)
    ]
    return [*fresh, *gone]
