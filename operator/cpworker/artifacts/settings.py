"""What the helper reads from its environment and flags (the pod's env, set by the operator).

The job's containers already get `CPWORKER_JOB_FILE`, `AWS_SHARED_CREDENTIALS_FILE`,
`CPWORKER_INPUT_DIR`, `CPWORKER_OUTPUT_DIR`, `CPWORKER_RESULT_FILE` and `AWS_REGION`
(docs/job-contract.md); the helper reads the same names, so it runs unchanged in any of them.
Its own knobs use the prefix `CPWORKER_ARTIFACTS_`. The extraction limits are the CRD's
`spec.artifacts.limits` model, so a value the API server accepts is one the helper accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from cpworker.models import (
    DEFAULT_INPUT_DIR,
    DEFAULT_MAX_COMPRESSION_RATIO,
    DEFAULT_MAX_FILES,
    DEFAULT_MAX_TOTAL_BYTES,
    DEFAULT_OUTPUT_DIR,
    JOB_MOUNT_PATH,
    ArtifactLimits,
    MaxCompressionRatio,
    MaxFiles,
    MaxTotalBytes,
)

ENV_PREFIX: Final = "CPWORKER_ARTIFACTS_"
MIB: Final = 1024 * 1024
# S3 refuses multipart parts under 5 MiB (except the last) and allows at most 10,000 parts, so
# 8 MiB parts carry objects up to ~78 GiB; bigger chunks only add memory per thread.
MIN_PART_BYTES: Final = 5 * MIB
DEFAULT_PART_BYTES: Final = 8 * MIB
# Kubernetes updates a mounted Secret after the kubelet's sync period plus its cache TTL (one
# minute each by default), so fresh credentials may take about two minutes to appear.
DEFAULT_CREDENTIALS_WAIT_SECONDS: Final = 180.0
# The push sidecar starts beside pull; on a loaded node a cold Python start takes seconds.
DEFAULT_PUSH_READY_SECONDS: Final = 120.0


class HelperSettingsError(ValueError):
    """The environment or flags do not describe a runnable pull or push (lists each problem)."""


def _env(name: str, *shared: str) -> AliasChoices:
    """Accept the field's own name (flags, tests) and its environment variable(s)."""
    return AliasChoices(name, *shared)


class HelperSettings(BaseSettings):
    """Settings of `cpworker artifacts pull|push` (flags override the environment)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="ignore", populate_by_name=True
    )

    job_file: Path = Field(
        default=Path(JOB_MOUNT_PATH) / "job.json",
        validation_alias=_env("job_file", "CPWORKER_JOB_FILE"),
        description="The job data without credentials (job.json of the job's Secret).",
    )
    credentials_file: Path = Field(
        default=Path(JOB_MOUNT_PATH) / "credentials",
        validation_alias=_env("credentials_file", "AWS_SHARED_CREDENTIALS_FILE"),
        description="The job's artifact credentials (an AWS shared-credentials file, "
        "[default] profile), re-read whenever it changes and when S3 says they expired.",
    )
    input_dir: Path = Field(
        default=Path(DEFAULT_INPUT_DIR),
        validation_alias=_env("input_dir", "CPWORKER_INPUT_DIR"),
        description="Input artifact NAME is extracted to INPUT_DIR/NAME/.",
    )
    output_dir: Path = Field(
        default=Path(DEFAULT_OUTPUT_DIR),
        validation_alias=_env("output_dir", "CPWORKER_OUTPUT_DIR"),
        description="Output artifact NAME is zipped from OUTPUT_DIR/NAME/.",
    )
    result_file: Path = Field(
        default=Path("/dev/termination-log"),
        validation_alias=_env("result_file", "CPWORKER_RESULT_FILE"),
        description="Where a failure report goes (the container's termination message).",
    )
    region: str | None = Field(
        default=None,
        validation_alias=_env("region", "AWS_REGION", "AWS_DEFAULT_REGION"),
        description="Region of the artifact bucket (the pipeline's region).",
    )
    max_total_bytes: MaxTotalBytes = Field(
        default=DEFAULT_MAX_TOTAL_BYTES, description="spec.artifacts.limits.maxTotalBytes"
    )
    max_files: MaxFiles = Field(
        default=DEFAULT_MAX_FILES, description="spec.artifacts.limits.maxFiles"
    )
    max_compression_ratio: MaxCompressionRatio = Field(
        default=DEFAULT_MAX_COMPRESSION_RATIO,
        description="spec.artifacts.limits.maxCompressionRatio",
    )
    credentials_wait_seconds: float = Field(
        default=DEFAULT_CREDENTIALS_WAIT_SECONDS,
        ge=0,
        le=3600,
        description="How long to wait for a newer credentials file after S3 said the "
        "credentials expired, before the transfer fails (SystemUnavailable).",
    )
    credentials_recheck_seconds: float = Field(
        default=5.0,
        gt=0,
        le=600,
        description="How often the credentials file is re-read while transferring, so "
        "refreshed credentials are used before the old ones expire.",
    )
    push_ready_seconds: float = Field(
        default=DEFAULT_PUSH_READY_SECONDS,
        gt=0,
        le=3600,
        description="How long `pull --wait-for-push` waits for the push sidecar to get "
        "ready (it starts beside pull; Python and the helper load in about a second).",
    )
    part_bytes: int = Field(
        default=DEFAULT_PART_BYTES,
        ge=MIN_PART_BYTES,
        le=5 * 1024 * MIB,
        description="Size of multipart upload parts and ranged download chunks; objects "
        "larger than this are transferred in parts.",
    )
    max_concurrency: int = Field(
        default=4, ge=1, le=64, description="Parts transferred at once (threads)."
    )
    max_bandwidth: int | None = Field(
        default=None,
        ge=1,
        description="Most bytes per second a transfer may use (unset: no limit), to leave "
        "the node's network to others.",
    )
    max_attempts: int = Field(
        default=8,
        ge=1,
        le=50,
        description="Attempts per S3 request (the first try included) for throttling, 5xx "
        "answers and timeouts; a transfer that still fails is SystemUnavailable.",
    )
    log_format: Literal["json", "text"] = Field(
        default="json",
        validation_alias=_env("log_format", "CPWORKER_LOG_FORMAT"),
        description="Log format: json (one object per line) or text.",
    )

    def limits(self) -> ArtifactLimits:
        return ArtifactLimits(
            max_total_bytes=self.max_total_bytes,
            max_files=self.max_files,
            max_compression_ratio=self.max_compression_ratio,
        )


def variable_names(field: str) -> list[str]:
    """The environment variables a setting is read from (for messages and docs)."""
    alias = HelperSettings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices[1:]]
    return [ENV_PREFIX + field.upper()]


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        field = str(item["loc"][0]) if item["loc"] else ""
        message = str(item["msg"]).removeprefix("Value error, ")
        if field in HelperSettings.model_fields:
            names = " / ".join([f"--{field.replace('_', '-')}", *variable_names(field)])
            problems.append(f"{field} ({names}): {message}")
        else:
            problems.append(message)
    return "invalid artifact helper settings: " + "; ".join(problems)


def load_helper_settings(overrides: Mapping[str, Any] | None = None) -> HelperSettings:
    """The environment plus `overrides` (flags, by field name); HelperSettingsError if invalid."""
    try:
        return HelperSettings(**{k: v for k, v in (overrides or {}).items() if v is not None})
    except ValidationError as error:
        raise HelperSettingsError(_describe(error)) from None
