"""Operator settings: environment variables with the `CPWORKER_` prefix, validated at start-up.

`load_settings()` turns a bad environment into one readable `SettingsError` listing every
problem, so `cpworker run` can exit with it instead of failing later in a poll loop.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from cpworker import __version__
from cpworker.models import REGION_PATTERN

ENV_PREFIX: Final = "CPWORKER_"
# AWS does not document how long artifact credentials last; one widely used worker assumes
# about 15 minutes. Refreshing every 10 minutes leaves a margin.
DEFAULT_CREDENTIALS_REFRESH_SECONDS: Final = 600.0
# Assumed: a custom action's job times out after about an hour unless configured otherwise.
# The Job's deadline stays below it, so Kubernetes ends the Job and we report a clear failure
# before CodePipeline times the job out silently. Configurable because AWS does not promise it.
DEFAULT_ACTIVE_DEADLINE_SECONDS: Final = 3300
# The in-pod artifact helper (`cpworker artifacts pull|push`) is the operator's own image; the
# chart passes the exact reference the operator runs from (by digest when it has one).
DEFAULT_ARTIFACTS_IMAGE: Final = f"ghcr.io/cpworker/cpworker:{__version__}"
# The push sidecar uploads after the kubelet stopped it and must finish within the pod's
# grace period: 15 minutes move several GiB at the tens of MB/s a pod gets to S3.
DEFAULT_ARTIFACTS_PUSH_GRACE_SECONDS: Final = 900
# The helper idles at ~40 MiB and peaks below 100 MiB while streaming (docs/job-contract.md);
# the memory limit leaves room for zipping many files; no CPU limit (zipping is CPU-bound).
DEFAULT_ARTIFACTS_REQUESTS: Final = {"cpu": "100m", "memory": "128Mi"}
DEFAULT_ARTIFACTS_LIMITS: Final = {"memory": "1Gi"}
ResourceKind = Literal["requests", "limits"]


def _default_artifacts_resources() -> dict[ResourceKind, dict[str, str]]:
    return {"requests": dict(DEFAULT_ARTIFACTS_REQUESTS), "limits": dict(DEFAULT_ARTIFACTS_LIMITS)}


# An image reference without whitespace or control characters; the registry has the last word.
IMAGE_REFERENCE_PATTERN: Final = r"^[^\s\x00-\x1f]{1,512}$"


_DNS_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# Label selector syntax (k8s.io/apimachinery/pkg/labels/selector.go): a label key is an
# optional DNS-subdomain prefix and a name; a value is empty or a name.
_LABEL_NAME: Final = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY: Final = rf"(?:[a-z0-9](?:[-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_LABEL_NAME}"
_LABEL_VALUE: Final = rf"(?:{_LABEL_NAME})?"
_SELECTOR_TERM: Final = re.compile(
    rf"^\s*(?:!\s*{_LABEL_KEY}"
    rf"|{_LABEL_KEY}\s*(?:(?:==|!=|=)\s*{_LABEL_VALUE}"
    rf"|\s(?:in|notin)\s*\(\s*{_LABEL_VALUE}(?:\s*,\s*{_LABEL_VALUE})*\s*\))?)\s*$"
)


def selector_problems(selector: str) -> list[str]:
    """Why `selector` is not a Kubernetes label selector (empty: it is one)."""
    terms: list[str] = []
    depth, start = 0, 0
    for at, char in enumerate(selector):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(selector[start:at])
            start = at + 1
    terms.append(selector[start:])
    return [
        f"{term.strip() or '(empty)'!r} is not a label selector requirement (key, !key, "
        "key=value, key!=value, key in (a,b), key notin (a,b))"
        for term in terms
        if not _SELECTOR_TERM.match(term)
    ]


class SettingsError(ValueError):
    """The environment does not describe a runnable operator; the message lists each problem."""


class OperatorSettings(BaseSettings):
    """Everything the operator reads from its environment (prefix `CPWORKER_`)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        extra="ignore",
        populate_by_name=True,
        validate_default=True,
    )

    default_region: Annotated[str, Field(pattern=REGION_PATTERN)] | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "default_region", "CPWORKER_DEFAULT_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"
        ),
        description="Region for workers without spec.region (CPWORKER_DEFAULT_REGION, else "
        "AWS_REGION, else AWS_DEFAULT_REGION). A worker with neither gets InvalidSpec.",
    )
    namespaces: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Namespaces to watch, comma-separated; empty watches the whole cluster.",
    )
    worker_selector: str | None = Field(
        default=None,
        description="Label selector of the CustomActionWorkers this operator serves (e.g. "
        "`shard=a`); empty serves every worker in its namespaces. Shards a fleet "
        "over several operators (one Helm release each, docs/scaling.md): the API server only "
        "sends this operator the workers it selects, and it acts only on their Jobs.",
    )
    credentials_refresh_seconds: float = Field(
        default=DEFAULT_CREDENTIALS_REFRESH_SECONDS,
        gt=0,
        le=3600,
        description="Refresh a running job's artifact credentials (GetJobDetails) when they "
        "are older than this. AWS does not document their lifetime (assumed ~15 minutes).",
    )
    cancel_probe_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="How often each running job is checked for cancellation in CodePipeline "
        "(pipeline stopped, superseded, timed out).",
    )
    never_started_grace_seconds: float = Field(
        default=300.0,
        gt=0,
        le=86400,
        description="How long a pod may fail to start (image pull, unschedulable, missing "
        "service account or Secret) before the job is reported as SystemUnavailable. Pods "
        "that never can (admission refusals, runAsNonRoot with a root image) fail at once, "
        "a quota shortage waits CPWORKER_QUOTA_WAIT_SECONDS.",
    )
    quota_wait_seconds: float = Field(
        default=1800.0,
        gt=0,
        le=86400,
        description="How long a job whose pod a ResourceQuota refuses (exceeded quota) waits "
        "for the quota to free up before it fails as SystemUnavailable; the Job's "
        "activeDeadlineSeconds counts meanwhile. Other refusals (Pod Security, LimitRange, a "
        "webhook) fail at once.",
    )
    job_relist_seconds: float = Field(
        default=300.0,
        ge=1,
        le=3600,
        description="How often a worker with jobs in flight lists its Jobs, to find any that "
        "were deleted while a watch was interrupted (a watch gap yields no DELETED event): "
        "they are reported as vanished and stop counting against maxInFlight.",
    )
    continuation_after_seconds: float = Field(
        default=0.0,
        ge=0,
        description="Hand a running job over with a continuation token once it is older "
        "than this (0 = never). Keeps each CodePipeline job short while the Kubernetes Job "
        "runs on.",
    )
    rate_per_second: float = Field(
        default=5.0,
        gt=0,
        le=1000,
        description="Sustained CodePipeline calls per second, shared by all workers of one "
        "AWS account and region.",
    )
    rate_burst: int = Field(
        default=10,
        ge=1,
        le=10000,
        description="Calls that may be made at once before the sustained rate applies.",
    )
    executor_threads: int = Field(
        default=16,
        ge=1,
        le=256,
        description=(
            "Threads for boto3's blocking calls; also the connections kept to the API server."
        ),
    )
    log_format: Literal["json", "text"] = Field(
        default="json", description="Log format: json (one object per line) or text."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Lowest level logged."
    )
    health_host: str = Field(
        # The kubelet probes the pod IP, so in a cluster the endpoint must listen on all
        # interfaces; tests set 127.0.0.1.
        default="0.0.0.0",
        description="Address the health/metrics endpoint binds.",
    )
    health_port: int = Field(
        default=8080,
        ge=0,
        le=65535,
        description="Port of the health/metrics endpoint (0 = pick a free port).",
    )
    peering_name: str | None = Field(
        default=None,
        description="kopf peering object for several replicas (unset: standalone).",
    )
    peering_priority: int = Field(
        default=0,
        description="This replica's peering priority; replicas need distinct priorities.",
    )
    finished_job_ttl_seconds: int = Field(
        default=3600,
        ge=0,
        description="ttlSecondsAfterFinished of every Job: how long finished Jobs stay for "
        "inspection after they were reported.",
    )
    events_queue_url: str | None = Field(
        default=None,
        description="SQS queue receiving CodePipeline's action execution events (the "
        "Terraform job-events module creates it). With it, a job's STARTED event wakes the "
        "workers that can take it at once, and polling becomes a rarer safety net.",
    )
    events_queue_region: Annotated[str, Field(pattern=REGION_PATTERN)] | None = Field(
        default=None,
        description="Region of the events queue (default: the region in its URL, else the "
        "default region).",
    )
    events_idle_ceiling_seconds: float = Field(
        default=900.0,
        ge=1,
        le=3600,
        description="Idle poll ceiling while the events queue is healthy (the safety net for "
        "lost events); the worker's own maxIntervalSeconds applies when it is larger, and "
        "whenever the queue is unreachable or silent.",
    )
    events_cancel_probe_seconds: float = Field(
        default=300.0,
        gt=0,
        le=3600,
        description="Cancellation probe interval while the events queue is healthy (a FAILED, "
        "CANCELED or ABANDONED action event probes its job at once).",
    )
    status_heartbeat_seconds: float = Field(
        default=3600.0,
        ge=1,
        le=86400,
        description="How often an idle worker's status.lastPollTime is rewritten when nothing "
        "else changed (a write per worker each time: keep it coarse; the metric "
        "cpworker_worker_last_successful_poll_timestamp_seconds is exact).",
    )
    default_active_deadline_seconds: int = Field(
        default=DEFAULT_ACTIVE_DEADLINE_SECONDS,
        ge=1,
        le=86400,
        description="activeDeadlineSeconds of every Job, and the most a template may set "
        "(a custom action runs at most 24 hours in total).",
    )

    artifacts_image: Annotated[str, Field(pattern=IMAGE_REFERENCE_PATTERN)] = Field(
        default=DEFAULT_ARTIFACTS_IMAGE,
        description="Image of the init and sidecar containers that pull and push a job's "
        "artifacts (`cpworker artifacts pull|push`): the operator's own image, which the "
        "chart pins by digest when it has one.",
    )
    artifacts_push_grace_seconds: int = Field(
        default=DEFAULT_ARTIFACTS_PUSH_GRACE_SECONDS,
        ge=1,
        le=86400,
        description="The least terminationGracePeriodSeconds of a pod that pushes output "
        "artifacts (a template's larger value is kept): the push sidecar starts uploading when "
        "the kubelet stops it and is killed when this runs out.",
    )
    artifacts_s3_endpoint_url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] | None = Field(
        default=None,
        description="S3 endpoint of the artifact containers (AWS_ENDPOINT_URL_S3 in them), for "
        "an S3 interface VPC endpoint or an S3-compatible proxy. Unset: the AWS default.",
    )
    artifacts_resources: dict[ResourceKind, dict[str, str]] = Field(
        default_factory=_default_artifacts_resources,
        description="resources (requests, limits) of the artifact containers, as JSON: a "
        "namespace with a ResourceQuota on requests refuses containers without them.",
    )

    # --- Policy derived from the settings (one place, so every stage agrees) --------------

    @property
    def claim_recovery_age_seconds(self) -> float:
        """A `claiming` Job older than this was abandoned by its claimer (a claim takes a few
        calls); recovery re-acknowledges it."""
        return min(30.0, self.cancel_probe_seconds)

    @property
    def report_lease_seconds(self) -> float | None:
        """How long a reporter's claim on a Job holds before another replica may take over:
        a crashed reporter's claim expires after a few supervision rounds (2-30 s).

        None without peering: a standalone operator is the only one serving its workers (the
        chart runs it as one replica that is replaced, never overlapped: `Recreate`; shards
        serve disjoint workers), so a lease would cost each job a read and a write to guard
        against nobody. Were two to overlap anyway, CodePipeline keeps the first result
        (InvalidJobStateException for the second) and the ledger counts it once.
        """
        if self.peering_name is None:
            return None
        return max(2.0, min(30.0, 4 * self.cancel_probe_seconds))

    @property
    def supervise_interval_seconds(self) -> float:
        """How often each worker looks after its in-flight Jobs (0.2-5 s): often enough for the
        cancellation probe and for noticing a pod that cannot start within its grace."""
        return max(0.2, min(5.0, self.cancel_probe_seconds, self.never_started_grace_seconds / 2))

    @property
    def slow_retry_seconds(self) -> float:
        """Pause before polling again after an error a quick retry cannot fix (a missing
        action type, access denied, an invalid or paused spec): the spec must change first."""
        return 60.0

    @field_validator("worker_selector")
    @classmethod
    def _label_selector(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        problems = selector_problems(value)
        if problems:
            raise ValueError("; ".join(problems))
        return value.strip()

    @field_validator("artifacts_resources", mode="before")
    @classmethod
    def _quantities_as_text(cls, value: Any) -> Any:
        # `cpu: 1` is as good a quantity as `cpu: "1"` (YAML and JSON give a number).
        if isinstance(value, str):
            try:
                value = json.loads(value)  # the environment's JSON, given as an override
            except ValueError:
                raise ValueError(
                    'not JSON: expected {"requests": {...}, "limits": {...}}'
                ) from None
        if isinstance(value, Mapping):
            return {
                kind: {k: str(v) for k, v in amounts.items()}
                if isinstance(amounts, Mapping)
                else amounts
                for kind, amounts in value.items()
            }
        return value

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split_namespaces(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("namespaces")
    @classmethod
    def _namespace_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [name for name in value if not _DNS_LABEL.match(name)]
        if bad:
            raise ValueError(f"not namespace names (DNS labels): {', '.join(bad)}")
        return value


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors(include_input=False, include_url=False):
        field = ".".join(str(part) for part in item["loc"])
        env = f"{ENV_PREFIX}{field.upper()}" if field else "environment"
        if field == "default_region":  # may have come from either AWS variable
            env += " (or AWS_REGION / AWS_DEFAULT_REGION)"
        lines.append(f"{env}: {str(item['msg']).removeprefix('Value error, ')}")
    return "invalid operator settings:\n  " + "\n  ".join(lines)


def load_settings(overrides: Mapping[str, Any] | None = None) -> OperatorSettings:
    """Read the environment (plus `overrides` by field name); raise SettingsError if invalid."""
    try:
        return OperatorSettings(**dict(overrides or {}))
    except ValidationError as error:
        raise SettingsError(_describe(error)) from None
