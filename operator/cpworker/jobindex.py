"""The entries of the operator's two watch indexes: summaries of labelled Jobs and Pods. Pure.

handlers.py registers `kopf.index` on batch/v1 Jobs and v1 Pods with label filters (never
on.create/on.update: kopf would write its annotations and finalizers onto them). The functions
here turn each watched body into a small immutable summary keyed by worker (Jobs) or by owning
Job (Pods). Nothing here calls an API: the watch stream is the only input, so a thousand
in-flight Jobs cost no polling.

Equality is freshness: kopf stores an index entry only when the new value differs from the old
one, so the fields that take part in a summary's equality decide how fresh the `body` is that
callers classify (results.outcome_from). That is why PodSummary compares the waiting reason
(a pod that starts failing to pull its image must replace the stored entry), the containers
that terminated (a main container ending beside a classic sidecar ends the job) and the
pod-level reason (an eviction must be known even after the pod is gone).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cpworker import names, timeline, timestamps
from cpworker.results import NEVER_START_REASONS


@dataclass(frozen=True)
class JobSummary:
    """The parts of a Kubernetes Job the runtime decides on (kept in the kopf index)."""

    namespace: str
    name: str
    uid: str
    annotations: Mapping[str, str]
    suspended: bool
    finished: str | None  # "Complete" | "Failed" | None: decided (either step, see below)
    created: dt.datetime | None
    deleting: bool
    body: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def phase(self) -> str:
        return self.annotations.get(names.ANNOTATION_PHASE, "")

    @property
    def job_id(self) -> str:
        return self.annotations.get(names.ANNOTATION_JOB_ID, "")

    @property
    def worker(self) -> str:
        return self.annotations.get(names.ANNOTATION_WORKER, "")

    @property
    def live(self) -> bool:
        """Counts against maxInFlight: claimed or running, not yet reported or cancelled."""
        return not self.deleting and self.phase in {
            names.Phase.CLAIMING.value,
            names.Phase.RUNNING.value,
            "",
        }


def finished_condition(body: Mapping[str, Any]) -> str | None:
    """ "Complete" or "Failed" once the Job's end is decided: from the first of the two
    terminal conditions (SuccessCriteriaMet / FailureTarget, 1.31+) or the second (Complete /
    Failed). A Job deleted between the two steps has finished, not vanished."""
    terminal = timeline.terminal_condition(body)
    return terminal[0] if terminal is not None else None


def summarize_job(body: Mapping[str, Any]) -> JobSummary:
    metadata = body.get("metadata") or {}
    annotations = {
        k: str(v)
        for k, v in (metadata.get("annotations") or {}).items()
        if k.startswith(names.RESERVED_KEY_PREFIX)
    }
    return JobSummary(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
        annotations=annotations,
        suspended=bool((body.get("spec") or {}).get("suspend")),
        finished=finished_condition(body),
        created=timestamps.parse(metadata.get("creationTimestamp")),
        deleting=bool(metadata.get("deletionTimestamp")),
        body=_stored(body),
    )


def _stored(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the index keeps of a body: a plain copy without `metadata.managedFields`.

    A real API server records a managedFields entry for every manager that wrote the object
    (the operator, the Job controller, the kubelet), and every watch event carries them; on
    a Job or Pod they are often kilobytes. Nothing here reads them, and the operator never
    sends a body back whole (it patches), so each in-flight Job and Pod stops paying for them.
    """
    stored = _plain(body)
    metadata = stored.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)
    return stored


def _plain(body: Mapping[str, Any]) -> dict[str, Any]:
    """A detached plain-dict copy (kopf bodies are live views)."""
    return {
        k: (_plain(v) if isinstance(v, Mapping) else list(v) if isinstance(v, list) else v)
        for k, v in body.items()
    }


def worker_jobs(index: Mapping[Any, Any], namespace: str, worker: str) -> list[JobSummary]:
    """Every indexed Job of one worker (the index is keyed by the worker label value)."""
    key = (namespace, names.worker_label_value(worker))
    return list(index[key]) if key in index else []


def job_pods(index: Mapping[Any, Any], namespace: str, job_name: str) -> list[PodSummary]:
    """Every indexed Pod of one Job."""
    key = (namespace, job_name)
    return list(index[key]) if key in index else []


def job_index_key(body: Mapping[str, Any]) -> tuple[str, str]:
    """Jobs are indexed by (namespace, worker label value)."""
    metadata = body.get("metadata") or {}
    labels = metadata.get("labels") or {}
    return (str(metadata.get("namespace", "")), str(labels.get(names.LABEL_WORKER, "")))


def owner_uid(body: Mapping[str, Any]) -> str | None:
    """The uid of the Job that controls this pod (None: no such owner reference)."""
    for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "Job" and ref.get("controller"):
            return str(ref.get("uid"))
    return None


def owning_job(body: Mapping[str, Any]) -> str | None:
    for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "Job":
            return str(ref.get("name"))
    labels = (body.get("metadata") or {}).get("labels") or {}
    name = labels.get("batch.kubernetes.io/job-name") or labels.get("job-name")
    return str(name) if name else None


@dataclass(frozen=True)
class PodSummary:
    """Why a pod is (not) running. Every field but the body takes part in equality: see the
    module doc, equality is freshness."""

    name: str
    phase: str
    created: dt.datetime | None
    waiting_reason: str | None
    waiting_message: str | None
    unschedulable_message: str | None
    body: Mapping[str, Any] = field(repr=False, compare=False)
    terminated: tuple[str, ...] = ()  # containers (init ones too) that have terminated
    ended_by: str | None = None  # a pod-level reason (Evicted, OutOfcpu) or DisruptionTarget


def summarize_pod(body: Mapping[str, Any]) -> PodSummary:
    metadata = body.get("metadata") or {}
    status = body.get("status") or {}
    waiting_reason = waiting_message = None
    statuses = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    for container in statuses:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            waiting_reason = str(waiting["reason"])
            waiting_message = str(waiting.get("message") or "")
            if waiting_reason in NEVER_START_REASONS:
                break
    unschedulable = None
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            unschedulable = str(condition.get("message") or "no node fits the pod")
    terminated = tuple(
        str(container.get("name"))
        for container in statuses
        if (container.get("state") or {}).get("terminated")
    )
    disrupted = any(
        c.get("type") == "DisruptionTarget" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return PodSummary(
        terminated=terminated,
        ended_by=str(status.get("reason") or "") or ("DisruptionTarget" if disrupted else None),
        name=str(metadata.get("name", "")),
        phase=str(status.get("phase", "Pending")),
        created=timestamps.parse(metadata.get("creationTimestamp")),
        waiting_reason=waiting_reason,
        waiting_message=waiting_message,
        unschedulable_message=unschedulable,
        body=_stored(body),
    )


@dataclass
class VanishedJobs:
    """Jobs the watch index still holds although the API server no longer has them.

    A watch interrupted long enough (compaction, an API server restart: 410 Gone) makes kopf
    relist, and a Job deleted in the gap yields no DELETED event; kopf drops index entries
    only on DELETED (kopf/_core/engines/indexing.py), so the entry stays for good: a ghost
    that would count against maxInFlight and never be reported. The in-flight supervisor
    finds them by relisting (and by a 404 on a Job it acts on) and records them here; every
    count and every supervision round skips them. Keyed by worker, so that each worker's
    relist also forgets the ghosts kopf has dropped meanwhile.
    """

    uids: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    # When each worker last relisted (the supervisor's monotonic clock).
    relisted_at: dict[tuple[str, str], float] = field(default_factory=dict)

    def add(self, job: JobSummary) -> None:
        self.uids.setdefault((job.namespace, job.worker), set()).add(job.uid)

    def hide(self, jobs: Iterable[JobSummary]) -> list[JobSummary]:
        """The jobs that still exist, as far as anyone knows."""
        return [
            job for job in jobs if job.uid not in self.uids.get((job.namespace, job.worker), ())
        ]

    def keep_only(self, namespace: str, worker: str, indexed: Iterable[JobSummary]) -> None:
        """Forget the ghosts of a worker that its index no longer holds."""
        key = (namespace, worker)
        if key in self.uids:
            self.uids[key] &= {job.uid for job in indexed}
            if not self.uids[key]:
                del self.uids[key]
