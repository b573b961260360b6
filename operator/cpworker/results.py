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

import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from cpworker import names, timestamps

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

    @property
    def finished(self) -> bool:
        """True when the Job ended (succeeded or failed) in Kubernetes."""
        return self.kind in {OutcomeKind.SUCCEEDED, OutcomeKind.FAILED}


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


def _sidecars(pod: Mapping[str, Any]) -> set[str]:
    """Native sidecars (init containers with restartPolicy Always): their exit codes never
    decide a pod's phase (kubelet_pods.go getPhase), so they never take the blame for it."""
    return {
        str(c.get("name"))
        for c in _get(pod, "spec", "initContainers") or []
        if isinstance(c, Mapping) and c.get("restartPolicy") == "Always"
    }


def _failed_container(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    sidecars = _sidecars(pod)
    for status in _statuses(pod):
        if status.get("name") in sidecars:
            continue
        terminated = _get(status, "state", "terminated") or _get(status, "lastState", "terminated")
        if isinstance(terminated, Mapping) and terminated.get("exitCode") not in (0, None):
            return status
    return None


def _reporting_container(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The first regular container (spec order) that left a termination message."""
    regular = {c.get("name") for c in _get(pod, "spec", "containers") or []}
    for status in _statuses(pod):
        if regular and status.get("name") not in regular:
            continue
        if _get(status, "state", "terminated", "message"):
            return status
    return None


def _ended(
    kind: OutcomeKind, reason: str, detail: str, status: Mapping[str, Any] | None
) -> Outcome:
    terminated = _get(status, "state", "terminated") or _get(status, "lastState", "terminated")
    exit_code = _get(terminated, "exitCode")
    return Outcome(
        kind=kind,
        reason=reason,
        detail=detail,
        container=_get(status, "name"),
        exit_code=exit_code if isinstance(exit_code, int) else None,
        container_reason=_get(terminated, "reason"),
        termination_message=_get(terminated, "message"),
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
            return Outcome(
                kind=OutcomeKind.NEVER_STARTED,
                reason=str(waiting["reason"]),
                detail=str(waiting.get("message") or ""),
                since=timestamps.parse(_get(pod, "status", "startTime")) or created,
                container=status.get("name"),
            )
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
) -> Outcome | None:
    """The verdict of the push sidecar on a Complete Job; None when it does not change the
    success (no push sidecar, or it exited 0) or the user's own report already fails the job.

    A native sidecar's exit code never affects the pod's phase, so `Complete` says nothing
    about the upload: only the push container's terminated state does (docs/architecture.md,
    "Artifacts in the pod"). Not terminated yet: RUNNING (wait; the pod view is behind).
    Non-zero: FAILED with its report (PermissionError, JobFailed, SystemUnavailable, as the
    helper wrote it). SIGKILL (137, not OOMKilled): the grace period ran out mid-upload.
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
    pod = next((p for p in pods_newest_first if _get(p, "status", "phase") == "Succeeded"), None)
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
    return _ended(OutcomeKind.FAILED, UPLOAD_FAILED_REASON, detail, status)


def outcome_from(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> Outcome:
    """Classify a Kubernetes Job and its pods (newest pod decides).

    Job conditions are authoritative for the end (Complete/SuccessCriteriaMet,
    Failed/FailureTarget: with reasons such as DeadlineExceeded or BackoffLimitExceeded);
    pods add the exit code and termination message, and tell a pod that will never start
    (image pull errors, unschedulable) from one that is merely starting. A released Job with
    no pod at all is never-started too (for example: its service account is missing); the
    caller decides when that has lasted long enough (`never_started_expired`).
    """
    newest_first = _by_creation(pods)
    succeeded = _true_condition(job, ("Complete", "SuccessCriteriaMet"))
    if succeeded is not None:
        succeeded_pods = [p for p in newest_first if _get(p, "status", "phase") == "Succeeded"]
        status = next(
            (s for p in succeeded_pods if (s := _reporting_container(p)) is not None), None
        )
        # The push sidecar's verdict first: Complete says nothing about the upload.
        upload = upload_outcome(job, newest_first, status)
        reason = str(succeeded.get("reason") or "")
        return upload or _ended(OutcomeKind.SUCCEEDED, reason, "", status)
    failed = _true_condition(job, ("Failed", "FailureTarget"))
    if failed is not None:
        status = next((s for p in newest_first if (s := _failed_container(p)) is not None), None)
        return _ended(
            OutcomeKind.FAILED,
            str(failed.get("reason") or "Failed"),
            str(failed.get("message") or ""),
            status,
        )
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
    for pod in live:
        stuck = _never_started(pod)
        if stuck is not None:
            return stuck
    return Outcome(kind=OutcomeKind.RUNNING)


def never_started_expired(outcome: Outcome, now: datetime, grace_seconds: float) -> bool:
    """True when a never-started outcome has lasted at least the grace period."""
    if outcome.kind is not OutcomeKind.NEVER_STARTED:
        return False
    if outcome.since is None:
        return True  # no timestamp to wait on: report rather than wait forever
    return (now - outcome.since).total_seconds() >= grace_seconds


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

    Raises InvalidReportError for a JSON object that breaks the contract.
    """
    if text is None or not text.strip():
        return ContainerReport()
    stripped = text.strip()
    try:
        document = json.loads(stripped)
    except ValueError:
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


def _failure_message(outcome: Outcome, external_id: str, report_message: str) -> str:
    head = f"Kubernetes Job {external_id} failed"
    facts = []
    if outcome.reason:
        facts.append(f"reason {outcome.reason}")
    if outcome.container:
        facts.append(f"container {outcome.container}")
    if outcome.exit_code is not None:
        facts.append(f"exit code {outcome.exit_code}")
    if outcome.container_reason:
        facts.append(f"({outcome.container_reason})")
    text = head + (": " + ", ".join(facts) if facts else "")
    if outcome.detail:
        text += f". {outcome.detail}"
    tail = report_message or outcome.termination_message or ""
    if tail.strip():
        text += "\n" + clean_text(tail.strip(), TERMINATION_TAIL, keep="tail")
    return text


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

    `redact`: secret values (secret configuration) that must not be echoed back even if a
    container printed them into its termination message.
    """
    ext_id = external_execution_id(namespace, job_name)
    if outcome.kind is OutcomeKind.NEVER_STARTED:
        detail = f": {outcome.detail}" if outcome.detail else ""
        where = f" (container {outcome.container})" if outcome.container else ""
        return failure_result(
            job_id=job_id,
            failure_type="SystemUnavailable",
            message=f"Kubernetes Job {ext_id} never started{where}: {outcome.reason}{detail}",
            external_execution_id=ext_id,
            redact=redact,
        )
    if not outcome.finished:
        raise ValueError(f"cannot report a Job that is {outcome.kind.value}")
    try:
        report = parse_container_report(outcome.termination_message)
    except InvalidReportError as error:
        if outcome.kind is OutcomeKind.FAILED:
            report = ContainerReport()
        else:
            return failure_result(
                job_id=job_id,
                failure_type="JobFailed",
                message=f"Kubernetes Job {ext_id} succeeded, but {error}",
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
    report_message = report.failure.message if report.failure else (report.summary or "")
    return failure_result(
        job_id=job_id,
        failure_type=failure_type,
        message=_failure_message(outcome, ext_id, report_message),
        external_execution_id=ext_id,
        redact=redact,
    )
