"""Pydantic models of the `CustomActionWorker` resource: the single source of the CRD schema.

Every field carries a description because `kubectl explain` is the user's manual. The same
rules are enforced twice: by the API server (the CEL rules rendered into the CRD by
`cpworker.crd`) and by `parse_spec` here, so the operator never acts on a spec that a
cluster without CEL (or an old CRD) let through.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict


def _seconds(now: datetime) -> datetime:
    """Kubernetes stores metav1.Time with second precision, in UTC."""
    if now.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return now.astimezone(UTC).replace(microsecond=0)


# Every timestamp in the status: RFC 3339 in UTC at whole seconds, as metav1.Time is (kubectl's
# age columns and Argo CD parse it that way).
KubeTime = Annotated[datetime, AfterValidator(_seconds)]

# --- Limits, with the reason for each --------------------------------------------------------
# Patterns and lengths from the CodePipeline service model (botocore codepipeline 2015-07-09).
PROVIDER_PATTERN: Final = r"^[0-9A-Za-z_-]{1,35}$"
VERSION_PATTERN: Final = r"^[0-9A-Za-z_-]{1,9}$"
QUERY_VALUE_PATTERN: Final = r"^[A-Za-z0-9_-]{1,50}$"
QUERY_KEY_MAX: Final = 50
# A pipeline's value for a queryable property is at most 20 characters, so a longer queryParam
# value is legal for PollForJobs but can never match a job.
PIPELINE_QUERY_VALUE_MAX: Final = 20
REGION_PATTERN: Final = r"^[a-z]{2}(-[a-z]+)+-[0-9]+$"
ROLE_ARN_PATTERN: Final = r"^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$"
# maxInFlight: each in-flight job is a Job, a Pod and a Secret that the operator watches and
# tends (credential refresh, cancellation probes). 1,000 per worker keeps one worker's share of
# the operator's memory and API calls bounded; more capacity means more workers.
MAX_IN_FLIGHT_LIMIT: Final = 1000
DEFAULT_MAX_IN_FLIGHT: Final = 10
# maxBatchSize: PollForJobs documents no maximum; 100 bounds one response (each job carries
# credentials and configuration) and the burst of Job creations one poll can cause.
MAX_BATCH_SIZE_LIMIT: Final = 100
# Without maxBatchSize a poll asks for the free capacity, but at most this many (the AWS
# sample worker's batch): a large free capacity must not become one huge claim burst.
DEFAULT_BATCH_CAP: Final = 10
# Artifacts in the job's pod (docs/job-contract.md). The limits bound what one job's inputs may
# expand to on the pod's disk, all inputs together; the defaults admit a CodePipeline S3 source
# at its 5 GB quota expanding twofold, and the file count of large monorepos.
DEFAULT_INPUT_DIR: Final = "/workspace/in"
DEFAULT_OUTPUT_DIR: Final = "/workspace/out"
DEFAULT_MAX_TOTAL_BYTES: Final = 10 * 1024**3
MAX_TOTAL_BYTES_LIMIT: Final = 1024**4
DEFAULT_MAX_FILES: Final = 100_000
MAX_FILES_LIMIT: Final = 10_000_000
# Source trees deflate 3-10x and logs or JSON up to ~50x; a zip bomb expands 1000x or more.
DEFAULT_MAX_COMPRESSION_RATIO: Final = 100
MAX_COMPRESSION_RATIO_LIMIT: Final = 100_000
# Absolute, normalised, no component starting with "." (so no "." or ".."), no trailing slash.
ARTIFACT_DIR_PATTERN: Final = r"^(/[A-Za-z0-9_][A-Za-z0-9._-]*)+$"
ARTIFACT_DIR_MAX: Final = 1024
# Where the operator mounts the job's Secret (credentials and data) in every container.
JOB_MOUNT_PATH: Final = "/var/run/cpworker"
# Poll intervals, whole seconds. The ceiling keeps an idle worker at >= 1 call per hour and
# the default ceiling (60 s) at the 60 calls per worker-hour budget.
DEFAULT_MIN_INTERVAL_SECONDS: Final = 1
DEFAULT_MAX_INTERVAL_SECONDS: Final = 60
INTERVAL_LIMIT_SECONDS: Final = 3600
# metav1.Condition limits.
CONDITION_MESSAGE_MAX: Final = 32768
CONDITION_REASON_PATTERN: Final = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
LAST_ERROR_MESSAGE_MAX: Final = 4096
# status.countedJobs: the jobs counted last (a short hash each), so that a report repeated after
# a crash is never counted twice (docs/reliability.md, "Counters"). A job is re-reported at
# once after a restart, or within the report lease (30 s) with peering; 200 entries cover 200
# other jobs of the worker counted in between, at about 3 KiB of status.
COUNTED_JOBS_MAX: Final = 200
COUNTED_JOB_PATTERN: Final = r"^[0-9a-f]{12}$"

OWNER_MESSAGE: Final = (
    "actionTypeId.owner must be Custom: PollForJobs only serves custom action types; "
    "AWS and ThirdParty actions are run by AWS or by the partner, never by a job worker"
)
QUERY_PARAM_SIZE_MESSAGE: Final = (
    "queryParam takes at most one entry: an action type has at most one queryable property"
)
QUERY_KEY_MESSAGE: Final = "queryParam keys must be 1-50 characters long"
BATCH_MESSAGE: Final = "maxBatchSize must not exceed maxInFlight"
INTERVAL_MESSAGE: Final = "polling.minIntervalSeconds must not exceed polling.maxIntervalSeconds"
IMMUTABLE_MESSAGE: Final = (
    "actionTypeId is immutable: create a new CustomActionWorker for another action type"
)
ARTIFACT_DIRS_MESSAGE: Final = (
    "artifacts.inputDir and artifacts.outputDir must be different directories, "
    "neither inside the other"
)
ARTIFACT_DIR_RESERVED_MESSAGE: Final = (
    f"artifacts.inputDir and artifacts.outputDir must not be at or under {JOB_MOUNT_PATH}, "
    "where the operator mounts the job's credentials and data"
)

Category = Literal["Source", "Build", "Deploy", "Test", "Invoke", "Approval", "Compute"]
Owner = Literal["AWS", "ThirdParty", "Custom"]
DeletionPolicy = Literal["Drain", "Cancel"]
ConditionStatus = Literal["True", "False", "Unknown"]


def _cel(rule: str, message: str, **extra: str) -> JsonDict:
    """One `x-kubernetes-validations` rule (rendered into the CRD by cpworker.crd)."""
    result: JsonDict = {"rule": rule, "message": message}
    result.update(extra)
    return result


class _Model(BaseModel):
    """Frozen, camelCase on the wire, unknown fields rejected (a typo must not pass silently)."""

    model_config = ConfigDict(
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=True,
    )


class _SpecModel(_Model):
    """A part of the spec: JSON types exactly as the CRD's structural schema has them (no
    "5" for 5, no 1 or "yes" for true), so that the models refuse what the API server
    refuses (tests/fuzz/test_worker_specs.py)."""

    model_config = ConfigDict(strict=True)


class ActionTypeId(_SpecModel):
    """The custom action type this worker takes jobs for."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.owner) || self.owner == 'Custom'", OWNER_MESSAGE, fieldPath=".owner"
                ),
                _cel("self == oldSelf", IMMUTABLE_MESSAGE),
            ]
        }
    )

    category: Category = Field(
        description="Action category of the custom action type (Source, Build, Deploy, Test, "
        "Invoke, Approval or Compute)."
    )
    owner: Owner = Field(
        default="Custom",
        description="Owner of the action type. Must be Custom: PollForJobs only serves custom "
        "action types.",
    )
    provider: Annotated[str, StringConstraints(pattern=PROVIDER_PATTERN, max_length=35)] = Field(
        description="Provider name of the custom action type (1-35 characters of [0-9A-Za-z_-])."
    )
    version: Annotated[str, StringConstraints(pattern=VERSION_PATTERN, max_length=9)] = Field(
        description="Version of the custom action type (1-9 characters of [0-9A-Za-z_-]); "
        'quote numbers in YAML ("1").'
    )

    @field_validator("owner")
    @classmethod
    def _owner_is_custom(cls, owner: str) -> str:
        if owner != "Custom":
            raise ValueError(OWNER_MESSAGE)
        return owner


class Polling(_SpecModel):
    """Bounds of the adaptive poll interval."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    f"(has(self.minIntervalSeconds) ? self.minIntervalSeconds : "
                    f"{DEFAULT_MIN_INTERVAL_SECONDS}) <= (has(self.maxIntervalSeconds) ? "
                    f"self.maxIntervalSeconds : {DEFAULT_MAX_INTERVAL_SECONDS})",
                    INTERVAL_MESSAGE,
                )
            ]
        }
    )

    min_interval_seconds: int = Field(
        default=DEFAULT_MIN_INTERVAL_SECONDS,
        ge=1,
        le=INTERVAL_LIMIT_SECONDS,
        description="Shortest pause between two polls that found work but not a full batch "
        "(a full batch is followed by an immediate poll). Seconds, 1-3600.",
    )
    max_interval_seconds: int = Field(
        default=DEFAULT_MAX_INTERVAL_SECONDS,
        ge=1,
        le=INTERVAL_LIMIT_SECONDS,
        description="Ceiling of the idle back-off (with jitter) between polls that found "
        "nothing. Seconds, 1-3600; 60 keeps an idle worker at about 60 calls per hour.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Polling:
        if self.min_interval_seconds > self.max_interval_seconds:
            raise ValueError(INTERVAL_MESSAGE)
        return self


def _inside(child: str, parent: str) -> bool:
    """True when directory `child` is `parent` or below it (both normalised absolute paths)."""
    return (child + "/").startswith(parent + "/")


ArtifactDir = Annotated[
    str, StringConstraints(pattern=ARTIFACT_DIR_PATTERN, max_length=ARTIFACT_DIR_MAX)
]


def _cel_dir(field: str, default: str) -> str:
    return f"(has(self.{field}) ? self.{field} : '{default}')"


_CEL_INPUT = _cel_dir("inputDir", DEFAULT_INPUT_DIR)
_CEL_OUTPUT = _cel_dir("outputDir", DEFAULT_OUTPUT_DIR)


# The limits' ranges, shared with the in-pod helper's settings (cpworker.artifacts.settings).
MaxTotalBytes = Annotated[int, Field(ge=1, le=MAX_TOTAL_BYTES_LIMIT)]
MaxFiles = Annotated[int, Field(ge=1, le=MAX_FILES_LIMIT)]
MaxCompressionRatio = Annotated[int, Field(ge=1, le=MAX_COMPRESSION_RATIO_LIMIT)]


class ArtifactLimits(_SpecModel):
    """What one job's input artifacts may expand to; each violation fails the job (JobFailed)."""

    max_total_bytes: MaxTotalBytes = Field(
        default=DEFAULT_MAX_TOTAL_BYTES,
        description="Most bytes all input artifacts of a job may expand to on the pod's disk "
        "together, counted while extracting (never trusting archive headers). Default "
        "10737418240 (10 GiB), at most 1 TiB.",
    )
    max_files: MaxFiles = Field(
        default=DEFAULT_MAX_FILES,
        description="Most entries (files, directories and links) all input artifacts of a job "
        "may hold together. Default 100000, at most 10000000.",
    )
    max_compression_ratio: MaxCompressionRatio = Field(
        default=DEFAULT_MAX_COMPRESSION_RATIO,
        description="Most bytes an archive may expand to per byte of archive (a zip or tar "
        "bomb expands a thousandfold). Checked once an archive has written more than 1 MiB. "
        "Default 100.",
    )


class Artifacts(_SpecModel):
    """Input and output artifacts on disk in the job's pod (docs/job-contract.md)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    f"!({_CEL_INPUT} + '/').startsWith({_CEL_OUTPUT} + '/') && "
                    f"!({_CEL_OUTPUT} + '/').startsWith({_CEL_INPUT} + '/')",
                    ARTIFACT_DIRS_MESSAGE,
                ),
                _cel(
                    f"!({_CEL_INPUT} + '/').startsWith('{JOB_MOUNT_PATH}/') && "
                    f"!({_CEL_OUTPUT} + '/').startsWith('{JOB_MOUNT_PATH}/')",
                    ARTIFACT_DIR_RESERVED_MESSAGE,
                ),
            ]
        }
    )

    enabled: bool = Field(
        default=True,
        description="Download and extract the job's input artifacts before the job's "
        "containers start, and zip and upload its output artifacts after they succeeded and "
        "before success is reported. false: the containers get only the credentials file "
        "and job.json and move artifacts themselves.",
    )
    input_dir: ArtifactDir = Field(
        default=DEFAULT_INPUT_DIR,
        description="Where input artifact NAME is extracted: INPUTDIR/NAME/ "
        "($CPWORKER_INPUT_DIR in every container). An absolute path.",
    )
    output_dir: ArtifactDir = Field(
        default=DEFAULT_OUTPUT_DIR,
        description="Where the containers write output artifact NAME: OUTPUTDIR/NAME/ exists "
        "empty when they start and is zipped and uploaded after they succeeded "
        "($CPWORKER_OUTPUT_DIR in every container). An absolute path.",
    )
    limits: ArtifactLimits = Field(
        default_factory=ArtifactLimits,
        description="Limits on what the input artifacts may expand to (hostile or oversized "
        "archives fail the job with JobFailed, naming the limit).",
    )

    @model_validator(mode="after")
    def _separate_directories(self) -> Artifacts:
        if _inside(self.input_dir, self.output_dir) or _inside(self.output_dir, self.input_dir):
            raise ValueError(ARTIFACT_DIRS_MESSAGE)
        if _inside(self.input_dir, JOB_MOUNT_PATH) or _inside(self.output_dir, JOB_MOUNT_PATH):
            raise ValueError(ARTIFACT_DIR_RESERVED_MESSAGE)
        return self


class TemplateMetadata(_SpecModel):
    """Labels and annotations copied onto the Job (operator-owned keys are rejected)."""

    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels added to the Job. Keys under cpworker.io/ are reserved.",
    )
    annotations: dict[str, str] = Field(
        default_factory=dict,
        description="Annotations added to the Job. Keys under cpworker.io/ are reserved.",
    )


class JobTemplate(_SpecModel):
    """A batch/v1 JobTemplateSpec: the Job created for every CodePipeline job."""

    metadata: TemplateMetadata = Field(
        default_factory=TemplateMetadata,
        description="Labels and annotations of the Job. name, namespace and ownerReferences "
        "are set by the operator.",
    )
    spec: dict[str, Any] = Field(
        json_schema_extra={"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        description="A batch/v1 JobSpec (spec.template.spec is the pod spec). The operator "
        "validates it and owns: restartPolicy (Never), suspend, selector, "
        "ttlSecondsAfterFinished, the credentials volume and CPWORKER_* environment; "
        "backoffLimit defaults to 0 and activeDeadlineSeconds to the operator's limit.",
    )


RoleArn = Annotated[str, StringConstraints(pattern=ROLE_ARN_PATTERN, max_length=2048)]
QueryKey = Annotated[str, StringConstraints(min_length=1, max_length=QUERY_KEY_MAX)]
QueryValue = Annotated[str, StringConstraints(pattern=QUERY_VALUE_PATTERN, max_length=50)]


class CustomActionWorkerSpec(_SpecModel):
    """What a CustomActionWorker asks for: which jobs to take and how to run them."""

    action_type_id: ActionTypeId = Field(
        description="The custom action type to poll for. Immutable after creation."
    )
    query_param: dict[QueryKey, QueryValue] = Field(
        default_factory=dict,
        json_schema_extra={
            # maxProperties also bounds the cost of the CEL rules below.
            "maxProperties": 1,
            "x-kubernetes-validations": [
                _cel("size(self) <= 1", QUERY_PARAM_SIZE_MESSAGE),
                _cel(f"self.all(k, size(k) >= 1 && size(k) <= {QUERY_KEY_MAX})", QUERY_KEY_MESSAGE),
            ],
        },
        description="At most one entry: the action type's queryable property and the value "
        "this worker serves (1-50 characters of [A-Za-z0-9_-]; a pipeline's value is at most "
        "20 characters, so longer values never match).",
    )
    region: Annotated[str, StringConstraints(pattern=REGION_PATTERN)] | None = Field(
        default=None,
        description="AWS region of the pipelines. Defaults to the operator's default region.",
    )
    role_arn: (
        Annotated[str, StringConstraints(pattern=ROLE_ARN_PATTERN, max_length=2048)] | None
    ) = Field(
        default=None,
        description="IAM role to assume for this worker's CodePipeline calls (for example "
        "in another account). Defaults to the operator's own credentials.",
    )
    max_in_flight: int = Field(
        default=DEFAULT_MAX_IN_FLIGHT,
        ge=1,
        le=MAX_IN_FLIGHT_LIMIT,
        description="Most jobs of this worker running at once, counted from live Kubernetes "
        "Jobs. 1-1000.",
    )
    max_batch_size: int | None = Field(
        default=None,
        ge=1,
        le=MAX_BATCH_SIZE_LIMIT,
        description="Most jobs claimed by one poll (never more than the free in-flight "
        f"capacity). 1-100, at most maxInFlight. Default: the free capacity, at most "
        f"{DEFAULT_BATCH_CAP}.",
    )
    polling: Polling = Field(
        default_factory=Polling,
        description="Bounds of the adaptive poll interval.",
    )
    paused: bool = Field(
        default=False,
        description="true stops polling for new jobs; jobs already in flight run to the end "
        "and are reported.",
    )
    deletion_policy: DeletionPolicy = Field(
        default="Drain",
        description="What deleting the worker does to its in-flight jobs: Drain lets them "
        "finish and reports them; Cancel fails them in CodePipeline and deletes them.",
    )
    job_template: JobTemplate = Field(
        description="The Job to run for every CodePipeline job (a batch/v1 JobTemplateSpec)."
    )
    artifacts: Artifacts = Field(
        default_factory=Artifacts,
        description="Input and output artifacts on disk in the job's pod: inputs extracted "
        "before the containers start, outputs zipped and uploaded (SSE-KMS) after they "
        "succeeded.",
    )

    @field_validator("query_param", mode="before")
    @classmethod
    def _one_query_param(cls, value: Any) -> Any:
        if isinstance(value, Mapping) and len(value) > 1:
            raise ValueError(QUERY_PARAM_SIZE_MESSAGE)
        return value

    @model_validator(mode="after")
    def _batch_within_in_flight(self) -> CustomActionWorkerSpec:
        if self.max_batch_size is not None and self.max_batch_size > self.max_in_flight:
            raise ValueError(BATCH_MESSAGE)
        return self

    def effective_region(self, default_region: str | None) -> str | None:
        """This worker's region: its own, else the operator's default (None if neither)."""
        return self.region or default_region

    @property
    def batch_cap(self) -> int:
        """The most jobs one poll claims: maxBatchSize, or the default cap."""
        return self.max_batch_size if self.max_batch_size is not None else DEFAULT_BATCH_CAP

    def batch_size(self, in_flight: int) -> int:
        """How many jobs the next poll may ask for, given the live in-flight count (0 = none)."""
        return batch_size(self.max_in_flight, self.batch_cap, in_flight)


def batch_size(max_in_flight: int, batch_cap: int, in_flight: int) -> int:
    """PollForJobs' maxBatchSize: the free capacity (maxInFlight minus live Jobs), at most the
    cap; 0 means do not poll at all. The one place capacity is computed."""
    return max(0, min(max_in_flight - in_flight, batch_cap))


# Rules attached to the spec object itself (rendered into the CRD).
SPEC_VALIDATIONS: Final = [
    _cel(
        "!has(self.maxBatchSize) || self.maxBatchSize <= "
        f"(has(self.maxInFlight) ? self.maxInFlight : {DEFAULT_MAX_IN_FLIGHT})",
        BATCH_MESSAGE,
        fieldPath=".maxBatchSize",
    )
]


class ConditionType(StrEnum):
    READY = "Ready"


class Reason(StrEnum):
    """Reasons on the Ready condition (and in lastError)."""

    POLLING = "Polling"  # Ready=True
    POLLING_ONLY = "PollingOnly"  # Ready=True: events are configured but not working
    BUDGET_LIMITED = "PollingBudgetLimited"  # Ready=True: idle polls spaced by the rate budget
    ACTION_TYPE_NOT_FOUND = "ActionTypeNotFound"
    ACCESS_DENIED = "AccessDenied"
    THROTTLED = "Throttled"
    SERVICE_UNAVAILABLE = "ServiceUnavailable"
    CREDENTIALS_EXPIRED = "CredentialsExpired"  # the operator's AWS credentials expired
    CREDENTIALS_INVALID = "CredentialsInvalid"  # ... are unknown or revoked
    ROLE_NOT_ASSUMABLE = "RoleNotAssumable"  # spec.roleArn cannot be assumed
    KUBERNETES_UNAVAILABLE = "KubernetesUnavailable"  # Job/Secret writes fail (429/5xx, ...)
    KUBERNETES_FORBIDDEN = "KubernetesForbidden"  # ... are refused with 401/403
    INVALID_SPEC = "InvalidSpec"
    PAUSED = "Paused"
    DELETING = "Deleting"


class Condition(_Model):
    """A standard Kubernetes condition (metav1.Condition)."""

    model_config = ConfigDict(extra="ignore")

    type: str = Field(
        min_length=1, max_length=316, description="Condition type, for example Ready."
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: Annotated[str, StringConstraints(pattern=CONDITION_REASON_PATTERN, max_length=1024)] = (
        Field(description="CamelCase reason for the condition's last transition.")
    )
    message: str = Field(
        default="",
        max_length=CONDITION_MESSAGE_MAX,
        description="Human-readable details of the last transition.",
    )
    last_transition_time: KubeTime = Field(
        description="When the status last changed (RFC 3339).",
    )
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="metadata.generation of the spec this condition was computed from.",
    )


class LastError(_Model):
    """The most recent error the worker met."""

    model_config = ConfigDict(extra="ignore")

    time: KubeTime = Field(description="When the error happened (RFC 3339).")
    reason: str = Field(description="CamelCase error reason, for example Throttled.")
    message: str = Field(
        default="", max_length=LAST_ERROR_MESSAGE_MAX, description="What went wrong."
    )


class CustomActionWorkerStatus(_Model):
    """What the operator observed; written through the status subresource."""

    model_config = ConfigDict(extra="ignore")

    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
        description="Standard conditions; Ready summarises whether the worker is polling.",
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation of the last spec acted upon."
    )
    in_flight: int | None = Field(
        default=None,
        ge=0,
        description="Jobs of this worker currently in flight. 0 is written at once; a change "
        "between other counts alone is written at most every 5 seconds (the latest value, at "
        "the latest 5 seconds after the previous write), so that a burst does not cost a "
        "status write per job; the metric cpworker_worker_in_flight_jobs is exact.",
    )
    succeeded: int | None = Field(
        default=None, ge=0, description="Jobs reported to CodePipeline as succeeded."
    )
    failed: int | None = Field(
        default=None, ge=0, description="Jobs reported to CodePipeline as failed."
    )
    lost_races: int | None = Field(
        default=None,
        ge=0,
        description="Jobs another worker acknowledged first (InvalidNonceException): "
        "expected with several workers, not an error.",
    )
    counted_jobs: list[Annotated[str, StringConstraints(pattern=COUNTED_JOB_PATTERN)]] | None = (
        Field(
            default=None,
            max_length=COUNTED_JOBS_MAX,
            description="The jobs most recently counted in succeeded/failed (a 12-hex-digit hash "
            "of each job id, newest last), written with the counter: a report repeated after an "
            "operator restart is counted once. For the operator, not for people.",
        )
    )
    last_poll_time: KubeTime | None = Field(
        default=None,
        description="When PollForJobs last succeeded (RFC 3339). On an idle worker it is "
        "rewritten at most every CPWORKER_STATUS_HEARTBEAT_SECONDS (default one hour), so that "
        "a thousand idle workers do not write to the API server on every poll; the Ready "
        "condition is the health signal, and the metric "
        "cpworker_worker_last_successful_poll_timestamp_seconds is exact.",
    )
    last_error: LastError | None = Field(
        default=None, description="The most recent error, kept after recovery for diagnosis."
    )


# --- Pure helpers ---------------------------------------------------------------------------


class InvalidSpecError(ValueError):
    """The spec cannot be served; `message` is safe to show in a condition or event."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _location(loc: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in loc) or "spec"


def describe_validation_error(error: ValidationError, *, root: str = "spec") -> str:
    """A readable summary of a pydantic error that never echoes the offending input.

    Inputs are left out on purpose: a spec may carry values the user considers private, and
    conditions/events are readable by anyone who can read the worker.
    """
    parts = []
    for item in error.errors(include_input=False, include_url=False):
        where = _location(item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        parts.append(f"{root}.{where}: {message}" if where != "spec" else f"{root}: {message}")
    return "; ".join(parts)


def parse_spec(spec: Mapping[str, Any]) -> CustomActionWorkerSpec:
    """Validate a resource's `.spec`; raises InvalidSpecError with a condition-ready message."""
    try:
        return CustomActionWorkerSpec.model_validate(dict(spec))
    except ValidationError as error:
        raise InvalidSpecError(describe_validation_error(error)) from None


def spec_warnings(spec: CustomActionWorkerSpec) -> list[str]:
    """Legal but suspicious settings, for the runtime to surface as an event or condition."""
    warnings = []
    for key, value in spec.query_param.items():
        if len(value) > PIPELINE_QUERY_VALUE_MAX:
            warnings.append(
                f"queryParam {key}={value} is {len(value)} characters long: a pipeline's value "
                f"for a queryable property is at most {PIPELINE_QUERY_VALUE_MAX} characters, "
                "so no job can ever match"
            )
    return warnings


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def make_condition(
    type_: str,
    status: bool | ConditionStatus,
    reason: str,
    message: str,
    *,
    now: datetime,
    observed_generation: int | None = None,
) -> Condition:
    """Build a condition; `status` may be a bool. Long messages are truncated."""
    if isinstance(status, bool):
        status = "True" if status else "False"
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=_truncate(message, CONDITION_MESSAGE_MAX),
        last_transition_time=_seconds(now),
        observed_generation=observed_generation,
    )


def ready_condition(
    ready: bool,
    reason: Reason | str,
    message: str,
    *,
    now: datetime,
    observed_generation: int | None = None,
) -> Condition:
    """The `Ready` summary condition."""
    return make_condition(
        ConditionType.READY,
        ready,
        str(reason),
        message,
        now=now,
        observed_generation=observed_generation,
    )


def set_condition(
    conditions: Sequence[Condition], new: Condition, now: datetime
) -> list[Condition]:
    """Return `conditions` with `new` in place of the condition of the same type.

    lastTransitionTime is kept when the status did not change (so it says when the status
    last *changed*), and set to `now` otherwise. Order is kept; a new type is appended.
    """
    result: list[Condition] = []
    replaced = False
    for existing in conditions:
        if existing.type != new.type:
            result.append(existing)
            continue
        replaced = True
        when = existing.last_transition_time if existing.status == new.status else _seconds(now)
        result.append(new.model_copy(update={"last_transition_time": when}))
    if not replaced:
        result.append(new.model_copy(update={"last_transition_time": _seconds(now)}))
    return result


def last_error(reason: Reason | str, message: str, *, now: datetime) -> LastError:
    """A `status.lastError` value (message truncated to a bounded size)."""
    return LastError(
        time=_seconds(now), reason=str(reason), message=_truncate(message, LAST_ERROR_MESSAGE_MAX)
    )


def status_patch(status: CustomActionWorkerStatus) -> dict[str, Any]:
    """The JSON form of a status for a merge patch of the status subresource."""
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)
