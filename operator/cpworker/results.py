"""Kubernetes Job/Pod state -> what is reported to CodePipeline. Pure.

Three steps, each a function:

1. `outcome_from(job, pods)` classifies the Job: pending (suspended), running, succeeded,
   failed (with the Kubernetes reason, exit code and termination message) or never-started
   (image pull, unschedulable, no pod created; with the time it has been stuck since).
2. `parse_container_report(text)` reads the container's result: a JSON object
   `{"summary", "percentComplete", "outputVariables", "currentRevision", "failure"}` or plain
   text (the summary). The contract is documented in docs/job-contract.md.
3. `result_for(outcome, ...)` / `success_result(...)` / `failure_result(...)` build the keyword
   arguments of PutJobSuccessResult / PutJobFailureResult, every string within the service
   model's limits, invalid output turned into a failure that says why.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from cpworker import names, timeline, timestamps

# Limits from the CodePipeline service model.
SUMMARY_MAX: Final = 2048
EXTERNAL_ID_MAX: Final = 1500
FAILURE_MESSAGE_MAX: Final = 5000
CONTINUATION_TOKEN_MAX: Final = 2048
OUTPUT_VARIABLES_MAX_BYTES: Final = 122_880
OUTPUT_VARIABLE_KEY_PATTERN: Final = r"^[A-Za-z0-9@\-_]+$"
REVISION_MAX: Final = 1500
CHANGE_ID_MAX: Final = 100
REVISION_SUMMARY_MAX: Final = 2048
# How much of a termination message a failure message quotes (its tail: the end of a log
# says what went wrong).
TERMINATION_TAIL: Final = 3000

FailureType = Literal[
    "JobFailed",
    "ConfigurationError",
    "PermissionError",
    "RevisionOutOfSync",
    "RevisionUnavailable",
    "SystemUnavailable",
]
FAILURE_TYPES: Final[frozenset[str]] = frozenset(get_args(FailureType))

# Container waiting reasons that mean "this pod will not start by itself". jobindex.PodSummary
# keeps the first of these it finds in its equality fields, so the index stores a fresh pod
# body as soon as a pod starts waiting for one of them (equality is freshness there).
NEVER_START_REASONS: Final = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
NO_POD_REASON: Final = "NoPodCreated"
UNSCHEDULABLE_REASON: Final = "Unschedulable"
_CONTROL_CHARS: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


# --- 1. Classifying Kubernetes state ------------------------------------------------------


class OutcomeKind(StrEnum):
    PENDING = "pending"  # suspended (claim not finished) or not yet seen by the Job controller
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    NEVER_STARTED = "never-started"


class Patience(StrEnum):
    """How long a Job whose pod cannot start is waited for before it is reported."""

    NONE = "none"  # it never will: report at once (a refusal only the template can fix)
    GRACE = "grace"  # CPWORKER_NEVER_STARTED_GRACE_SECONDS (it may yet: an image, an account)
    QUOTA = "quota"  # CPWORKER_QUOTA_WAIT_SECONDS (a quota shortage frees up as jobs end)


@dataclass(frozen=True)
class Outcome:
    """Where a Kubernetes Job stands, with what a report needs."""

    kind: OutcomeKind
    reason: str = ""  # Kubernetes reason: DeadlineExceeded, ImagePullBackOff, Unschedulable...
    detail: str = ""  # Kubernetes message accompanying the reason
    since: datetime | None = None  # NEVER_STARTED: stuck since then
    container: str | None = None  # the container whose end decides the outcome
    exit_code: int | None = None
    container_reason: str | None = None  # the container's terminated reason (Error, OOMKilled)
    termination_message: str | None = None
    # The most of `termination_message` Kubernetes keeps for that container (bytes).
    message_limit: int | None = None
    # A pod-level end (evicted, rejected, disrupted): the pod, its reason and message.
    pod: str | None = None
    pod_reason: str | None = None
    pod_message: str | None = None
    # Classic sidecars still running after every other container ended: the job is over, and
    # the Job must be deleted once reported (nothing else stops them).
    lingering: tuple[str, ...] = ()
    # NEVER_STARTED: what to report (None: SystemUnavailable) and how long to wait first.
    failure_type: FailureType | None = None
    patience: Patience = Patience.GRACE

    @property
    def finished(self) -> bool:
        """True when the Job ended (succeeded or failed) in Kubernetes."""
        return self.kind in {OutcomeKind.SUCCEEDED, OutcomeKind.FAILED}

    @property
    def report_cut(self) -> bool:
        """True when the termination message reached what Kubernetes keeps of it: it may have
        been cut (at its start: the kubelet keeps the end of the file)."""
        if not self.termination_message or self.message_limit is None:
            return False
        return len(self.termination_message.encode()) >= self.message_limit - _CUT_SLACK


def _get(obj: object, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _true_condition(obj: Mapping[str, Any], types: Collection[str]) -> Mapping[str, Any] | None:
    for condition in _get(obj, "status", "conditions") or []:
        if (
            isinstance(condition, Mapping)
            and condition.get("type") in types
            and condition.get("status") == "True"
        ):
            return condition
    return None


def _by_creation(pods: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(
        pods,
        key=lambda p: timestamps.parse(_get(p, "metadata", "creationTimestamp")) or epoch,
        reverse=True,
    )


def _statuses(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Container statuses in the order the containers run: init containers, then the rest."""
    ordered: list[Mapping[str, Any]] = []
    for key, spec_key in (
        ("initContainerStatuses", "initContainers"),
        ("containerStatuses", "containers"),
    ):
        statuses = {
            s.get("name"): s for s in _get(pod, "status", key) or [] if isinstance(s, Mapping)
        }
        names_in_order = [c.get("name") for c in _get(pod, "spec", spec_key) or []]
        names_in_order += [n for n in statuses if n not in names_in_order]
        ordered += [statuses[n] for n in names_in_order if n in statuses]
    return ordered


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _terminated(status: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    found = _get(status, "state", "terminated") or _get(status, "lastState", "terminated")
    return found if isinstance(found, Mapping) else None


# --- Sidecars -----------------------------------------------------------------------------
#
# A *native* sidecar is an init container with `restartPolicy: Always`: the kubelet stops it
# (SIGTERM, exit 143) once the regular containers have exited, and its exit code never counts
# for the pod's phase (pkg/kubelet/kubelet_pods.go getPhase). So it never takes the blame.
# A *classic* sidecar is a regular container that does not exit by itself (a mesh proxy): it
# keeps the pod Running, and the Job, until the deadline. The rule (docs/job-contract.md):
# a regular container is a classic sidecar when the pod template names it in the annotation
# `cpworker.io/sidecars` or it has the name a mesh injects (KNOWN_SIDECARS) — never a guess
# from behaviour, so a second container that works longer than the first is waited for. Once
# every other regular container has terminated, the job is over: it succeeded when they all
# exited 0, else the first that did not is blamed; the sidecars never are unless they alone
# failed. The operator's own helpers (`cpworker-*`) are judged by their own rules.

# Containers that service meshes and agents inject as classic sidecars, by their fixed names:
# Istio, Linkerd, Vault Agent Injector, Dapr, Consul, Kuma.
KNOWN_SIDECARS: Final = frozenset(
    {"istio-proxy", "linkerd-proxy", "vault-agent", "daprd", "consul-dataplane", "kuma-sidecar"}
)


def _native_sidecars(pod: Mapping[str, Any]) -> set[str]:
    return {
        str(c.get("name"))
        for c in _list(_get(pod, "spec", "initContainers"))
        if isinstance(c, Mapping) and c.get("restartPolicy") == "Always"
    }


def _regular(pod: Mapping[str, Any]) -> list[str]:
    containers = _get(pod, "spec", "containers")
    if not isinstance(containers, list):
        return []
    return [str(c.get("name")) for c in containers if isinstance(c, Mapping)]


def classic_sidecars(pod: Mapping[str, Any]) -> set[str]:
    """The pod's classic sidecars (see above); none when they would be all its containers."""
    marked = str(_get(pod, "metadata", "annotations", names.ANNOTATION_SIDECARS) or "")
    named = {part.strip() for part in marked.split(",") if part.strip()}
    regular = _regular(pod)
    found = {
        name
        for name in regular
        if (name in KNOWN_SIDECARS or name in named)
        and not name.startswith(names.POD_RESERVED_PREFIX)
    }
    return found if len(found) < len(regular) else set()


def _failed_container(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The first container that failed (init containers first), sidecars last: a native
    sidecar never, a classic one only when nothing else failed."""
    native, classic = _native_sidecars(pod), classic_sidecars(pod)
    failed = [
        status
        for status in _statuses(pod)
        if status.get("name") not in native
        and (terminated := _terminated(status)) is not None
        and terminated.get("exitCode") not in (0, None)
    ]
    failed.sort(key=lambda status: status.get("name") in classic)
    return failed[0] if failed else None


def _reporting_container(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The first regular container (spec order), not a sidecar, that left a message."""
    classic = classic_sidecars(pod)
    regular = set(_regular(pod)) - classic
    for status in _statuses(pod):
        if regular and status.get("name") not in regular:
            continue
        if _get(status, "state", "terminated", "message"):
            return status
    return None


def _mains_ended(pod: Mapping[str, Any]) -> tuple[str, ...]:
    """The classic sidecars still running once every other regular container terminated
    (empty: not so, or the pod has none)."""
    classic = classic_sidecars(pod)
    if not classic:
        return ()
    states = {
        str(s.get("name")): s
        for s in _get(pod, "status", "containerStatuses") or []
        if isinstance(s, Mapping)
    }
    mains = [name for name in _regular(pod) if name not in classic]
    if not all(_get(states.get(name), "state", "terminated") for name in mains):
        return ()
    return tuple(
        name
        for name in _regular(pod)
        if name in classic and not _get(states.get(name), "state", "terminated")
    )


# --- Termination messages -----------------------------------------------------------------
#
# What Kubernetes keeps of a container's termination message (docs/job-contract.md): the
# kubelet reads the *last* 4096 bytes of the file (pkg/kubelet/kuberuntime/
# kuberuntime_container.go getTerminationMessage), or with FallbackToLogsOnError, an empty
# file and a non-zero exit, the last 80 log lines within 2048 bytes; the status manager then
# keeps the *first* 12 KiB divided by the pod's containers, init and ephemeral ones included
# (pkg/kubelet/status/status_manager.go normalizeStatus).
TERMINATION_FILE_LIMIT: Final = 4096
TERMINATION_LOG_LINES: Final = 80
TERMINATION_LOG_LIMIT: Final = 2048
TERMINATION_POD_LIMIT: Final = 12 * 1024
# A cut may split a UTF-8 character, and Go's JSON encoder replaces each stray byte by U+FFFD
# (3 bytes): a message this close to the limit may have been cut.
_CUT_SLACK: Final = 3


def termination_message_limit(pod: Mapping[str, Any]) -> int:
    """The most of a report file Kubernetes keeps for each container of this pod (bytes)."""
    count = sum(
        len(found) if isinstance(found := _get(pod, "spec", group), list) else 0
        for group in ("containers", "initContainers", "ephemeralContainers")
    )
    return min(TERMINATION_FILE_LIMIT, TERMINATION_POD_LIMIT // max(count, 1))


def cut_report_problem(outcome: Outcome) -> str:
    """Why a report that reached Kubernetes' limit cannot be trusted, and what to do."""
    limit = outcome.message_limit or TERMINATION_FILE_LIMIT
    per_pod = (
        f" (12,288 bytes shared by the pod's {TERMINATION_POD_LIMIT // limit} containers)"
        if limit < TERMINATION_FILE_LIMIT
        else ""
    )
    return (
        f"the report of container {outcome.container} reached the {limit} bytes Kubernetes "
        f"keeps of a termination message{per_pod} and was cut (the kubelet keeps the end of "
        f"the file), so it cannot be trusted: keep the report under {limit - _CUT_SLACK} "
        "bytes and put large output into a file artifact"
    )


# --- Pod-level ends -----------------------------------------------------------------------

DISRUPTION_TARGET: Final = "DisruptionTarget"

# The kubelet's state for a container it could not find when the pod was killed (eviction):
# exit code 137 that says nothing about the workload.
CONTAINER_STATUS_UNKNOWN: Final = "ContainerStatusUnknown"


def pod_level_end(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """(reason, message) when the pod as a whole was ended from outside: evicted by the
    kubelet (reason Evicted), rejected at admission (OutOfcpu, OutOfmemory, ...), or marked
    by a disruption (DisruptionTarget: EvictionByEvictionAPI, PreemptionByScheduler,
    DeletionByTaintManager, TerminationByKubelet, ...). Its containers' exits are then a
    consequence, not the cause."""
    reason = _get(pod, "status", "reason")
    message = str(_get(pod, "status", "message") or "")
    if reason:
        return str(reason), message.strip()
    disrupted = _true_condition(pod, (DISRUPTION_TARGET,))
    if disrupted is not None:
        why = f"{DISRUPTION_TARGET} ({disrupted.get('reason') or 'unknown'})"
        return why, str(disrupted.get("message") or "").strip()
    return None


# What is kept of a pod-level message in the Job's annotation (it only needs to say why).
POD_END_MESSAGE_MAX: Final = 1000


def pod_end_record(pod: Mapping[str, Any]) -> str | None:
    """The `cpworker.io/pod-ended` annotation for a pod ended from outside (None: it was not)."""
    ended = pod_level_end(pod)
    if ended is None:
        return None
    name = str(_get(pod, "metadata", "name") or "")
    return json.dumps(
        {"pod": name, "reason": ended[0], "message": ended[1][:POD_END_MESSAGE_MAX]},
        sort_keys=True,
    )


def _recorded_pod_end(job: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(pod, reason, message) from the Job's record of a pod ended from outside."""
    raw = _get(job, "metadata", "annotations", names.ANNOTATION_POD_ENDED)
    try:
        found = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    if not isinstance(found, dict) or not found.get("reason"):
        return None
    return str(found.get("pod") or ""), str(found["reason"]), str(found.get("message") or "")


def _ended(
    kind: OutcomeKind,
    reason: str,
    detail: str,
    status: Mapping[str, Any] | None,
    pod: Mapping[str, Any] | None = None,
) -> Outcome:
    terminated = _terminated(status)
    exit_code = _get(terminated, "exitCode")
    return Outcome(
        kind=kind,
        reason=reason,
        detail=detail,
        container=_get(status, "name"),
        exit_code=exit_code if isinstance(exit_code, int) else None,
        container_reason=_get(terminated, "reason"),
        termination_message=_get(terminated, "message"),
        message_limit=termination_message_limit(pod) if pod is not None else None,
    )


def _failed(
    job: Mapping[str, Any], job_reason: str, job_detail: str, pod: Mapping[str, Any] | None
) -> Outcome:
    """A failure decided by this pod: its pod-level end if it had one (or the Job's record of
    it, the pod being gone), else its first failed container."""
    status = _failed_container(pod) if pod is not None else None
    outcome = _ended(OutcomeKind.FAILED, job_reason, job_detail, status, pod)
    ended = pod_level_end(pod) if pod is not None else None
    recorded = _recorded_pod_end(job)
    if (
        ended is None
        and recorded is not None
        and (pod is None or recorded[0] == _get(pod, "metadata", "name"))
    ):
        return dataclasses.replace(
            outcome, pod=recorded[0], pod_reason=recorded[1], pod_message=recorded[2]
        )
    if ended is None or pod is None:
        return outcome
    unknown = outcome.container_reason == CONTAINER_STATUS_UNKNOWN
    return dataclasses.replace(
        outcome,
        container=None,
        exit_code=None,
        container_reason=None,
        termination_message=None if unknown else outcome.termination_message,
        pod=str(_get(pod, "metadata", "name") or ""),
        pod_reason=ended[0],
        pod_message=ended[1],
    )


# --- Pods that cannot start ---------------------------------------------------------------

# `verifyRunAsNonRoot` (pkg/kubelet/kuberuntime/security_context_others.go): the pod asks for
# a non-root user and the image (or runAsUser) would run as root. Never resolves by itself.
_NON_ROOT_MARKERS: Final = (
    "runAsNonRoot and image will run as root",
    "runAsNonRoot and image has non-numeric user",
    "runAsUser breaks non-root policy",
)
NON_ROOT_FIX: Final = (
    "the image runs as root: give it a non-root numeric USER in its Dockerfile, or set a "
    "non-zero runAsUser in the job template's securityContext, or set runAsNonRoot: false "
    "there to allow root (the operator asks for runAsNonRoot: true unless the template sets "
    "runAsUser: 0 or runAsNonRoot itself)"
)


def _never_started(pod: Mapping[str, Any]) -> Outcome | None:
    created = timestamps.parse(_get(pod, "metadata", "creationTimestamp"))
    for condition in _get(pod, "status", "conditions") or []:
        if (
            _get(condition, "type") == "PodScheduled"
            and _get(condition, "status") == "False"
            and _get(condition, "reason") == UNSCHEDULABLE_REASON
        ):
            return Outcome(
                kind=OutcomeKind.NEVER_STARTED,
                reason=UNSCHEDULABLE_REASON,
                detail=str(_get(condition, "message") or ""),
                since=timestamps.parse(_get(condition, "lastTransitionTime")) or created,
            )
    for status in _statuses(pod):
        waiting = _get(status, "state", "waiting")
        if isinstance(waiting, Mapping) and waiting.get("reason") in NEVER_START_REASONS:
            message = str(waiting.get("message") or "")
            outcome = Outcome(
                kind=OutcomeKind.NEVER_STARTED,
                reason=str(waiting["reason"]),
                detail=message,
                since=timestamps.parse(_get(pod, "status", "startTime")) or created,
                container=status.get("name"),
            )
            if any(marker in message for marker in _NON_ROOT_MARKERS):
                return dataclasses.replace(
                    outcome,
                    detail=f"{message}: {NON_ROOT_FIX}",
                    failure_type="ConfigurationError",
                    patience=Patience.NONE,
                )
            return outcome
    return None


# A Complete Job whose output artifacts were not uploaded (the push sidecar failed).
UPLOAD_FAILED_REASON: Final = "ArtifactUploadFailed"
UPLOAD_PENDING_REASON: Final = "ArtifactUploadPending"
_SIGKILL_EXIT: Final = 137


def _pushes(job: Mapping[str, Any]) -> bool:
    """True when the Job's pods run the operator's push sidecar (jobmanifest.py)."""
    return any(
        isinstance(c, Mapping) and c.get("name") == names.PUSH_CONTAINER
        for c in _get(job, "spec", "template", "spec", "initContainers") or []
    )


def _declares_failure(status: Mapping[str, Any] | None) -> bool:
    """The user's container reported a failure (or a broken report) despite exit code 0:
    their failure is the job's, not the upload's."""
    try:
        report = parse_container_report(_get(status, "state", "terminated", "message"))
    except InvalidReportError:
        return True
    return report.failure is not None


def upload_outcome(
    job: Mapping[str, Any],
    pods_newest_first: Sequence[Mapping[str, Any]],
    reporting: Mapping[str, Any] | None = None,
    pod: Mapping[str, Any] | None = None,
) -> Outcome | None:
    """The verdict of the push sidecar on a Complete Job; None when it does not change the
    success (no push sidecar, or it exited 0) or the user's own report already fails the job.

    A native sidecar's exit code never affects the pod's phase, so `Complete` says nothing
    about the upload: only the push container's terminated state does (docs/architecture.md,
    "Artifacts in the pod"). Not terminated yet: RUNNING (wait; the pod view is behind).
    Non-zero: FAILED with its report (PermissionError, JobFailed, SystemUnavailable, as the
    helper wrote it). SIGKILL (137, not OOMKilled): the grace period ran out mid-upload.
    `pod`: the pod to judge (default: the newest Succeeded one).
    """
    if not _pushes(job) or _declares_failure(reporting):
        return None
    if not pods_newest_first:
        return Outcome(
            kind=OutcomeKind.FAILED,
            reason=UPLOAD_FAILED_REASON,
            detail="The Job completed, but its pod is gone, so the upload of its output "
            "artifacts cannot be confirmed. Re-run the action.",
        )
    if pod is None:
        pod = next(
            (p for p in pods_newest_first if _get(p, "status", "phase") == "Succeeded"), None
        )
    status = next((s for s in _statuses(pod or {}) if s.get("name") == names.PUSH_CONTAINER), None)
    terminated = _get(status, "state", "terminated")
    if not isinstance(terminated, Mapping):
        last = _get(status, "lastState", "terminated")
        if isinstance(last, Mapping) and last.get("exitCode") not in (0, None):
            terminated = last  # it crashed and the kubelet was restarting it
        else:
            return Outcome(kind=OutcomeKind.RUNNING, reason=UPLOAD_PENDING_REASON)
    exit_code = terminated.get("exitCode")
    if exit_code == 0:
        return None
    if terminated.get("reason") == "OOMKilled":
        detail = (
            "The job's containers succeeded, but the artifact upload ran out of memory: raise "
            "the memory limit of the artifact containers (the operator's "
            "CPWORKER_ARTIFACTS_RESOURCES)."
        )
    elif exit_code == _SIGKILL_EXIT:
        grace = _get(pod, "spec", "terminationGracePeriodSeconds")
        detail = (
            "The job's containers succeeded, but the upload of its output artifacts did not "
            f"finish within terminationGracePeriodSeconds ({grace} s) and was killed. Raise "
            "the operator's CPWORKER_ARTIFACTS_PUSH_GRACE_SECONDS (or the template's "
            "terminationGracePeriodSeconds), or make the outputs smaller."
        )
    else:
        detail = "The job's containers succeeded, but uploading its output artifacts failed."
    return _ended(OutcomeKind.FAILED, UPLOAD_FAILED_REASON, detail, status, pod)


def outcome_from(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> Outcome:
    """Classify a Kubernetes Job and its pods (newest pod decides).

    Job conditions are authoritative for the end (either of the two steps: SuccessCriteriaMet
    or Complete, FailureTarget or Failed; with reasons such as DeadlineExceeded or
    BackoffLimitExceeded), a success only once the push sidecar's upload did (`upload_outcome`);
    pods add the exit code, the termination message and a pod-level
    end (evicted, rejected), tell a pod that will never start (image pull errors,
    unschedulable, runAsNonRoot with a root image) from one that is merely starting, and end
    a job whose classic sidecars alone still run. A released Job with no pod at all is
    never-started too (for example: its service account is missing, or admission refused
    the pod: `with_refusal` adds the Job controller's reason); the caller decides when that
    has lasted long enough (`never_started_expired`).
    """
    newest_first = _by_creation(pods)
    terminal = timeline.terminal_condition(job)
    if terminal is not None and terminal[0] == "Complete":
        succeeded_pods = [p for p in newest_first if _get(p, "status", "phase") == "Succeeded"]
        found = next(
            ((s, p) for p in succeeded_pods if (s := _reporting_container(p)) is not None), None
        )
        status, pod = found if found is not None else (None, next(iter(succeeded_pods), None))
        # The push sidecar's verdict first: Complete says nothing about the upload.
        upload = upload_outcome(job, newest_first, status)
        reason = str(terminal[1].get("reason") or "")
        return upload or _ended(OutcomeKind.SUCCEEDED, reason, "", status, pod)
    if terminal is not None:
        condition = terminal[1]
        deciding = next(
            (
                p
                for p in newest_first
                if _get(p, "status", "phase") == "Failed" or _failed_container(p) is not None
            ),
            None,
        )
        return _failed(
            job,
            str(condition.get("reason") or "Failed"),
            str(condition.get("message") or ""),
            deciding,
        )
    stopped = _get(job, "metadata", "annotations", names.ANNOTATION_SIDECARS_STOPPED)
    if stopped:
        return _stopped_for_sidecars(job, newest_first, str(stopped))
    if _get(job, "spec", "suspend") is True:
        return Outcome(kind=OutcomeKind.PENDING, reason="Suspended")
    live = [p for p in newest_first if _get(p, "status", "phase") not in ("Succeeded", "Failed")]
    if not live and not newest_first:
        # startTime is written by the Job controller some time after the release; until then
        # the release time counts (a Job waits suspended through its claim, or an outage).
        since = (
            timestamps.parse(_get(job, "status", "startTime"))
            or timestamps.parse(_get(job, "metadata", "annotations", names.ANNOTATION_RELEASED_AT))
            or timestamps.parse(_get(job, "metadata", "creationTimestamp"))
        )
        return Outcome(
            kind=OutcomeKind.NEVER_STARTED,
            reason=NO_POD_REASON,
            detail="the Job controller has created no pod (check the Job's events: service "
            "account, quota, admission)",
            since=since,
        )
    return _live_outcome(job, live)


def _live_outcome(job: Mapping[str, Any], live: Sequence[Mapping[str, Any]]) -> Outcome:
    """Running, or over because only classic sidecars still run, or never starting."""
    lingering = _mains_ended(live[0]) if live else ()
    if lingering:
        return _sidecars_left(job, live[0], lingering)
    for pod in live:
        stuck = _never_started(pod)
        if stuck is not None:
            return stuck
    return Outcome(kind=OutcomeKind.RUNNING)


# The job's containers succeeded beside classic sidecars, and its outputs still have to be
# uploaded: the push sidecar uploads when the kubelet stops it, which it does only once every
# regular container has exited. The operator stops the pod (it suspends the Job: the Job
# controller deletes the pod gracefully and starts no replacement) and waits for the upload.
SIDECARS_STOP_REASON: Final = "ClassicSidecarsRunning"


def _sidecars_left(
    job: Mapping[str, Any], pod: Mapping[str, Any], lingering: tuple[str, ...]
) -> Outcome:
    """Every regular container but the classic sidecars ended: so did the job (or, when its
    outputs are still to be uploaded, it is time to stop the pod)."""
    if _failed_container(pod) is not None:
        outcome = _failed(job, "", "", pod)
    elif _pushes(job):
        name = str(_get(pod, "metadata", "name") or "")
        return Outcome(
            kind=OutcomeKind.RUNNING, reason=SIDECARS_STOP_REASON, pod=name, lingering=lingering
        )
    else:
        outcome = _ended(OutcomeKind.SUCCEEDED, "", "", _reporting_container(pod), pod)
    return dataclasses.replace(outcome, lingering=lingering)


def stopped_pod_record(pod: Mapping[str, Any]) -> str | None:
    """The `cpworker.io/stopped-pod` annotation for a pod being deleted whose push container
    has terminated (None: not so): what its report needs (container names, terminated
    states), since the pod goes right after."""
    if not _get(pod, "metadata", "deletionTimestamp"):
        return None
    push = next((s for s in _statuses(pod) if s.get("name") == names.PUSH_CONTAINER), None)
    if not isinstance(_get(push, "state", "terminated"), Mapping):
        return None

    def kept(group: str) -> list[dict[str, Any]]:
        out = []
        for status in _list(_get(pod, "status", group)):
            terminated = _terminated(status)
            state = {} if terminated is None else {"terminated": dict(terminated)}
            out.append({"name": _get(status, "name"), "state": state})
        return out

    def spec(group: str) -> list[dict[str, Any]]:
        return [
            {k: c[k] for k in ("name", "restartPolicy") if k in c}
            for c in _list(_get(pod, "spec", group))
            if isinstance(c, Mapping)
        ]

    record = {
        "metadata": {"name": _get(pod, "metadata", "name")},
        "spec": {"initContainers": spec("initContainers"), "containers": spec("containers")},
        "status": {
            "initContainerStatuses": kept("initContainerStatuses"),
            "containerStatuses": kept("containerStatuses"),
        },
    }
    return json.dumps(record, sort_keys=True)


def _stopped_for_sidecars(
    job: Mapping[str, Any], pods_newest_first: Sequence[Mapping[str, Any]], name: str
) -> Outcome:
    """The pod the operator stopped so that its outputs get uploaded: judged by its push
    verdict and its main containers' report, from the pod or, once it is gone, from the
    state the Job recorded. Reported with its Job deleted (the sidecars are the template's)."""
    pod = next((p for p in pods_newest_first if _get(p, "metadata", "name") == name), None)
    if pod is None:
        pod = _recorded_pod(job, name)
    template = _get(job, "spec", "template") or {}
    lingering = tuple(sorted(classic_sidecars(template))) or ("",)
    reporting = _reporting_container(pod) if pod is not None else None
    upload = upload_outcome(job, [pod] if pod is not None else [], reporting, pod=pod)
    if upload is not None:
        return dataclasses.replace(upload, lingering=lingering)
    return dataclasses.replace(
        _ended(OutcomeKind.SUCCEEDED, "", "", reporting, pod), lingering=lingering
    )


def _recorded_pod(job: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The recorded final state of a stopped pod that is gone (stopped_pod_record)."""
    raw = _get(job, "metadata", "annotations", names.ANNOTATION_STOPPED_POD)
    try:
        pod = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    if not isinstance(pod, dict) or _get(pod, "metadata", "name") != name:
        return None
    return pod


# --- Pod creation refused -----------------------------------------------------------------
#
# A Job whose pod the API server refuses exists without a pod; the Job controller records a
# Warning `FailedCreate` Event on it with the API's message and retries with back-off
# (pkg/controller/job/job_controller.go manageJob, pkg/controller/controller_utils.go
# CreatePods). The message says which admission step refused it, and so what to wait for.

FAILED_CREATE: Final = "FailedCreate"


@dataclass(frozen=True)
class _Refusal:
    marker: str  # a substring of the API's message
    failure_type: FailureType
    patience: Patience
    hint: str  # what to do about it


_LIMIT_RANGE_HINT: Final = "change the job template's resources to fit the namespace's LimitRange"
_REFUSALS: Final = (
    _Refusal(
        marker="exceeded quota:",
        failure_type="SystemUnavailable",
        patience=Patience.QUOTA,
        hint="the namespace's ResourceQuota is used up; the job waited for it to free up (at "
        "most CPWORKER_QUOTA_WAIT_SECONDS): raise the quota or lower the worker's maxInFlight",
    ),
    _Refusal(
        marker="failed quota:",
        failure_type="ConfigurationError",
        patience=Patience.NONE,
        hint="the namespace's ResourceQuota requires these resources: set them in the job "
        "template (or give the namespace a LimitRange with defaults)",
    ),
    _Refusal(
        marker="violates PodSecurity",
        failure_type="ConfigurationError",
        patience=Patience.NONE,
        hint="change the job template to meet the namespace's Pod Security level (its "
        "pod-security.kubernetes.io/enforce label)",
    ),
    # LimitRanger's messages: "maximum cpu usage per Container is 1, but limit is 2",
    # "cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000".
    _Refusal(
        marker=" usage per ",
        failure_type="ConfigurationError",
        patience=Patience.NONE,
        hint=_LIMIT_RANGE_HINT,
    ),
    _Refusal(
        marker="limit to request ratio",
        failure_type="ConfigurationError",
        patience=Patience.NONE,
        hint=_LIMIT_RANGE_HINT,
    ),
    _Refusal(
        marker="denied the request",
        failure_type="ConfigurationError",
        patience=Patience.NONE,
        hint="an admission webhook refused it: change the job template to satisfy its policy",
    ),
    # A ServiceAccount may be about to appear (applied with the worker): waited for.
    _Refusal(
        marker="error looking up service account",
        failure_type="SystemUnavailable",
        patience=Patience.GRACE,
        hint="create the ServiceAccount, or fix serviceAccountName in the job template",
    ),
)


def classify_refusal(message: str) -> tuple[FailureType, Patience, str]:
    """What a refusal by the API server (its message) means for a job: the failure type, how
    long to wait for it to go away, and what to do about it."""
    for refusal in _REFUSALS:
        if refusal.marker in message:
            return refusal.failure_type, refusal.patience, refusal.hint
    return "SystemUnavailable", Patience.GRACE, ""


def _event_time(event: Mapping[str, Any]) -> datetime:
    for key in ("lastTimestamp", "eventTime", "firstTimestamp"):
        parsed = timestamps.parse(event.get(key))
        if parsed is not None:
            return parsed
    return timestamps.parse(_get(event, "metadata", "creationTimestamp")) or datetime.min.replace(
        tzinfo=UTC
    )


def with_refusal(outcome: Outcome, events: Iterable[Mapping[str, Any]]) -> Outcome:
    """A Job without a pod, with the reason its newest FailedCreate event gives (if any)."""
    if outcome.kind is not OutcomeKind.NEVER_STARTED or outcome.reason != NO_POD_REASON:
        return outcome
    refused = [e for e in events if e.get("reason") == FAILED_CREATE]
    if not refused:
        return outcome
    message = str(max(refused, key=_event_time).get("message") or "").strip()
    failure_type, patience, hint = classify_refusal(message)
    return dataclasses.replace(
        outcome,
        reason=FAILED_CREATE,
        detail=f"{message} ({hint})" if hint else message,
        failure_type=failure_type,
        patience=patience,
    )


def never_started_expired(
    outcome: Outcome,
    now: datetime,
    grace_seconds: float,
    *,
    quota_wait_seconds: float | None = None,
) -> bool:
    """True when a never-started outcome has waited as long as its patience allows."""
    if outcome.kind is not OutcomeKind.NEVER_STARTED:
        return False
    if outcome.patience is Patience.NONE or outcome.since is None:
        return True  # it never will start, or there is no timestamp to wait on
    wait = grace_seconds
    if outcome.patience is Patience.QUOTA and quota_wait_seconds is not None:
        wait = quota_wait_seconds
    return (now - outcome.since).total_seconds() >= wait


# --- 2. The container's report ------------------------------------------------------------


class InvalidReportError(ValueError):
    """The container's JSON result does not follow the contract; the message says how."""


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True, alias_generator=to_camel, populate_by_name=True, extra="forbid"
    )


class RevisionReport(_Model):
    """currentRevision: the revision the action produced (Source actions)."""

    revision: str = Field(min_length=1, max_length=REVISION_MAX)
    change_identifier: str = Field(min_length=1, max_length=CHANGE_ID_MAX)
    created: datetime | None = None
    revision_summary: str | None = Field(
        default=None, min_length=1, max_length=REVISION_SUMMARY_MAX
    )


class FailureReport(_Model):
    type: FailureType = "JobFailed"
    message: str = ""


class ContainerReport(_Model):
    """What a container may say about its result (docs/job-contract.md)."""

    summary: str | None = None
    percent_complete: int | None = Field(default=None, ge=0, le=100)
    output_variables: dict[str, str] = Field(default_factory=dict)
    current_revision: RevisionReport | None = None
    failure: FailureReport | None = None

    @field_validator("output_variables", mode="before")
    @classmethod
    def _scalars_as_text(cls, value: Any) -> Any:
        # Numbers and booleans are accepted and sent as their JSON text ("3", "true").
        if isinstance(value, Mapping):
            return {
                k: json.dumps(v) if isinstance(v, bool | int | float) else v
                for k, v in value.items()
            }
        return value


def parse_container_report(text: str | None) -> ContainerReport:
    """Read a termination message / result file: a JSON object, or plain text (the summary).

    Raises InvalidReportError for a JSON object that breaks the contract, and for text that
    opens like one (`{`) but does not parse: a report Kubernetes cut, or a broken one, must not
    pass as a plain-text summary.
    """
    if text is None or not text.strip():
        return ContainerReport()
    stripped = text.strip()
    try:
        document = json.loads(stripped)
    except ValueError as error:
        if stripped.startswith("{"):
            raise InvalidReportError(
                f"the container's result starts like a JSON object but is not valid JSON ({error})"
            ) from None
        return ContainerReport(summary=stripped)
    if not isinstance(document, dict):
        return ContainerReport(summary=stripped)
    try:
        return ContainerReport.model_validate(document)
    except ValidationError as error:
        problems = [
            f"{'.'.join(str(p) for p in item['loc']) or 'result'}: {item['msg']}"
            for item in error.errors(include_input=False, include_url=False)
        ]
        raise InvalidReportError(
            "the container's JSON result does not follow the job contract: " + "; ".join(problems)
        ) from None


def output_variable_problems(variables: Mapping[str, str]) -> list[str]:
    """Why CodePipeline would refuse these output variables (empty: fine)."""
    problems = [
        f"output variable name {key[:100]!r} is invalid: use [A-Za-z0-9@-_]"
        for key in variables
        if not re.match(OUTPUT_VARIABLE_KEY_PATTERN, key)
    ]
    size = sum(len(k.encode()) + len(v.encode()) for k, v in variables.items())
    if size > OUTPUT_VARIABLES_MAX_BYTES:
        problems.append(
            f"output variables take {size} bytes; CodePipeline accepts at most "
            f"{OUTPUT_VARIABLES_MAX_BYTES} bytes per action"
        )
    return problems


# --- 3. The calls to CodePipeline ---------------------------------------------------------


@dataclass(frozen=True)
class ReportCall:
    """One CodePipeline call: `getattr(client, call.method)(**call.params)`."""

    operation: Literal["PutJobSuccessResult", "PutJobFailureResult"]
    params: Mapping[str, Any]

    @property
    def method(self) -> str:
        """The boto3 method name."""
        return (
            "put_job_success_result"
            if self.operation == "PutJobSuccessResult"
            else "put_job_failure_result"
        )

    @property
    def succeeded(self) -> bool:
        return self.operation == "PutJobSuccessResult"

    @property
    def failure_type(self) -> str | None:
        found = _get(self.params, "failureDetails", "type")
        return found if isinstance(found, str) else None


def external_execution_id(namespace: str, job_name: str) -> str:
    """`<namespace>/<job name>`: fills {ExternalExecutionId} in the executionUrlTemplate."""
    return f"{namespace}/{job_name}"[:EXTERNAL_ID_MAX]


def clean_text(text: str, limit: int, *, redact: Collection[str] = (), keep: str = "head") -> str:
    """Printable text within `limit` characters, known secret values replaced by `***`.

    keep="tail" keeps the end (for logs and termination messages).
    """
    for secret in sorted((s for s in redact if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    text = _CONTROL_CHARS.sub("", text)
    if len(text) <= limit:
        return text
    if keep == "tail":
        return "..." + text[len(text) - (limit - 3) :]
    return text[: limit - 3] + "..."


def failure_result(
    *,
    job_id: str,
    failure_type: FailureType,
    message: str,
    external_execution_id: str | None = None,
    redact: Collection[str] = (),
) -> ReportCall:
    """PutJobFailureResult arguments; the message is cleaned and cut to 5000 characters."""
    details: dict[str, Any] = {
        "type": failure_type,
        "message": clean_text(message, FAILURE_MESSAGE_MAX, redact=redact) or failure_type,
    }
    if external_execution_id:
        details["externalExecutionId"] = external_execution_id[:EXTERNAL_ID_MAX]
    return ReportCall("PutJobFailureResult", {"jobId": job_id, "failureDetails": details})


def _revision(report: RevisionReport) -> dict[str, Any]:
    revision: dict[str, Any] = {
        "revision": report.revision,
        "changeIdentifier": report.change_identifier,
    }
    if report.created is not None:
        revision["created"] = report.created
    if report.revision_summary is not None:
        revision["revisionSummary"] = report.revision_summary
    return revision


def success_result(
    *,
    job_id: str,
    external_execution_id: str,
    report: ContainerReport | None = None,
    continuation_token: str | None = None,
    redact: Collection[str] = (),
) -> ReportCall:
    """PutJobSuccessResult arguments from the container's report.

    Invalid or oversized output variables turn into a JobFailed failure that says why,
    because CodePipeline would refuse the success anyway. With a continuation token the
    action goes on (CodePipeline allows output variables only on the final success, so
    they are left for it).
    """
    report = report or ContainerReport()
    if (
        continuation_token is not None
        and not 1 <= len(continuation_token) <= CONTINUATION_TOKEN_MAX
    ):
        raise ValueError("a continuation token is 1-2048 characters long")
    problems = output_variable_problems(report.output_variables)
    if problems and continuation_token is None:
        return failure_result(
            job_id=job_id,
            failure_type="JobFailed",
            message="the job succeeded but its result cannot be reported: " + "; ".join(problems),
            external_execution_id=external_execution_id,
            redact=redact,
        )
    summary = report.summary or f"Kubernetes Job {external_execution_id} succeeded"
    percent = report.percent_complete
    details: dict[str, Any] = {
        "summary": clean_text(summary, SUMMARY_MAX, redact=redact) or "succeeded",
        "externalExecutionId": external_execution_id[:EXTERNAL_ID_MAX],
        "percentComplete": (percent if percent is not None else 0) if continuation_token else 100,
    }
    params: dict[str, Any] = {"jobId": job_id, "executionDetails": details}
    if report.current_revision is not None:
        params["currentRevision"] = _revision(report.current_revision)
    if continuation_token is not None:
        params["continuationToken"] = continuation_token
    elif report.output_variables:
        params["outputVariables"] = dict(report.output_variables)
    return ReportCall("PutJobSuccessResult", params)


def _failure_message(
    outcome: Outcome, external_id: str, report_message: str, problem: str = ""
) -> str:
    head = f"Kubernetes Job {external_id} failed"
    facts = []
    if outcome.reason:
        facts.append(f"reason {outcome.reason}")
    if outcome.pod_reason:
        # Ended from outside (evicted, rejected, disrupted): its containers are not to blame.
        ended = f"pod {outcome.pod} {outcome.pod_reason}"
        facts.append(f"{ended}: {outcome.pod_message}" if outcome.pod_message else ended)
    if outcome.container:
        facts.append(f"container {outcome.container}")
    if outcome.exit_code is not None:
        facts.append(f"exit code {outcome.exit_code}")
    if outcome.container_reason:
        facts.append(f"({outcome.container_reason})")
    text = head + (": " + ", ".join(facts) if facts else "")
    if outcome.detail:
        text += f". {outcome.detail}"
    if outcome.lingering:
        text += f". Sidecars still running ({', '.join(outcome.lingering)}) were stopped"
    if problem:
        text += f". Also, {problem}"
    tail = report_message or outcome.termination_message or ""
    if tail.strip():
        text += "\n" + clean_text(tail.strip(), TERMINATION_TAIL, keep="tail")
    return text


def _never_started_result(
    outcome: Outcome, *, job_id: str, ext_id: str, redact: Collection[str]
) -> ReportCall:
    detail = f": {outcome.detail}" if outcome.detail else ""
    where = f" (container {outcome.container})" if outcome.container else ""
    return failure_result(
        job_id=job_id,
        failure_type=outcome.failure_type or "SystemUnavailable",
        message=f"Kubernetes Job {ext_id} never started{where}: {outcome.reason}{detail}",
        external_execution_id=ext_id,
        redact=redact,
    )


def result_for(
    outcome: Outcome,
    *,
    job_id: str,
    namespace: str,
    job_name: str,
    continuation_token: str | None = None,
    redact: Collection[str] = (),
) -> ReportCall:
    """The report for a finished or never-started Job. Raises ValueError for one still running.

    A report that reached what Kubernetes keeps of a termination message (`report_cut`) or
    does not parse is a contract violation: a success becomes a failure that says so, a
    failure says so too. A pod ended from outside (evicted, rejected) is SystemUnavailable.

    `redact`: secret values (secret configuration) that must not be echoed back even if a
    container printed them into its termination message.
    """
    ext_id = external_execution_id(namespace, job_name)
    if outcome.kind is OutcomeKind.NEVER_STARTED:
        return _never_started_result(outcome, job_id=job_id, ext_id=ext_id, redact=redact)
    if not outcome.finished:
        raise ValueError(f"cannot report a Job that is {outcome.kind.value}")
    cut = cut_report_problem(outcome) if outcome.report_cut else ""
    try:
        report = parse_container_report(outcome.termination_message)
    except InvalidReportError as error:
        report = ContainerReport()
        problem = cut or str(error)
    else:
        # A failure's message may be a log tail at the limit; only what ends like a JSON
        # report is called a cut report there.
        text = (outcome.termination_message or "").rstrip()
        problem = cut if outcome.kind is OutcomeKind.SUCCEEDED or text.endswith("}") else ""
    if outcome.kind is OutcomeKind.SUCCEEDED and problem:
        return failure_result(
            job_id=job_id,
            failure_type="JobFailed",
            message=f"Kubernetes Job {ext_id} succeeded, but {problem}",
            external_execution_id=ext_id,
            redact=redact,
        )
    if outcome.kind is OutcomeKind.SUCCEEDED and report.failure is None:
        return success_result(
            job_id=job_id,
            external_execution_id=ext_id,
            report=report,
            continuation_token=continuation_token,
            redact=redact,
        )
    failure_type: FailureType = report.failure.type if report.failure else "JobFailed"
    if outcome.pod_reason:
        failure_type = "SystemUnavailable"  # the infrastructure ended it, not the job
    report_message = report.failure.message if report.failure else (report.summary or "")
    return failure_result(
        job_id=job_id,
        failure_type=failure_type,
        message=_failure_message(outcome, ext_id, report_message, problem),
        external_execution_id=ext_id,
        redact=redact,
    )
