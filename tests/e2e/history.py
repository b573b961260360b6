"""What happened, read from both stand-ins: the proof of "once" for the reliability tests.

`ClusterHistory` hears every change of the Kubernetes stand-in's store (as its own controllers
do, so no watch fault or compaction can hide one): each Job created (by uid), whether it ever
ran unsuspended, each pod of each Job, each Secret. `results_per_job` counts the results
CodePipeline accepted per job from its request log. Neither reads a secret value.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field
from typing import Any

from cpworker.sandbox.codepipeline import CodePipelineStandIn
from cpworker.sandbox.kube import KubeStandIn
from cpworker.sandbox.kube.store import Change, StorageKey

JOBS: StorageKey = ("batch", "jobs")
PODS: StorageKey = ("", "pods")
SECRETS: StorageKey = ("", "secrets")
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


@dataclass
class ClusterHistory:
    # Job name -> the uids of every Job of that name ever created.
    jobs: dict[str, list[str]] = field(default_factory=lambda: collections.defaultdict(list))
    # Job name -> the uids of those that ever ran (suspend false).
    released: dict[str, set[str]] = field(default_factory=lambda: collections.defaultdict(set))
    # Job name -> the pods its Jobs got.
    pods: dict[str, list[str]] = field(default_factory=lambda: collections.defaultdict(list))
    # Secret name -> how many times one was created.
    secrets: collections.Counter[str] = field(default_factory=collections.Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def attach(cls, kube: KubeStandIn) -> ClusterHistory:
        history = cls()
        kube.call(lambda: kube.server.store.subscribe(history.heard))
        return history

    def heard(self, key: StorageKey, change: Change) -> None:
        metadata: dict[str, Any] = change.obj.get("metadata") or {}
        name = str(metadata.get("name", ""))
        if not name.startswith("cpw-") and key != PODS:
            return
        with self._lock:
            if key == JOBS:
                uid = str(metadata.get("uid"))
                if change.type == "ADDED":
                    self.jobs[name].append(uid)
                if change.type != "DELETED" and not (change.obj.get("spec") or {}).get("suspend"):
                    self.released[name].add(uid)
            elif key == PODS and change.type == "ADDED":
                job = (metadata.get("labels") or {}).get(JOB_NAME_LABEL, "")
                if job.startswith("cpw-"):
                    self.pods[job].append(name)
            elif key == SECRETS and change.type == "ADDED":
                self.secrets[name] += 1

    def snapshot(self) -> tuple[dict[str, list[str]], dict[str, set[str]], dict[str, list[str]]]:
        with self._lock:
            return (
                {k: list(v) for k, v in self.jobs.items()},
                {k: set(v) for k, v in self.released.items()},
                {k: list(v) for k, v in self.pods.items()},
            )

    def ran_more_than_once(self) -> dict[str, int]:
        """Job names whose Jobs ran (or got pods) more than once: must be empty."""
        _, released, pods = self.snapshot()
        names = set(released) | set(pods)
        counts = {n: max(len(released.get(n, ())), len(pods.get(n, ()))) for n in names}
        return {n: c for n, c in counts.items() if c > 1}

    def created_more_than_once(self) -> dict[str, int]:
        """Job names created more than once (a suspended Job deleted unreleased by a claim's
        recovery and re-created by a later delivery), for the figures."""
        jobs, _, _ = self.snapshot()
        return {n: len(uids) for n, uids in jobs.items() if len(uids) > 1}


def results_per_job(codepipeline: CodePipelineStandIn) -> collections.Counter[str]:
    """How many PutJob*Result CodePipeline accepted per job id (its request log)."""
    return collections.Counter(
        str(r.job_id)
        for r in codepipeline.requests()
        if r.operation in {"PutJobSuccessResult", "PutJobFailureResult"} and r.outcome == "ok"
    )


def busiest_second(times: list[float]) -> int:
    """The most of `times` (epoch seconds) in any one wall-clock second."""
    return max(collections.Counter(int(t) for t in times).values(), default=0)
