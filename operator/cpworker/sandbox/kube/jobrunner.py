"""A simulated Job controller, modelled on `pkg/controller/job/job_controller.go` (1.31+);
the pods themselves are run by the kubelet (kubelet.py), which this controller only watches.

Per sync of a Job: pods that finished (with the `batch.kubernetes.io/job-tracking`
finalizer) are counted and let go; a terminating pod counts as failed at once with the
default `podReplacementPolicy: TerminatingOrFailed` (so its replacement starts while it is
still terminating), only once its phase is Failed with `Failed` (the replacement waits);
then, in order:
- a terminal target already set: active pods are deleted, and once none is left (and at
  least `terminal_condition_delay` later) `FailureTarget` becomes `Failed` and
  `SuccessCriteriaMet` becomes `Complete` (two-step conditions, 1.31+);
- suspended: active pods deleted, `Suspended` True (resuming starts again);
- completions reached: `SuccessCriteriaMet` (CompletionsReached); failures past
  `backoffLimit`: `FailureTarget` (BackoffLimitExceeded); `activeDeadlineSeconds` past:
  `FailureTarget` (DeadlineExceeded);
- otherwise a pod is created when fewer than one is active (minus the terminating ones under
  `Failed`), after the pod-failure back-off (`retry_delay`, doubling, at most
  `retry_delay_max`). A refused creation — missing ServiceAccount, ResourceQuota,
  LimitRange, PodSecurity, a webhook — is a Warning `FailedCreate` Event with the API's
  message (`Error creating: pods "x" is forbidden: exceeded quota: ...`), retried with the
  API back-off (`create_retry`, doubling, at most `create_retry_max`; the real controller
  uses 1 s to 60 s), so a quota that frees up later lets the pod be created.
`ttlSecondsAfterFinished` counts from the finish time (the Complete/Failed condition) and
deletes with Foreground propagation and a UID precondition
(`pkg/controller/ttlafterfinished/ttlafterfinished_controller.go`).
Only `completions: 1, parallelism: 1`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from dataclasses import dataclass
from typing import Any

from cpworker.sandbox.kube.api import Api, DeleteOptions
from cpworker.sandbox.kube.errors import ApiError
from cpworker.sandbox.kube.events import record
from cpworker.sandbox.kube.kubelet import Kubelet, RunnerConfig, spawn
from cpworker.sandbox.kube.store import Change, StorageKey, now_rfc3339

__all__ = ["JobRunner", "RunnerConfig", "is_finished"]

logger = logging.getLogger(__name__)
Obj = dict[str, Any]
JOBS: StorageKey = ("batch", "jobs")
PODS: StorageKey = ("", "pods")
SERVICEACCOUNTS: StorageKey = ("", "serviceaccounts")
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
TRACKING = "batch.kubernetes.io/job-tracking"
TERMINAL = frozenset({"Succeeded", "Failed"})
_TARGETS = {"FailureTarget": "Failed", "SuccessCriteriaMet": "Complete"}


def is_finished(job: Obj) -> bool:
    return any(
        c.get("type") in {"Complete", "Failed"} and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


def _condition(kind: str, status: str, reason: str, message: str) -> Obj:
    stamp = now_rfc3339()
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastProbeTime": stamp,
        "lastTransitionTime": stamp,
    }


def _true(job: Obj, kind: str) -> Obj | None:
    for found in (job.get("status") or {}).get("conditions") or []:
        if found.get("type") == kind and found.get("status") == "True":
            return dict(found)
    return None


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase", "Pending"))


def _ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


@dataclass(slots=True)
class _JobState:
    """What the controller remembers between syncs of one Job (its queue's rate limiter)."""

    create_failures: int = 0
    next_create_at: float = 0.0
    reported_missing_sa: bool = False
    last_failure_at: float = 0.0
    target_seen_at: float | None = None


class JobRunner:
    def __init__(self, api: Api, config: RunnerConfig) -> None:
        self.api = api
        self.config = config
        self._jobs: dict[str, asyncio.Task[None]] = {}
        self.kubelet = Kubelet(api, config)
        self._blocked: set[str] = set()  # Jobs waiting for their ServiceAccount
        self._wake: dict[str, asyncio.Event] = {}
        self._closing = False
        api.store.subscribe(self._on_change)

    async def close(self) -> None:
        self._closing = True
        await self.kubelet.close()
        tasks = list(self._jobs.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- reacting to changes -------------------------------------------------------------
    def _on_change(self, key: StorageKey, change: Change) -> None:
        if self._closing:
            return
        if key == JOBS:
            self._on_job_change(change)
        elif key == PODS:
            self._on_pod_change(change)
        elif key == SERVICEACCOUNTS and change.type == "ADDED":
            # only Jobs waiting for an account (not every Job: bursts stay linear)
            for uid in list(self._blocked):
                if uid in self._wake:
                    self._wake[uid].set()

    def _on_job_change(self, change: Change) -> None:
        meta = change.obj["metadata"]
        uid = meta["uid"]
        if change.type == "DELETED":
            task = self._jobs.pop(uid, None)
            if task:
                task.cancel()
        elif uid in self._jobs:
            self._wake[uid].set()
        elif (
            not is_finished(change.obj)
            or change.obj["spec"].get("ttlSecondsAfterFinished") is not None
        ):
            self._wake[uid] = asyncio.Event()
            task = spawn(self._drive(meta["namespace"], meta["name"], uid))
            self._jobs[uid] = task

            def done(finished: asyncio.Task[None]) -> None:
                if self._jobs.get(uid) is finished:
                    del self._jobs[uid]
                if not finished.cancelled() and finished.exception() is not None:
                    logger.error("job controller task failed", exc_info=finished.exception())

            task.add_done_callback(done)

    def _on_pod_change(self, change: Change) -> None:
        meta = change.obj["metadata"]
        owner = next(
            (
                ref.get("uid", "")
                for ref in meta.get("ownerReferences") or []
                if ref.get("kind") == "Job" and ref.get("controller")
            ),
            "",
        )
        if owner in self._wake:
            self._wake[owner].set()
        elif (
            change.type != "DELETED"
            and TRACKING in (meta.get("finalizers") or [])
            and (meta.get("deletionTimestamp") or _phase(change.obj) in TERMINAL)
        ):
            # an orphan (its Job is gone or finished): the controller lets go of it
            loop = asyncio.get_running_loop()
            loop.call_soon(self._drop_tracking_finalizer_of, meta["namespace"], meta["name"])

    # -- store helpers -------------------------------------------------------------------
    def _type(self, key: StorageKey) -> Any:
        rtype = self.api.storage_type(key)
        assert rtype is not None
        return rtype

    def _get(
        self, key: StorageKey, namespace: str, name: str, uid: str | None = None
    ) -> Obj | None:
        obj = self.api.store.get(key, namespace, name)
        if obj is None or (uid and obj["metadata"]["uid"] != uid):
            return None
        return obj

    def _event(self, obj: Obj, kind: str, reason: str, message: str) -> None:
        record(self.api, obj, kind, reason, message, component="job-controller")

    def _write_status(self, job: Obj, status: Obj) -> Obj:
        """Store the new status if it changed (a write wakes the Job's own sync)."""
        if status == (job.get("status") or {}):
            return job
        meta = job["metadata"]
        current = self.api.store.get(JOBS, meta["namespace"], meta["name"])
        if current is None:
            return job
        try:
            return self.api.update(
                self._type(JOBS),
                meta["namespace"],
                meta["name"],
                {**current, "status": status},
                subresource="status",
            )
        except ApiError:
            return job

    # -- the job controller --------------------------------------------------------------
    async def _wait_wake(self, uid: str, timeout: float | None) -> None:  # noqa: ASYNC109
        event = self._wake[uid]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
        event.clear()

    async def _drive(self, namespace: str, name: str, uid: str) -> None:
        state = _JobState()
        try:
            while True:
                job = self._get(JOBS, namespace, name, uid)
                if job is None:
                    return
                if is_finished(job):
                    await self._expire(job)
                    return
                timeout = self._sync(job, state)
                if timeout is None or timeout > 0:
                    await self._wait_wake(uid, timeout)
        finally:
            self._wake.pop(uid, None)
            self._blocked.discard(uid)

    def _pods_of(self, job: Obj) -> list[Obj]:
        uid = job["metadata"]["uid"]
        pods = []
        for key, namespace, name in self.api.store.dependents_of(uid):
            if key != PODS:
                continue
            pod = self.api.store.get(PODS, namespace, name)
            if pod is not None and any(
                ref.get("uid") == uid and ref.get("controller")
                for ref in pod["metadata"].get("ownerReferences") or []
            ):
                pods.append(pod)
        return pods

    def _sync(self, job: Obj, state: _JobState) -> float | None:  # noqa: PLR0911 - the controller's decision list, in its order
        """One reconciliation; answers how long to wait before the next (None: until woken)."""
        loop = asyncio.get_running_loop()
        spec = job["spec"]
        status = dict(job.get("status") or {})
        only_failed = spec.get("podReplacementPolicy") == "Failed" or bool(
            spec.get("podFailurePolicy")
        )
        pods = self._pods_of(job)
        succeeded, failed = self._account(pods, status, only_failed=only_failed, state=state)
        active = [
            p
            for p in pods
            if not p["metadata"].get("deletionTimestamp") and _phase(p) not in TERMINAL
        ]
        terminating = [
            p for p in pods if p["metadata"].get("deletionTimestamp") and _phase(p) not in TERMINAL
        ]
        counts: Obj = {
            "active": len(active),
            "ready": sum(1 for p in active if _ready(p)),
            "terminating": len(terminating),
        }
        if succeeded:
            counts["succeeded"] = succeeded
        if failed:
            counts["failed"] = failed
        status.update(counts)
        status.setdefault("uncountedTerminatedPods", {})
        target = _true(job, "FailureTarget") or _true(job, "SuccessCriteriaMet")
        if target is not None:
            return self._finish(job, status, target, active, terminating, state)
        if spec.get("suspend"):
            return self._suspend(job, status, active)
        job, status = self._resume(job, status)
        if succeeded >= int(spec.get("completions", 1) or 1):
            self._set_target(
                job,
                status,
                "SuccessCriteriaMet",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            )
            return 0
        if failed > int(spec.get("backoffLimit", 6)):
            self._set_target(
                job,
                status,
                "FailureTarget",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            )
            return 0
        remaining = self._deadline_remaining(job)
        if remaining is not None and remaining <= 0:
            self._set_target(
                job,
                status,
                "FailureTarget",
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            )
            return 0
        want = 1 - len(active) - (len(terminating) if only_failed else 0)
        job = self._write_status(job, status)
        if want <= 0:
            return remaining
        waits: list[float] = [] if remaining is None else [remaining]
        now = loop.time()
        if failed and state.last_failure_at:
            backoff = min(
                self.config.retry_delay * 2.0 ** (failed - 1), self.config.retry_delay_max
            )
            if now < state.last_failure_at + backoff:
                return min([state.last_failure_at + backoff - now, *waits])
        if now < state.next_create_at:
            return min([state.next_create_at - now, *waits])
        created = self._create_pod(job, state)
        if not created:
            state.create_failures += 1
            delay = min(
                self.config.create_retry * 2.0 ** (state.create_failures - 1),
                self.config.create_retry_max,
            )
            state.next_create_at = now + delay
            return min([delay, *waits])
        state.create_failures = 0
        return 0

    def _account(
        self, pods: list[Obj], status: Obj, *, only_failed: bool, state: _JobState
    ) -> tuple[int, int]:
        """Count the pods that finished since the last sync and let go of them (isPodFailed:
        a terminating pod is a failure at once unless only Failed pods are replaced)."""
        succeeded, failed = int(status.get("succeeded", 0)), int(status.get("failed", 0))
        for pod in pods:
            if TRACKING not in (pod["metadata"].get("finalizers") or []):
                continue
            phase = _phase(pod)
            if phase == "Succeeded":
                succeeded += 1
            elif phase == "Failed" or (
                not only_failed and pod["metadata"].get("deletionTimestamp")
            ):
                failed += 1
                state.last_failure_at = asyncio.get_running_loop().time()
            else:
                continue
            self._drop_tracking_finalizer(pod)
        return succeeded, failed

    def _set_target(self, job: Obj, status: Obj, kind: str, reason: str, message: str) -> None:
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != kind]
        status["conditions"] = [*conditions, _condition(kind, "True", reason, message)]
        self._write_status(job, status)

    def _finish(  # noqa: PLR0917 - internal, one caller
        self,
        job: Obj,
        status: Obj,
        target: Obj,
        active: list[Obj],
        terminating: list[Obj],
        state: _JobState,
    ) -> float | None:
        """The second step: delete what is still active; once no pod is left running,
        the terminal condition."""
        loop = asyncio.get_running_loop()
        if state.target_seen_at is None:
            state.target_seen_at = loop.time()
        for pod in active:
            self._delete_pod(job, pod)
        if active or terminating:
            self._write_status(job, status)
            return None  # woken when the pods change
        wait = state.target_seen_at + self.config.terminal_condition_delay - loop.time()
        if wait > 0:
            self._write_status(job, status)
            return wait
        final = _TARGETS[target["type"]]
        status["conditions"] = [
            *(c for c in status.get("conditions") or [] if c.get("type") != final),
            _condition(final, "True", target.get("reason", ""), target.get("message", "")),
        ]
        if final == "Complete":
            status["completionTime"] = now_rfc3339()
        done = self._write_status(job, status)
        if final == "Complete":
            self._event(done, "Normal", "Completed", "Job completed")
        else:
            self._event(done, "Warning", target.get("reason", ""), target.get("message", ""))
        return 0

    def _deadline_remaining(self, job: Obj) -> float | None:
        limit = job["spec"].get("activeDeadlineSeconds")
        start = (job.get("status") or {}).get("startTime")
        if limit is None or not start:
            return None if limit is None else float(limit)
        elapsed = (dt.datetime.now(dt.UTC) - _parse_time(start)).total_seconds()
        return float(limit) - elapsed

    def _suspend(self, job: Obj, status: Obj, active: list[Obj]) -> float | None:
        for pod in active:
            self._delete_pod(job, pod)
        conditions = status.get("conditions") or []
        already = any(c["type"] == "Suspended" and c["status"] == "True" for c in conditions)
        if not already:
            status["conditions"] = [
                *(c for c in conditions if c["type"] != "Suspended"),
                _condition("Suspended", "True", "JobSuspended", "Job suspended"),
            ]
            status.pop("startTime", None)
            status["active"] = 0
            latest = self._write_status(job, status)
            self._event(latest, "Normal", "Suspended", "Job suspended")
        else:
            self._write_status(job, status)
        return None

    def _resume(self, job: Obj, status: Obj) -> tuple[Obj, Obj]:
        conditions = status.get("conditions") or []
        suspended = any(c["type"] == "Suspended" and c["status"] == "True" for c in conditions)
        if status.get("startTime") and not suspended:
            return job, status
        status["startTime"] = now_rfc3339()
        if suspended:
            status["conditions"] = [
                *(c for c in conditions if c["type"] != "Suspended"),
                _condition("Suspended", "False", "JobResumed", "Job resumed"),
            ]
        updated = self._write_status(job, status)
        if suspended:
            self._event(updated, "Normal", "Resumed", "Job resumed")
        return updated, dict(updated.get("status") or {})

    def _create_pod(self, job: Obj, state: _JobState) -> bool:
        meta, template = job["metadata"], job["spec"]["template"]
        namespace, uid = meta["namespace"], meta["uid"]
        service_account = template["spec"].get("serviceAccountName", "default")
        if self._get(SERVICEACCOUNTS, namespace, service_account) is None:
            if not state.reported_missing_sa:
                self._event(
                    job,
                    "Warning",
                    "FailedCreate",
                    f'Error creating: pods "{meta["name"]}-" is forbidden: error looking up '
                    f"service account {namespace}/{service_account}: serviceaccount "
                    f'"{service_account}" not found',
                )
                state.reported_missing_sa = True
            self._blocked.add(uid)
            return False
        self._blocked.discard(uid)
        name = meta["name"] + "-" + "".join(random.choice(_NAME_CHARS) for _ in range(5))  # noqa: S311
        template_meta = template.get("metadata") or {}
        body = {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": dict(template_meta.get("labels") or {}),
                "annotations": dict(template_meta.get("annotations") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": meta["name"],
                        "uid": uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
                "finalizers": [TRACKING],
            },
            "spec": template["spec"],
        }
        try:
            self.api.create(self._type(PODS), namespace, body)
        except ApiError as exc:
            self._event(job, "Warning", "FailedCreate", f"Error creating: {exc.message}")
            return False
        self._event(job, "Normal", "SuccessfulCreate", f"Created pod: {name}")
        return True

    def _delete_pod(self, job: Obj, pod: Obj) -> None:
        meta = pod["metadata"]
        with contextlib.suppress(ApiError):
            self.api.delete(
                self._type(PODS),
                meta["namespace"],
                meta["name"],
                DeleteOptions(precondition_uid=meta["uid"]),
            )
            self._event(job, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}")

    def _drop_tracking_finalizer_of(self, namespace: str, name: str) -> None:
        pod = self._get(PODS, namespace, name)
        if pod is not None:
            self._drop_tracking_finalizer(pod)

    def _drop_tracking_finalizer(self, pod: Obj) -> None:
        finalizers = pod["metadata"].get("finalizers") or []
        if TRACKING not in finalizers:
            return
        meta = pod["metadata"]
        current = self.api.store.get(PODS, meta["namespace"], meta["name"]) or pod
        updated = {
            **current,
            "metadata": {
                **current["metadata"],
                "finalizers": [f for f in finalizers if f != TRACKING],
            },
        }
        with contextlib.suppress(ApiError):
            self.api.update(self._type(PODS), meta["namespace"], meta["name"], updated)

    async def _expire(self, job: Obj) -> None:
        """The TTL controller: from the finish time, delete in the foreground, UID-checked."""
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        finished = _true(job, "Complete") or _true(job, "Failed") or {}
        at = finished.get("lastTransitionTime")
        elapsed = (dt.datetime.now(dt.UTC) - _parse_time(at)).total_seconds() if at else 0.0
        await asyncio.sleep(max(0.0, float(ttl) - elapsed))
        meta = job["metadata"]
        if self._get(JOBS, meta["namespace"], meta["name"], meta["uid"]) is None:
            return
        with contextlib.suppress(ApiError):
            self.api.delete(
                self._type(JOBS),
                meta["namespace"],
                meta["name"],
                DeleteOptions(propagation_policy="Foreground", precondition_uid=meta["uid"]),
            )
