"""What a worker's status says, and the one place that writes it.

- The Ready condition's policy: which reason and message each situation gets (an invalid spec,
  paused, a poll error with what to do about it, polling, at capacity, draining).
- `StatusPublisher`: writes the status through the API only when it changed (kopf flushes a
  daemon's `patch` only when the daemon returns, so a long-running loop patches directly).
- The counters (`succeeded`, `failed`, `lostRaces`): read-modify-write under a resourceVersion
  precondition, so replicas never lose an increment to each other. A reported job is counted
  with its id in the same write (`count_job`, the bounded ledger `status.countedJobs`), so a
  report repeated after a crash is counted exactly once (docs/reliability.md, "Counters").
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from cpworker import codepipeline, kubehealth, models, timestamps
from cpworker.kube import ConflictError, KubeClient, KubeError, NotFoundError, rbac_attributes
from cpworker.wakeups import Wakeups

log = logging.getLogger(__name__)

COUNTERS: Final = ("succeeded", "failed", "lostRaces")


# --- The Ready condition's policy (pure) -------------------------------------------------------


# Poll errors, most specific class first: (error class, reason, message). `{code}` and
# `{detail}` are the service's error code and (cut) message, never request data.
_POLL_ERRORS: Final[list[tuple[type[codepipeline.CodePipelineError], str, str]]] = [
    (
        codepipeline.ActionTypeNotFoundError,
        models.Reason.ACTION_TYPE_NOT_FOUND,
        (
            "CodePipeline does not know this action type in this region: create it "
            "(e.g. with the cpworker Terraform module) or fix spec.actionTypeId / spec.region"
        ),
    ),
    (
        codepipeline.CredentialsExpiredError,
        models.Reason.CREDENTIALS_EXPIRED,
        (
            "the operator's AWS credentials have expired ({code}): they renew by themselves from "
            "the pod's identity (EKS Pod Identity, IRSA web identity); if this lasts, check that "
            "source (its token file, the pod identity agent, the node's clock); polling backs off "
            "(up to spec.polling.maxIntervalSeconds) until they work again"
        ),
    ),
    (
        codepipeline.CredentialsInvalidError,
        models.Reason.CREDENTIALS_INVALID,
        (
            "AWS does not recognise the operator's credentials ({code}): the key was revoked or "
            "deleted, or is not for this partition; fix the operator's identity (serviceAccount "
            "annotations, Pod Identity association); polling backs off until they work"
        ),
    ),
    (
        codepipeline.RoleNotAssumableError,
        models.Reason.ROLE_NOT_ASSUMABLE,
        (
            "the operator cannot assume spec.roleArn (STS answered {code}): check that the role "
            "exists and that its trust policy lets the operator's role assume it (`cpworker "
            "check` tries); only this worker is affected"
        ),
    ),
    (
        codepipeline.AccessDeniedError,
        models.Reason.ACCESS_DENIED,
        (
            "the operator's AWS identity may not poll this action type: grant "
            "codepipeline:PollForJobs/AcknowledgeJob/GetJobDetails/PutJob*Result "
            "(or fix spec.roleArn and its trust policy)"
        ),
    ),
    (
        codepipeline.ThrottledError,
        models.Reason.THROTTLED,
        "CodePipeline is throttling; polling backs off",
    ),
    (
        codepipeline.UnavailableError,
        models.Reason.SERVICE_UNAVAILABLE,
        "CodePipeline could not be reached; polling backs off",
    ),
    (
        codepipeline.RequestValidationError,
        "InvalidRequest",
        "CodePipeline rejected the poll: {detail}",
    ),
]


def condition_for_error(error: codepipeline.CodePipelineError) -> tuple[str, str]:
    """(reason, message) of the Ready=False condition for a poll error: says what to do."""
    for kind, reason, message in _POLL_ERRORS:
        if isinstance(error, kind):
            return (str(reason), message.format(code=error.code, detail=error.detail[:300]))
    return ("PollFailed", f"PollForJobs failed: {error.code}")


def condition_for_kube_error(error: KubeError) -> tuple[str, str]:
    """(reason, message) of the Ready=False condition while the Kubernetes API fails the
    worker's claims or supervision (after the client's own retries)."""
    verb, resource = rbac_attributes(error.method, error.path)
    what = f"{verb} {resource} answered {error.status} {error.reason}".rstrip()
    if kubehealth.is_forbidden(error):
        message = (
            f"the Kubernetes API refuses the operator's requests here ({what}): grant the "
            "operator's service account the permissions of `cpworker check` (the chart's "
            "RBAC) in this namespace; polled jobs are handed out again meanwhile"
        )
        return (models.Reason.KUBERNETES_FORBIDDEN, message)
    message = (
        f"the Kubernetes API fails the worker's requests ({what}): claims and reports back "
        "off and are retried; CodePipeline hands unclaimed jobs out again"
    )
    return (models.Reason.KUBERNETES_UNAVAILABLE, message)


@dataclass(frozen=True)
class Readiness:
    """The Ready condition a worker should show now (and the error to keep, if any)."""

    ready: bool
    reason: str
    message: str
    error: tuple[str, str] | None = None


def readiness(
    *,
    problem: str | None,
    paused: bool,
    error: codepipeline.CodePipelineError | None,
    polled: bool,
    in_flight: int,
    wakeups: Wakeups = Wakeups.NONE,
    budget_limited: bool = False,
    first_poll_pending: bool = False,
    kube_error: KubeError | None = None,
) -> Readiness:
    """The Ready condition for the worker's current situation, most important first.

    Messages carry no changing numbers, so that a steady worker's status is not rewritten.
    """
    if problem is not None:
        return Readiness(ready=False, reason=models.Reason.INVALID_SPEC, message=problem)
    if paused:
        message = f"spec.paused is true: not polling; {in_flight} job(s) in flight run to the end"
        return Readiness(ready=False, reason=models.Reason.PAUSED, message=message)
    # A poll error first (nothing is claimed then), else what Kubernetes did to the claims.
    trouble = (
        condition_for_error(error)
        if error is not None
        else condition_for_kube_error(kube_error)
        if kube_error is not None
        else None
    )
    if trouble is not None:
        reason, message = trouble
        return Readiness(ready=False, reason=reason, message=message, error=trouble)
    if budget_limited:
        return Readiness(
            ready=True,
            reason=models.Reason.BUDGET_LIMITED,
            message="idle polls are spaced beyond the polling policy: the workers sharing this "
            "account and region's CodePipeline rate budget want more polls than it carries; "
            "raise CPWORKER_RATE_PER_SECOND, raise polling.maxIntervalSeconds, or use the "
            "events queue (CPWORKER_EVENTS_QUEUE_URL)",
        )
    if wakeups in (Wakeups.LOST, Wakeups.SILENT):
        why = (
            "the events queue cannot be read (check its URL, region and the operator's "
            "sqs:ReceiveMessage permission)"
            if wakeups is Wakeups.LOST
            else "a job arrived that no event announced (check the EventBridge rule of this "
            "action type)"
        )
        return Readiness(
            ready=True,
            reason=models.Reason.POLLING_ONLY,
            message=f"polling only: {why}; polling at the worker's own interval until events "
            "work again",
        )
    if first_poll_pending:
        message = "the action type exists: first poll soon"
    elif not polled:
        message = "at capacity (maxInFlight reached): waiting for jobs to finish"
    elif wakeups is Wakeups.EVENTS:
        message = "polling for jobs, woken at once by CodePipeline's events"
    else:
        message = "polling for jobs"
    return Readiness(ready=True, reason=models.Reason.POLLING, message=message)


def draining_message(in_flight: int) -> str:
    return f"draining: {in_flight} job(s) in flight; they end by their activeDeadlineSeconds"


# --- Writing the status ------------------------------------------------------------------------


# How long a change that only counts (inFlight between 1 and more, or the Ready message
# within one reason, such as "at capacity") waits for the next one. A burst changes inFlight
# on every claim and every report: written at once, that was a status write per job, as many
# as the job's own record costs the API server. The latest value is written at the latest
# this long after the previous write; a change of Ready, its reason, the generation, the
# last error or between busy and idle is written at once (alerts and `kubectl wait` read
# those).
SETTLE_SECONDS: Final = 5.0


def _significant(comparable: Mapping[str, Any]) -> tuple[Any, ...]:
    """What of a status is written at once when it changes (see SETTLE_SECONDS)."""
    conditions = tuple(
        (c.get("type"), c.get("status"), c.get("reason"), c.get("observedGeneration"))
        for c in comparable.get("conditions") or ()
    )
    # Busy or idle is a state (the last job ended: `kubectl get caw` says 0 at once); the
    # count between is a gauge.
    busy = bool(comparable.get("inFlight"))
    return conditions, comparable.get("observedGeneration"), comparable.get("lastError"), busy


@dataclass
class StatusPublisher:
    """Turns cycle outcomes into the worker's status, written only when it changes.

    kopf flushes a daemon's `patch` only when the daemon returns, so the status is patched
    through the API. To keep a thousand idle workers from writing to the API server (and
    etcd) on every poll, a write happens when anything but `lastPollTime` changed, or when
    the written `lastPollTime` is older than `refresh_seconds` (a coarse heartbeat). A change
    that only counts settles first (`settle_seconds`, SETTLE_SECONDS): one trailing write
    carries the latest value. Writes never overlap, so an older status never lands last.
    """

    write: Callable[[dict[str, Any]], Awaitable[Any]]
    refresh_seconds: float = 30.0
    settle_seconds: float = SETTLE_SECONDS
    clock: Callable[[], float] = field(default=lambda: asyncio.get_running_loop().time())
    _last_written: dict[str, Any] | None = None
    _last_write_at: float = 0.0
    _conditions: list[models.Condition] = field(default_factory=list)
    _last_poll: dt.datetime | None = None
    _last_error: models.LastError | None = None
    _deferred: dict[str, Any] | None = None
    _trailing: asyncio.Task[None] | None = None
    _writing: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def publish(
        self,
        *,
        ready: bool,
        reason: str,
        message: str,
        generation: int | None,
        in_flight: int,
        polled_ok: bool = False,
        error: tuple[str, str] | None = None,
    ) -> None:
        now = timestamps.now()
        condition = models.ready_condition(
            ready, reason, message, now=now, observed_generation=generation
        )
        self._conditions = models.set_condition(self._conditions, condition, now)
        if polled_ok:
            self._last_poll = now
        if error is not None:
            self._last_error = models.last_error(error[0], error[1], now=now)
        status = models.CustomActionWorkerStatus(
            conditions=self._conditions,
            observed_generation=generation,
            in_flight=in_flight,
            last_poll_time=self._last_poll,
            last_error=self._last_error,
        )
        patch = models.status_patch(status)
        comparable = _comparable(patch)
        due = self.clock() - self._last_write_at >= self.refresh_seconds
        if self._last_written is not None and comparable == self._last_written and not due:
            self._deferred = None  # back to what is written: a pending trailing write is moot
            return
        if self._settles(comparable):
            self._deferred = patch
            if self._trailing is None or self._trailing.done():
                self._trailing = asyncio.create_task(self._write_trailing())
            return
        self._deferred = None
        await self._write_now(patch)

    async def settled(self) -> None:
        """Return once no trailing write is pending (for tests)."""
        while self._trailing is not None and not self._trailing.done():
            await asyncio.shield(self._trailing)

    def close(self) -> None:
        """The worker's loop ends: no trailing write may land after whatever comes next (the
        drain's status)."""
        self._deferred = None
        if self._trailing is not None:
            self._trailing.cancel()

    def _settles(self, comparable: Mapping[str, Any]) -> bool:
        if self._last_written is None:
            return False
        if self.clock() - self._last_write_at >= self.settle_seconds:
            return False
        return _significant(comparable) == _significant(self._last_written)

    async def _write_trailing(self) -> None:
        while self._deferred is not None:
            wait = self._last_write_at + self.settle_seconds - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)
                continue  # a write may have come in between: it restarts the wait
            await self._write_now(None)

    async def _write_now(self, patch: dict[str, Any] | None) -> None:
        """Write `patch`, or the deferred one (None), one write at a time."""
        async with self._writing:
            if patch is None:
                patch, self._deferred = self._deferred, None
                if patch is None:
                    return
            try:
                await self.write(patch)
            except KubeError as exc:
                # The status is what the operator shows, not what it does: a refused write
                # must not cost the worker its cycle. Nothing is marked written, so the next
                # cycle writes again.
                log.warning("could not write a worker's status (retried next cycle): %s", exc)
                return
            self._last_written = _comparable(patch)
            self._last_write_at = self.clock()

    def ready_condition(self) -> models.Condition | None:
        """The Ready condition as last published (or adopted from the stored status)."""
        return next((c for c in self._conditions if c.type == models.ConditionType.READY), None)

    def adopt(self, status: Mapping[str, Any]) -> None:
        """Start from the stored status (keeps lastTransitionTime across restarts)."""
        try:
            parsed = models.CustomActionWorkerStatus.model_validate(dict(status or {}))
        except ValueError:
            return
        self._conditions = list(parsed.conditions)
        self._last_poll = parsed.last_poll_time
        self._last_error = parsed.last_error


@dataclass
class WorkerStatus:
    """The status of one worker: its Ready condition (through a publisher) and its counters."""

    kube: KubeClient
    namespace: str
    name: str
    # How often lastPollTime alone is rewritten (settings.status_heartbeat_seconds).
    heartbeat_seconds: float = 3600.0
    publisher: StatusPublisher = field(init=False)

    def __post_init__(self) -> None:
        async def write(patch: dict[str, Any]) -> None:
            await self.kube.patch_worker_status(self.namespace, self.name, patch)

        self.publisher = StatusPublisher(write, refresh_seconds=self.heartbeat_seconds)

    async def show(
        self,
        *,
        problem: str | None,
        paused: bool,
        error: codepipeline.CodePipelineError | None,
        polled: bool,
        in_flight: int,
        generation: int | None,
        wakeups: Wakeups = Wakeups.NONE,
        budget_limited: bool = False,
        first_poll_pending: bool = False,
        kube_error: KubeError | None = None,
    ) -> None:
        """Publish the Ready condition for the worker's current situation."""
        state = readiness(
            problem=problem,
            paused=paused,
            error=error,
            polled=polled,
            in_flight=in_flight,
            wakeups=wakeups,
            budget_limited=budget_limited,
            first_poll_pending=first_poll_pending,
            kube_error=kube_error,
        )
        await self.publisher.publish(
            ready=state.ready,
            reason=state.reason,
            message=state.message,
            generation=generation,
            in_flight=in_flight,
            # The poll itself worked even when Kubernetes fails the claims (lastPollTime).
            polled_ok=polled and error is None and problem is None and not first_poll_pending,
            error=state.error,
        )

    async def initialise_counters(self) -> None:
        await initialise_counters(self.kube, self.namespace, self.name)

    async def count(self, counter: str) -> None:
        await increment_counter(self.kube, self.namespace, self.name, counter)


async def publish_draining(kube: KubeClient, namespace: str, name: str, in_flight: int) -> None:
    """The worker is being deleted and waits for its in-flight jobs (best effort)."""
    status = models.CustomActionWorkerStatus(
        conditions=[
            models.ready_condition(
                ready=False,
                reason=models.Reason.DELETING,
                message=draining_message(in_flight),
                now=timestamps.now(),
            )
        ],
        in_flight=in_flight,
    )
    try:
        await kube.patch_worker_status(namespace, name, models.status_patch(status))
    except KubeError as exc:  # best effort: the finalizer retries anyway
        log.info("could not show the drain on worker %s/%s: %s", namespace, name, exc)


def _comparable(patch: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in patch.items() if k != "lastPollTime"}


# --- The counters ------------------------------------------------------------------------------

# One lock per worker: counter updates of one process never race each other; across
# replicas the resourceVersion precondition catches the race.
_COUNTER_LOCKS: dict[tuple[int, str, str], asyncio.Lock] = {}


async def _update_status(
    kube: KubeClient,
    namespace: str,
    worker: str,
    change: Callable[[Mapping[str, Any]], dict[str, Any] | None],
    *,
    must_write: bool = False,
    done: Callable[[], bool] = lambda: False,
) -> None:
    """Read-modify-write of the worker's status under a resourceVersion precondition.

    `change` maps the current status to the fields to write, or None when nothing is to be
    written. The worker may be gone: then there is nothing to count. With `must_write`, a write
    that keeps conflicting raises ConflictError instead of giving up quietly. `done`, asked once
    the lock is held, says that a write made while this call waited for it did the work: then
    the worker is not even read.
    """
    key = (id(asyncio.get_running_loop()), namespace, worker)
    lock = _COUNTER_LOCKS.setdefault(key, asyncio.Lock())
    async with lock:
        if done():
            return
        for _ in range(5):
            try:
                body = await kube.get_worker(namespace, worker)
            except NotFoundError:
                return
            fields = change(body.get("status") or {})
            if not fields:
                return
            version = str(body["metadata"].get("resourceVersion") or "")
            try:
                await kube.patch_worker_status(namespace, worker, fields, resource_version=version)
            except ConflictError:
                continue
            except NotFoundError:
                return
            return
        if must_write:
            raise ConflictError(
                "PATCH", f"{namespace}/{worker}/status", 409, "Conflict", "kept conflicting"
            )
        log.warning("could not update the status of worker %s/%s (conflicts)", namespace, worker)


# Jobs not yet counted, per worker (same keys as the locks), job id -> counter: reports that
# finish while another one's count is being written are counted together, in one read and one
# patch (a burst of reports costs one write per worker at a time, not one per job).
_PENDING: dict[tuple[int, str, str], dict[str, str]] = {}


def counted_key(job_id: str) -> str:
    """A job's entry in `status.countedJobs`: 12 hex digits of its id's hash (48 bits: two of
    a worker's last 200 jobs collide with a chance of about 1e-10)."""
    return hashlib.sha256(job_id.encode("utf-8")).hexdigest()[:12]


def count_patch(status: Mapping[str, Any], counts: Mapping[str, str]) -> dict[str, Any] | None:
    """The status fields that count each job of `counts` (job id -> counter) once, or None if
    every one was counted already.

    Pure: the counters and the ledger of the jobs counted last change in one write, so no
    crash can separate them.
    """
    ledger = [str(k) for k in status.get("countedJobs") or []]
    new = {counted_key(job): counter for job, counter in counts.items()}
    new = {key: counter for key, counter in new.items() if key not in ledger}
    if not new:
        return None
    fields: dict[str, Any] = {
        counter: int(status.get(counter) or 0) + n
        for counter, n in collections.Counter(new.values()).items()
    }
    fields["countedJobs"] = [*ledger, *new][-models.COUNTED_JOBS_MAX :]
    return fields


async def count_job(
    kube: KubeClient, namespace: str, worker: str, counter: str, job_id: str
) -> None:
    """Count a reported job in `status.<counter>`, once whatever happens (a crash, a repeat).

    Returns once the count is written, by this call or by a concurrent one for the same
    worker that wrote it together with its own. Raises KubeError when the status cannot be
    written (the caller retries the report, which counts it then); a worker that is gone has
    nothing to count.
    """
    key = (id(asyncio.get_running_loop()), namespace, worker)
    pending = _PENDING.setdefault(key, {})
    pending[job_id] = counter
    taken: dict[str, str] = {}

    def change(status: Mapping[str, Any]) -> dict[str, Any] | None:
        taken.clear()
        taken.update(pending)
        return count_patch(status, taken) if taken else None

    def written() -> bool:
        # The write of a call that held the lock before this one took this job along (and
        # dropped it from `pending` once written): nothing is left to read or write.
        return job_id not in pending

    # A failed write leaves its jobs pending: the next count of this worker writes them too
    # (and each job's own retried report counts it again, which the ledger makes harmless).
    await _update_status(kube, namespace, worker, change, must_write=True, done=written)
    for job, name in taken.items():
        if pending.get(job) == name:
            del pending[job]
    if not pending and _PENDING.get(key) is pending:
        del _PENDING[key]


async def increment_counter(kube: KubeClient, namespace: str, worker: str, counter: str) -> None:
    """Add one to `status.<counter>` (optimistic concurrency; the worker may be gone)."""
    await _update_status(
        kube, namespace, worker, lambda status: {counter: int(status.get(counter) or 0) + 1}
    )


async def initialise_counters(kube: KubeClient, namespace: str, worker: str) -> None:
    """Start absent counters at 0 (so `kubectl get caw` shows 0, not blank); never resets one."""
    await _update_status(
        kube,
        namespace,
        worker,
        lambda status: {c: 0 for c in COUNTERS if c not in status} or None,
    )
