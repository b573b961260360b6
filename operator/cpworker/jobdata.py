"""Typed CodePipeline jobs, as PollForJobs and GetJobDetails return them (botocore dicts).

Artifact credentials and every configuration value are `SecretStr`: CodePipeline delivers
secret configuration properties in clear text, and at parse time we do not yet know which
properties are secret, so all values are hidden from repr/str/logging. Reveal them only where
they are written into the job's Secret (`cpworker.manifests`).

Malformed data becomes `InvalidJobDataError`, whose message names fields and problems but never
echoes a value; it carries the job id (and nonce) when those could be read, so the runtime can
report the job as failed (ConfigurationError) instead of crashing or losing it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, ValidationError
from pydantic.alias_generators import to_camel

JOB_ID_PATTERN: Final = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
ACCOUNT_ID_PATTERN: Final = r"^[0-9]{12}$"
NAME_PATTERN: Final = r"^[A-Za-z0-9.@\-_]{1,100}$"  # pipeline, stage and action names
ARTIFACT_NAME_PATTERN: Final = r"^[a-zA-Z0-9_\-]{1,100}$"


class InvalidJobDataError(ValueError):
    """A job the operator cannot run as delivered. The message never contains a value."""

    def __init__(self, message: str, *, job_id: str | None = None, nonce: str | None = None):
        super().__init__(message)
        self.message = message
        self.job_id = job_id
        self.nonce = nonce


class _Model(BaseModel):
    # extra="ignore": newer service versions may add fields; they must not break parsing.
    model_config = ConfigDict(
        frozen=True, alias_generator=to_camel, populate_by_name=True, extra="ignore"
    )


class ActionTypeIdData(_Model):
    category: str
    owner: str
    provider: str
    version: str


class AwsSessionCredentials(_Model):
    """Temporary credentials for the job's artifact bucket (sensitive)."""

    access_key_id: SecretStr
    secret_access_key: SecretStr
    session_token: SecretStr


class S3Location(_Model):
    bucket_name: str = Field(min_length=1)
    object_key: str = Field(min_length=1)


class ArtifactLocation(_Model):
    type: Literal["S3"] = "S3"
    s3_location: S3Location | None = None


class Artifact(_Model):
    name: Annotated[str, StringConstraints(pattern=ARTIFACT_NAME_PATTERN)]
    revision: str | None = None
    location: ArtifactLocation | None = None


class EncryptionKey(_Model):
    id: str = Field(min_length=1, max_length=400)
    type: Literal["KMS"] = "KMS"


class StageContext(_Model):
    name: Annotated[str, StringConstraints(pattern=NAME_PATTERN)] | None = None


class ActionContext(_Model):
    name: Annotated[str, StringConstraints(pattern=NAME_PATTERN)] | None = None
    action_execution_id: str | None = None


class PipelineContext(_Model):
    pipeline_name: Annotated[str, StringConstraints(pattern=NAME_PATTERN)] | None = None
    stage: StageContext = Field(default_factory=StageContext)
    action: ActionContext = Field(default_factory=ActionContext)
    pipeline_arn: str | None = None
    pipeline_execution_id: str | None = None


class ActionConfiguration(_Model):
    # Keys 1-50, values 1-1000 (service model); values may be secret, so all are SecretStr.
    configuration: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=50)],
        Annotated[SecretStr, Field(max_length=1000)],
    ] = Field(default_factory=dict)


class JobData(_Model):
    action_type_id: ActionTypeIdData | None = None
    action_configuration: ActionConfiguration = Field(default_factory=ActionConfiguration)
    pipeline_context: PipelineContext = Field(default_factory=PipelineContext)
    input_artifacts: list[Artifact] = Field(default_factory=list, max_length=5)
    output_artifacts: list[Artifact] = Field(default_factory=list, max_length=5)
    artifact_credentials: AwsSessionCredentials | None = None
    continuation_token: str | None = Field(default=None, min_length=1, max_length=2048)
    encryption_key: EncryptionKey | None = None

    def configuration(self) -> dict[str, SecretStr]:
        """The action configuration (values still hidden)."""
        return dict(self.action_configuration.configuration)


class Job(_Model):
    """One element of PollForJobs' `jobs`."""

    id: Annotated[str, StringConstraints(pattern=JOB_ID_PATTERN)]
    nonce: str = Field(min_length=1, max_length=50)
    account_id: Annotated[str, StringConstraints(pattern=ACCOUNT_ID_PATTERN)]
    data: JobData = Field(default_factory=JobData)


class JobDetails(_Model):
    """GetJobDetails' `jobDetails`: the same data, fresh credentials, no nonce."""

    id: Annotated[str, StringConstraints(pattern=JOB_ID_PATTERN)]
    account_id: Annotated[str, StringConstraints(pattern=ACCOUNT_ID_PATTERN)]
    data: JobData = Field(default_factory=JobData)


def _peek(raw: object, key: str, limit: int) -> str | None:
    """A top-level string field, if it looks safe to carry in an error (bounded, plain)."""
    if isinstance(raw, Mapping):
        value = raw.get(key)
        if isinstance(value, str) and 0 < len(value) <= limit and value.isprintable():
            return value
    return None


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "job"
        problems.append(f"{where}: {item['msg']}")
    return "malformed CodePipeline job data: " + "; ".join(problems)


def parse_job(raw: object) -> Job:
    """Parse one PollForJobs job (a botocore dict); raise InvalidJobDataError if malformed."""
    try:
        return Job.model_validate(raw)
    except ValidationError as error:
        raise InvalidJobDataError(
            _describe(error), job_id=_peek(raw, "id", 200), nonce=_peek(raw, "nonce", 50)
        ) from None


def parse_job_details(raw: object) -> JobDetails:
    """Parse GetJobDetails' `jobDetails`; raise InvalidJobDataError if malformed."""
    try:
        return JobDetails.model_validate(raw)
    except ValidationError as error:
        raise InvalidJobDataError(_describe(error), job_id=_peek(raw, "id", 200)) from None


def job_document(
    job_id: str, account_id: str, data: JobData, secret_property_names: frozenset[str]
) -> dict[str, Any]:
    """The `job.json` given to the job's containers: the job data with NO secrets.

    Artifact credentials are left out (they are in the `credentials` file) and so are the
    values of secret configuration properties (listed by name in `secretConfigurationKeys`;
    their values are in `secret-config.json`).
    """
    dumped = data.model_dump(
        mode="json", by_alias=True, exclude_none=True, exclude={"artifact_credentials"}
    )
    public = {
        key: value.get_secret_value()
        for key, value in data.configuration().items()
        if key not in secret_property_names
    }
    dumped["actionConfiguration"] = {"configuration": public}
    return {
        "id": job_id,
        "accountId": account_id,
        "data": dumped,
        "secretConfigurationKeys": sorted(
            key for key in data.configuration() if key in secret_property_names
        ),
    }


@dataclass(frozen=True)
class SecretProperties:
    """Which configuration properties of an action type are secret (from ListActionTypes).

    When the action type could not be described, every property is treated as secret: it is
    safer to hide a harmless value from the Job's environment than to expose a password.
    """

    names: frozenset[str] = frozenset()
    all_secret: bool = False

    def is_secret(self, name: str) -> bool:
        return self.all_secret or name in self.names

    def of(self, data: JobData) -> frozenset[str]:
        """The configuration properties of `data` to treat as secret."""
        return frozenset(key for key in data.configuration() if self.is_secret(key))


ALL_SECRET: Final = SecretProperties(all_secret=True)


def credentials_need_refresh(issued_at: datetime, now: datetime, refresh_after: float) -> bool:
    """True when credentials issued at `issued_at` are `refresh_after` seconds old or older."""
    return (now - issued_at).total_seconds() >= refresh_after
