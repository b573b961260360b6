"""Which cpworker Secrets must go now: those whose Job is gone, or done with them.

A job's Secret (its artifact credentials and secret configuration) is owned by its Job, so the
garbage collector deletes it with the Job, and the reporter deletes it as soon as the result is
recorded. Neither is enough on its own:

- a crash between `mark_reported` and the Secret's deletion leaves it until the Job's TTL
  (an hour by default) deletes the Job;
- a Job deleted while the garbage collector lags keeps its Secret until GC catches up;
- a Job deleted with `propagationPolicy: Orphan` (`kubectl delete job --cascade=orphan`, or any
  API client deleting a batch/v1 Job without a propagationPolicy: its default is orphan) loses
  its dependents' owner references, and GC never deletes the Secret at all.

The operator may not list Secrets (get/create/patch/delete only: a list would read every Secret
of the namespace), so the sweeper finds them from the Job index, whose Secrets are named like
their Jobs: a Job's DELETED event (`job_gone`) deletes its Secret unless a newer Job of the name
owns it; each supervision round (`sweep`) deletes the Secret of every reported or cancelled Job
of the worker once per operator life, unless this process deleted it already (the reporter
does, right after `mark_reported`). Deletions that fail are retried at the next round, so a
Secret outlives its Job by at most one supervision interval after the API answers again.

Not covered: a Job deleted with propagationPolicy Orphan while no operator runs (its DELETED
event is never seen, and nothing else names the Secret); docs/reliability.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from cpworker import names
from cpworker.jobindex import JobSummary
from cpworker.jobrecord import JobRecords
from cpworker.kube import KubeError

log = logging.getLogger(__name__)

# Secrets of reported Jobs deleted per worker and round: after a restart, every reported Job
# still in the index (kept until its TTL) gets one DELETE, spread over a few rounds.
SWEEP_PER_ROUND: Final = 20
DONE_PHASES: Final = frozenset({names.Phase.REPORTED.value, names.Phase.CANCELLED.value})


@dataclass
class SecretSweeper:
    records: JobRecords
    # Jobs (namespace, name) whose Secret this process deleted after they were done (each
    # leaves with its Job's DELETED event).
    _swept: set[tuple[str, str]] = field(default_factory=set)
    # Jobs gone whose Secret could not be checked yet: (namespace, name) -> the Job's uid.
    _pending: dict[tuple[str, str], str] = field(default_factory=dict)

    async def job_gone(self, body: Mapping[str, Any]) -> None:
        """A labelled Job was deleted: its Secret goes too, unless a newer Job owns it."""
        metadata = body.get("metadata") or {}
        key = (str(metadata.get("namespace", "")), str(metadata.get("name", "")))
        self._swept.discard(key)
        self._pending[key] = str(metadata.get("uid", ""))
        await self._settle(key)

    def has_pending(self) -> bool:
        """Secrets of deleted Jobs are still to be checked (each round retries them)."""
        return bool(self._pending)

    async def sweep(self, jobs: Iterable[JobSummary]) -> None:
        """One round for a worker's Jobs: retry Secrets of Jobs gone, delete those of done Jobs."""
        for key in list(self._pending):
            await self._settle(key)
        budget = SWEEP_PER_ROUND
        for job in jobs:
            key = (job.namespace, job.name)
            if key in self._swept or job.phase not in DONE_PHASES or budget <= 0:
                continue
            if self.records.deleted_secret_of(job.body):  # the reporter did, in this life
                self._swept.add(key)
                continue
            budget -= 1
            try:
                await self.records.delete_secret(job.body)
            except KubeError as exc:
                log.info("could not delete the Secret of done Job %s/%s: %s", *key, exc)
                continue
            self._swept.add(key)

    async def _settle(self, key: tuple[str, str]) -> None:
        uid = self._pending.get(key)
        if uid is None:
            return
        try:
            done = await self.records.delete_orphaned_secret(key[0], key[1], uid)
        except KubeError as exc:
            log.info("could not check the Secret of deleted Job %s/%s: %s", *key, exc)
            return
        if done:
            self._pending.pop(key, None)
