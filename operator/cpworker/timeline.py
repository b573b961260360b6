"""When did each step of one CodePipeline job happen? Read from its Kubernetes Job record.

The latency metrics are computed from timestamps stored on objects that outlive the operator
(the Job's annotations and conditions, its pods' container states), never from timers in
memory: an operator that restarts mid-job measures what its predecessor started.

- available: annotation `cpworker.io/available-at`: when PollForJobs returned the job, or the
  SQS event that announced it (fractional seconds)
- created: the Job's `metadata.creationTimestamp` (it is created suspended; whole seconds)
- claimed: annotation `cpworker.io/released-at`: AcknowledgeJob said InProgress and the Job was
  released (as precise as written)
- started: the earliest `startedAt` of any container of the Job's pods, init containers
  included, running or terminated (whole seconds)
- finished: `lastTransitionTime` of the condition that decided the Job's end (`terminal_condition`:
  `SuccessCriteriaMet`/`FailureTarget`, else `Complete`/`Failed`), else
  `status.completionTime` (whole seconds)
- reported: annotation `cpworker.io/reported-at`: CodePipeline accepted the result
  (fractional seconds)

Kubernetes writes metav1.Time with whole seconds, so stages that begin or end at a Kubernetes
timestamp are accurate to about a second; the dispatch latency (available → claimed) uses our
own annotations only, which carry fractional seconds. A stage whose end precedes its start
(clocks of operator and API server disagree, or the one-second truncation) counts as zero.

Stages, each the interval that ends at a milestone:

- `create`: available → created; `claim`: created → claimed (observed when the job is claimed)
- `start`: claimed → started; `run`: started → finished; `report`: finished → reported
  (observed when the result has been reported)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Literal

from cpworker import names, timestamps


class Stage(StrEnum):
    """One step of a job's life, named for what happens in it (the `stage` metric label)."""

    CREATE = "create"  # available -> Kubernetes Job created (suspended)
    CLAIM = "claim"  # Job created -> acknowledged and released
    START = "start"  # released -> first container started
    RUN = "run"  # first container started -> Job finished
    REPORT = "report"  # Job finished -> result accepted by CodePipeline


# Stages known once a job is claimed, and once it has been reported.
CLAIM_STAGES: Final = (Stage.CREATE, Stage.CLAIM)
REPORT_STAGES: Final = (Stage.START, Stage.RUN, Stage.REPORT)
# The Job controller (1.31+, `pkg/controller/job/job_controller.go`) ends a Job in two steps:
# `SuccessCriteriaMet` / `FailureTarget` when the outcome is decided, `Complete` / `Failed`
# only once none of its pods is left running. Either step decides the outcome; the first
# says when. Older servers write the second step alone.
SUCCESS_CONDITIONS: Final = ("SuccessCriteriaMet", "Complete")
FAILURE_CONDITIONS: Final = ("FailureTarget", "Failed")
Ending = Literal["Complete", "Failed"]


@dataclass(frozen=True)
class JobTimeline:
    """The milestones of one job that are known so far (None: not reached, or not recorded)."""

    available: dt.datetime | None = None
    created: dt.datetime | None = None
    claimed: dt.datetime | None = None
    started: dt.datetime | None = None
    finished: dt.datetime | None = None
    reported: dt.datetime | None = None

    def _bounds(self, stage: Stage) -> tuple[dt.datetime | None, dt.datetime | None]:
        return {
            Stage.CREATE: (self.available, self.created),
            Stage.CLAIM: (self.created, self.claimed),
            Stage.START: (self.claimed, self.started),
            Stage.RUN: (self.started, self.finished),
            Stage.REPORT: (self.finished, self.reported),
        }[stage]

    def stage_seconds(self, stages: Iterable[Stage] = tuple(Stage)) -> dict[Stage, float]:
        """Seconds spent in each of `stages` whose two milestones are known."""
        result = {}
        for stage in stages:
            start, end = self._bounds(stage)
            if start is not None and end is not None:
                result[stage] = _seconds_between(start, end)
        return result

    def dispatch_seconds(self) -> float | None:
        """Available -> claimed: how long a job waited before it could start running."""
        if self.available is None or self.claimed is None:
            return None
        return _seconds_between(self.available, self.claimed)


def _seconds_between(start: dt.datetime, end: dt.datetime) -> float:
    return max(0.0, (end - start).total_seconds())


def _get(obj: object, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def terminal_condition(job: Mapping[str, Any]) -> tuple[Ending, Mapping[str, Any]] | None:
    """How the Job ended ("Complete" or "Failed") and the condition that first said so, or
    None while it runs. Success wins when both are true (the controller never sets both)."""
    true = {
        str(condition.get("type")): condition
        for condition in _get(job, "status", "conditions") or []
        if isinstance(condition, Mapping) and condition.get("status") == "True"
    }
    succeeded = [true[kind] for kind in SUCCESS_CONDITIONS if kind in true]
    if succeeded:
        return "Complete", succeeded[0]
    failed = [true[kind] for kind in FAILURE_CONDITIONS if kind in true]
    if failed:
        return "Failed", failed[0]
    return None


def _finished_at(job: Mapping[str, Any]) -> dt.datetime | None:
    terminal = terminal_condition(job)
    if terminal is not None:
        decided = timestamps.parse(terminal[1].get("lastTransitionTime"))
        if decided is not None:
            return decided
    return timestamps.parse(_get(job, "status", "completionTime"))


def _container_starts(pod: Mapping[str, Any]) -> Iterable[dt.datetime]:
    status = pod.get("status") or {}
    for container in [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]:
        for state_key in ("state", "lastState"):
            state = _get(container, state_key) or {}
            for phase in ("running", "terminated"):
                started = timestamps.parse(_get(state, phase, "startedAt"))
                if started is not None:
                    yield started


def timeline_of(job: Mapping[str, Any], pods: Iterable[Mapping[str, Any]] = ()) -> JobTimeline:
    """The milestones a Job body (and the bodies of its pods) record; see the module table."""
    annotations = _get(job, "metadata", "annotations") or {}
    starts = [when for pod in pods for when in _container_starts(pod)]
    return JobTimeline(
        available=timestamps.parse(annotations.get(names.ANNOTATION_AVAILABLE_AT)),
        created=timestamps.parse(_get(job, "metadata", "creationTimestamp")),
        claimed=timestamps.parse(annotations.get(names.ANNOTATION_RELEASED_AT)),
        started=min(starts) if starts else None,
        finished=_finished_at(job),
        reported=timestamps.parse(annotations.get(names.ANNOTATION_REPORTED_AT)),
    )
