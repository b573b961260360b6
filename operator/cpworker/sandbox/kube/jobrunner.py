"""A simulated Job controller — the pods themselves are run by the kubelet (kubelet.py).

A batch/v1 Job that is not suspended gets a Pod (labels, controller ownerReference, tracking
finalizer); its status and conditions follow the pod as the real Job controller writes them
(active/succeeded/failed, startTime/completionTime, SuccessCriteriaMet+Complete,
FailureTarget+Failed with BackoffLimitExceeded or DeadlineExceeded, Suspended), with
backoffLimit retries, activeDeadlineSeconds, suspend/resume, ttlSecondsAfterFinished, and a
Warning FailedCreate while the pod's ServiceAccount is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import uuid
from collections.abc import Coroutine
from typing import Any

from cpworker.sandbox.kube.api import Api, DeleteOptions
from cpworker.sandbox.kube.errors import ApiError
from cpworker.sandbox.kube.kubelet import Kubelet, RunnerConfig
from cpworker.sandbox.kube.kubelet import condition as _condition
from cpworker.sandbox.kube.store import Change, StorageKey, now_rfc3339

__all__ = ["JobRunner", "RunnerConfig", "is_finished"]

logger = logging.getLogger(__name__)
Obj = dict[str, Any]
JOBS: StorageKey = ("batch", "jobs")
PODS: StorageKey = ("", "pods")
SERVICEACCOUNTS: StorageKey = ("", "serviceaccounts")
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
NODE = "sandbox-node"
TRACKING = "batch.kubernetes.io/job-tracking"


def is_finished(job: Obj) -> bool:
    return any(
        c.get("type") in {"Complete", "Failed"} and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


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
            self._spawn(self._jobs, uid, self._drive(meta["namespace"], meta["name"], uid))

    def _on_pod_change(self, change: Change) -> None:
        meta = change.obj["metadata"]
        uid = meta["uid"]
        del uid
        if (
            change.type != "DELETED"
            and meta.get("deletionTimestamp")
            and TRACKING in (meta.get("finalizers") or [])
        ):
            # The Job controller lets go of a pod that is being deleted.
            loop = asyncio.get_running_loop()
            loop.call_soon(self._drop_tracking_finalizer_of, meta["namespace"], meta["name"])

    def _spawn(
        self, tasks: dict[str, asyncio.Task[None]], uid: str, coroutine: Coroutine[Any, Any, None]
    ) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        tasks[uid] = task

        def done(finished: asyncio.Task[None]) -> None:
            if tasks.get(uid) is finished:
                del tasks[uid]
            if not finished.cancelled() and finished.exception() is not None:
                logger.error("job runner task failed", exc_info=finished.exception())

        task.add_done_callback(done)

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

    def _set_status(self, key: StorageKey, namespace: str, name: str, status: Obj) -> Obj | None:
        current = self.api.store.get(key, namespace, name)
        if current is None:
            return None
        try:
            return self.api.update(
                self._type(key),
                namespace,
                name,
                {**current, "status": status},
                subresource="status",
            )
        except ApiError:
            return None

    def _event(self, obj: Obj, kind: str, reason: str, message: str) -> None:
        meta = obj["metadata"]
        events = self.api.registry.get("", "v1", "events")
        assert events is not None
        stamp = now_rfc3339()
        body = {
            "metadata": {
                "name": f"{meta['name']}.{uuid.uuid4().hex[:16]}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "kind": obj["kind"],
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
                "apiVersion": obj["apiVersion"],
                "resourceVersion": meta["resourceVersion"],
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": "job-controller"},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "reportingComponent": "job-controller",
            "reportingInstance": "",
        }
        with contextlib.suppress(ApiError):
            self.api.create(events, meta["namespace"], body)

    # -- the job controller --------------------------------------------------------------
    async def _wait_wake(self, uid: str, timeout: float | None) -> None:  # noqa: ASYNC109
        event = self._wake[uid]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
        event.clear()

    def _update_job_status(self, job: Obj, **changes: Any) -> Obj | None:
        status = dict(job.get("status") or {})
        conditions = list(status.get("conditions") or [])
        for condition in changes.pop("conditions", []):
            conditions = [c for c in conditions if c["type"] != condition["type"]]
            conditions.append(condition)
        if conditions:
            status["conditions"] = conditions
        for key, value in changes.items():
            if value is None:
                status.pop(key, None)
            else:
                status[key] = value
        meta = job["metadata"]
        return self._set_status(JOBS, meta["namespace"], meta["name"], status)

    async def _drive(self, namespace: str, name: str, uid: str) -> None:
        try:
            await self._drive_job(namespace, name, uid)
        finally:
            self._wake.pop(uid, None)

    async def _drive_job(self, namespace: str, name: str, uid: str) -> None:
        reported_missing_sa = False
        while True:
            job = self._get(JOBS, namespace, name, uid)
            if job is None:
                return
            if is_finished(job):
                await self._expire(job)
                return
            if job["spec"].get("suspend"):
                self._suspend(job)
                await self._wait_wake(uid, None)
                continue
            job = self._resume(job)
            if job is None:
                return
            remaining = self._deadline_remaining(job)
            if remaining is not None and remaining <= 0:
                self._fail(
                    job,
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                    killed=0,
                )
                continue
            service_account = job["spec"]["template"]["spec"].get("serviceAccountName", "default")
            if self._get(SERVICEACCOUNTS, namespace, service_account) is None:
                if not reported_missing_sa:
                    self._event(
                        job,
                        "Warning",
                        "FailedCreate",
                        f'Error creating: pods "{name}-" is forbidden: error looking up '
                        f"service account {namespace}/{service_account}: serviceaccount "
                        f'"{service_account}" not found',
                    )
                    reported_missing_sa = True
                self._blocked.add(uid)
                try:
                    await self._wait_wake(uid, self.config.create_retry)
                finally:
                    self._blocked.discard(uid)
                continue
            pod = self._create_pod(job)
            if pod is None:
                await self._wait_wake(uid, self.config.create_retry)
                continue
            await self._watch_attempt(job, pod, uid, remaining)

    async def _watch_attempt(self, job: Obj, pod: Obj, uid: str, remaining: float | None) -> None:  # noqa: PLR0911,PLR0912 - one branch per case of the protocol
        """Run one pod to its end, unless the Job is suspended, deleted or out of time."""
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        pod_name = pod["metadata"]["name"]
        attempt = asyncio.get_running_loop().create_task(
            self.kubelet.run_pod(namespace, pod_name, pod["metadata"]["uid"])
        )
        loop = asyncio.get_running_loop()
        deadline = None if remaining is None else loop.time() + remaining
        try:
            while not attempt.done():
                waker = loop.create_task(self._wait_wake(uid, None))
                timeout = None if deadline is None else max(0.0, deadline - loop.time())
                try:
                    await asyncio.wait(
                        {attempt, waker}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    waker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await waker
                current = self._get(JOBS, namespace, name, uid)
                if current is None:
                    return
                if current["spec"].get("suspend"):
                    attempt.cancel()
                    self._delete_pod(namespace, pod_name)
                    return
                if deadline is not None and loop.time() >= deadline and not attempt.done():
                    attempt.cancel()
                    self._delete_pod(namespace, pod_name)
                    self._fail(
                        current,
                        "DeadlineExceeded",
                        "Job was active longer than specified deadline",
                        killed=1,
                    )
                    return
            succeeded = attempt.result()
        finally:
            if not attempt.done():
                attempt.cancel()
        # the Job controller accounts for the finished pod and lets go of it
        self._drop_tracking_finalizer_of(namespace, pod_name)
        current = self._get(JOBS, namespace, name, uid)
        if current is None:
            return
        status = current.get("status") or {}
        if succeeded is None:
            return
        if succeeded:
            message = "Reached expected number of succeeded pods"
            self._update_job_status(
                current,
                active=0,
                ready=0,
                succeeded=int(status.get("succeeded", 0)) + 1,
                completionTime=now_rfc3339(),
                conditions=[
                    _condition("SuccessCriteriaMet", "True", "CompletionsReached", message),
                    _condition("Complete", "True", "CompletionsReached", message),
                ],
            )
            done = self._get(JOBS, namespace, name, uid)
            if done:
                self._event(done, "Normal", "Completed", "Job completed")
            return
        failed = int(status.get("failed", 0)) + 1
        if failed > int(current["spec"].get("backoffLimit", 6)):
            self._update_job_status(current, failed=failed)
            latest = self._get(JOBS, namespace, name, uid)
            if latest:
                self._fail(
                    latest,
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                    killed=0,
                )
            return
        self._update_job_status(current, active=0, ready=0, failed=failed)
        await asyncio.sleep(self.config.retry_delay)

    def _deadline_remaining(self, job: Obj) -> float | None:
        limit = job["spec"].get("activeDeadlineSeconds")
        start = (job.get("status") or {}).get("startTime")
        if limit is None or not start:
            return None if limit is None else float(limit)
        started = dt.datetime.strptime(start, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        elapsed = (dt.datetime.now(dt.UTC) - started).total_seconds()
        return float(limit) - elapsed

    def _fail(self, job: Obj, reason: str, message: str, *, killed: int) -> None:
        status = job.get("status") or {}
        self._update_job_status(
            job,
            active=0,
            ready=0,
            failed=int(status.get("failed", 0)) + killed,
            conditions=[
                _condition("FailureTarget", "True", reason, message),
                _condition("Failed", "True", reason, message),
            ],
        )
        latest = self._get(JOBS, job["metadata"]["namespace"], job["metadata"]["name"])
        if latest:
            self._event(latest, "Warning", reason, message)

    def _suspend(self, job: Obj) -> None:
        meta = job["metadata"]
        for ref in self.api.store.dependents_of(meta["uid"]):
            if ref[0] == PODS:
                self._delete_pod(ref[1], ref[2])
        conditions = (job.get("status") or {}).get("conditions") or []
        already = any(c["type"] == "Suspended" and c["status"] == "True" for c in conditions)
        if not already:
            self._update_job_status(
                job,
                active=0,
                ready=0,
                startTime=None,
                conditions=[_condition("Suspended", "True", "JobSuspended", "Job suspended")],
            )
            latest = self._get(JOBS, meta["namespace"], meta["name"])
            if latest:
                self._event(latest, "Normal", "Suspended", "Job suspended")

    def _resume(self, job: Obj) -> Obj | None:
        status = job.get("status") or {}
        conditions = status.get("conditions") or []
        suspended = any(c["type"] == "Suspended" and c["status"] == "True" for c in conditions)
        if status.get("startTime") and not suspended:
            return job
        changes: dict[str, Any] = {"startTime": now_rfc3339()}
        if suspended:
            changes["conditions"] = [_condition("Suspended", "False", "JobResumed", "Job resumed")]
        updated = self._update_job_status(job, **changes)
        if suspended and updated:
            self._event(updated, "Normal", "Resumed", "Job resumed")
        return updated

    def _create_pod(self, job: Obj) -> Obj | None:
        meta, template = job["metadata"], job["spec"]["template"]
        name = meta["name"] + "-" + "".join(random.choice(_NAME_CHARS) for _ in range(5))  # noqa: S311
        template_meta = template.get("metadata") or {}
        body = {
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "labels": dict(template_meta.get("labels") or {}),
                "annotations": dict(template_meta.get("annotations") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
                "finalizers": [TRACKING],
            },
            "spec": template["spec"],
        }
        try:
            pod = self.api.create(self._type(PODS), meta["namespace"], body)
        except ApiError as exc:
            self._event(job, "Warning", "FailedCreate", f"Error creating: {exc.message}")
            return None
        self._update_job_status(job, active=1, ready=0, terminating=0)
        latest = self._get(JOBS, meta["namespace"], meta["name"])
        if latest:
            self._event(latest, "Normal", "SuccessfulCreate", f"Created pod: {name}")
        return pod

    def _delete_pod(self, namespace: str, name: str) -> None:
        pod = self._get(PODS, namespace, name)
        if pod is None:
            return
        self._drop_tracking_finalizer(pod)
        with contextlib.suppress(ApiError):
            self.api.delete(self._type(PODS), namespace, name, DeleteOptions())

    def _drop_tracking_finalizer_of(self, namespace: str, name: str) -> None:
        pod = self._get(PODS, namespace, name)
        if pod is not None:
            self._drop_tracking_finalizer(pod)

    def _drop_tracking_finalizer(self, pod: Obj) -> None:
        finalizers = pod["metadata"].get("finalizers") or []
        if TRACKING not in finalizers:
            return
        meta = pod["metadata"]
        updated = {
            **pod,
            "metadata": {
                **meta,
                "finalizers": [f for f in finalizers if f != TRACKING],
            },
        }
        with contextlib.suppress(ApiError):
            self.api.update(self._type(PODS), meta["namespace"], meta["name"], updated)

    async def _expire(self, job: Obj) -> None:
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        await asyncio.sleep(float(ttl))
        meta = job["metadata"]
        if self._get(JOBS, meta["namespace"], meta["name"], meta["uid"]) is None:
            return
        with contextlib.suppress(ApiError):
            self.api.delete(
                self._type(JOBS),
                meta["namespace"],
                meta["name"],
                DeleteOptions(propagation_policy="Background"),
            )
