"""What the benchmark sees inside the local Kubernetes API, timed to the millisecond.

Kubernetes timestamps have whole seconds, too coarse for sub-second dispatch latencies, and
watching from a client would add the client's own delay. So the observer listens to the
stand-in's store in-process (the hook its controllers use) and notes the wall-clock time of
each moment a figure needs: a Job created, released (no longer suspended), finished; a
CustomActionWorker first Ready. The stand-in's `time.time()` and the local CodePipeline's
share one clock (both run in this process).

The audit log (`KubeStandIn.audit()`) counts requests by caller: the operator and the raw
loop get identities of their own, so the benchmark's own set-up never counts as theirs.
"""

from __future__ import annotations

import collections
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cpworker import names, timeline
from cpworker.sandbox.kube import KubeStandIn
from cpworker.sandbox.kube.rbac import Identity
from cpworker.sandbox.kube.server import AuditRecord
from cpworker.sandbox.kube.store import Change, StorageKey

JOBS: StorageKey = ("batch", "jobs")
WORKERS: StorageKey = (names.GROUP, names.PLURAL)
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def ready_condition(worker: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for condition in (worker.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return dict(condition)
    return None


@dataclass
class JobMoments:
    """Wall-clock times (epoch seconds) of one Kubernetes Job, keyed by CodePipeline job id."""

    namespace: str
    created: float
    released: float | None = None
    finished: float | None = None


@dataclass
class KubeObserver:
    """Subscribes to the stand-in's store; every callback runs on the stand-in's loop."""

    kube: KubeStandIn
    jobs: dict[str, JobMoments] = field(default_factory=dict)
    ready: dict[tuple[str, str], float] = field(default_factory=dict)
    reasons: dict[tuple[str, str], str] = field(default_factory=dict)  # latest Ready reason
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> KubeObserver:
        self.kube.call(lambda: self.kube.server.api.store.subscribe(self._on_change))
        return self

    def _on_change(self, key: StorageKey, change: Change) -> None:
        if key == JOBS and change.type != "DELETED":
            self._on_job(change.obj)
        elif key == WORKERS and change.type != "DELETED":
            condition = ready_condition(change.obj)
            if condition is None:
                return
            meta = change.obj["metadata"]
            worker = (meta.get("namespace", ""), meta["name"])
            with self._lock:
                self.reasons[worker] = str(condition.get("reason", ""))
                if condition.get("status") == "True":
                    self.ready.setdefault(worker, time.time())

    def _on_job(self, job: Mapping[str, Any]) -> None:
        meta = job["metadata"]
        job_id = (meta.get("annotations") or {}).get(names.ANNOTATION_JOB_ID)
        if not job_id:
            return
        now = time.time()
        with self._lock:
            moments = self.jobs.get(job_id)
            if moments is None:
                moments = self.jobs[job_id] = JobMoments(meta.get("namespace", ""), now)
            if moments.released is None and not (job.get("spec") or {}).get("suspend"):
                moments.released = now
            # The Job's first terminal step (SuccessCriteriaMet/FailureTarget on Kubernetes
            # 1.31+), which is when the operator may report it.
            if moments.finished is None and timeline.terminal_condition(job) is not None:
                moments.finished = now

    def job_moments(self) -> dict[str, JobMoments]:
        with self._lock:
            return {job_id: JobMoments(**vars(m)) for job_id, m in self.jobs.items()}

    def ready_times(self, namespace: str) -> list[float]:
        with self._lock:
            return [at for (ns, _), at in self.ready.items() if ns == namespace]

    def count_reason(self, namespace: str, reason: str) -> int:
        """Workers of `namespace` whose Ready condition now has `reason` (e.g. Paused)."""
        with self._lock:
            return sum(1 for (ns, _), r in self.reasons.items() if ns == namespace and r == reason)


def caller_kubeconfig(kube: KubeStandIn, path: Any, user: str) -> Any:
    """A kubeconfig for an unrestricted identity of its own, so the audit log tells it apart."""
    token = secrets.token_urlsafe(24)
    kube.server.identities[token] = Identity(user, ("system:masters", "system:authenticated"))
    return kube.write_kubeconfig(path, token=token)


def _resource(record: AuditRecord) -> str:
    return record.resource + (f"/{record.subresource}" if record.subresource else "")


def writes_by_resource(
    records: Iterable[AuditRecord], user: str, namespace: str | None = None
) -> collections.Counter[str]:
    """Write requests of `user` (in `namespace`), counted by resource[/subresource]."""
    counts: collections.Counter[str] = collections.Counter()
    for record in records:
        if record.user != user or record.verb not in WRITE_VERBS:
            continue
        if namespace is not None and record.namespace != namespace:
            continue
        counts[_resource(record)] += 1
    return counts


def requests_by_verb(
    records: Iterable[AuditRecord], user: str, namespace: str | None = None
) -> collections.Counter[str]:
    """Every request of `user` (in `namespace`, or cluster-wide), counted as "verb resource":
    reads and watches load the API server as writes do."""
    counts: collections.Counter[str] = collections.Counter()
    for record in records:
        if record.user != user:
            continue
        if namespace is not None and record.namespace not in {namespace, ""}:
            continue
        counts[f"{record.verb} {_resource(record)}"] += 1
    return counts


def requests_of(records: Iterable[AuditRecord], user: str) -> int:
    return sum(1 for record in records if record.user == user)
