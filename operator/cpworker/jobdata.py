"""Typed CodePipeline jobs, as PollForJobs and GetJobDetails return them (botocore dicts).

Artifact credentials and every configuration value are `SecretStr`: CodePipeline delivers
secret configuration properties in clear text, and at parse time we do not yet know which
properties are secret, so all values are hidden from repr/str/logging. Reveal them only where
they are written into the job's Secret (`cpworker.manifests`).

Malformed data becomes `InvalidJobDataError`, whose message names fields and problems but never
echoes a value; it carries the job id (and nonce) when those could be read, so the runtime can
report the job as failed (ConfigurationError) instead of crashing or losing it. The limits are
the service model's (botocore codepipeline 2015-07-09) where it has them, else the real
service's (S3 names, the 10 configuration properties of an action type, with room); a string
with a NUL or an unpaired surrogate is refused wherever it is, because no container
environment, file name or Kubernetes object can carry it as sent
(tests/fuzz/test_hostile_jobs.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, ValidationError
from pydantic.alias_generators import to_camel

JOB_ID_PATTERN: Final = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
EXECUTION_ID_PATTERN: Final = JOB_ID_PATTERN  # PipelineExecutionId: a UUID, as job ids
# An action type has at most 10 configuration properties (service quota); five times that
# bounds what a job's environment can grow to.
MAX_CONFIGURATION_ENTRIES: Final = 50
# What an error message shows of a key (dict keys appear in the locations of problems).
_SHOWN_KEY_MAX: Final = 50
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


_M = TypeVar("_M", bound=_Model)


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
    bucket_name: str = Field(min_length=1, max_length=63)  # S3 bucket names: 3-63
    object_key: str = Field(min_length=1, max_length=1024)  # S3 keys: at most 1024 bytes


class ArtifactLocation(_Model):
    type: Literal["S3"] = "S3"
    s3_location: S3Location | None = None


class Artifact(_Model):
    name: Annotated[str, StringConstraints(pattern=ARTIFACT_NAME_PATTERN)]
    revision: str | None = Field(default=None, min_length=1, max_length=1500)
    location: ArtifactLocation | None = None


class EncryptionKey(_Model):
    id: str = Field(min_length=1, max_length=400)
    type: Literal["KMS"] = "KMS"


class StageContext(_Model):
    name: Annotated[str, StringConstraints(pattern=NAME_PATTERN)] | None = None


class ActionContext(_Model):
    name: Annotated[str, StringConstraints(pattern=NAME_PATTERN)] | None = None
    # No limit in the model; AWS's are UUIDs. Bounded: it becomes an environment variable.
    action_execution_id: str | None = Field(default=None, min_length=1, max_length=256)


class PipelineContext(_Model):
    pipeline_name: Annotated[str, StringConstraints(pattern=NAME_PATTERN)] | None = None
    stage: StageContext = Field(default_factory=StageContext)
    action: ActionContext = Field(default_factory=ActionContext)
    pipeline_arn: str | None = Field(default=None, max_length=1024)
    pipeline_execution_id: (
        Annotated[str, StringConstraints(pattern=EXECUTION_ID_PATTERN)] | None
    ) = None


class ActionConfiguration(_Model):
    # Keys 1-50, values 1-1000 (service model); values may be secret, so all are SecretStr.
    configuration: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=50)],
        Annotated[SecretStr, Field(min_length=1, max_length=1000)],
    ] = Field(default_factory=dict, max_length=MAX_CONFIGURATION_ENTRIES)


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


def _shown(part: object) -> str:
    """A location part as an error message may show it: keys come from the job data, so a
    long or unprintable one is described, never repeated."""
    text = str(part)
    if len(text) > _SHOWN_KEY_MAX or not text.isprintable():
        return f"<a key of {len(text)} characters>"
    return text


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_input=False, include_url=False)[:10]:
        where = ".".join(_shown(part) for part in item["loc"]) or "job"
        problems.append(f"{where}: {item['msg']}")
    return "malformed CodePipeline job data: " + "; ".join(problems)


def _uncarriable(text: str) -> bool:
    """A NUL, or an unpaired surrogate (no UTF-8 for it): no environment variable, file name
    or Kubernetes object carries the string as CodePipeline sent it."""
    return "\x00" in text or any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def _uncarriable_at(raw: object, where: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """The location of the first string (key or value) `_uncarriable` refuses, if any."""
    if isinstance(raw, str):
        return where if _uncarriable(raw) else None
    if isinstance(raw, Mapping):
        for key, value in raw.items():
            if isinstance(key, str) and _uncarriable(key):
                return (*where, "<a key>")
            found = _uncarriable_at(value, (*where, str(key)))
            if found is not None:
                return found
    elif isinstance(raw, list | tuple):
        for index, value in enumerate(raw):
            found = _uncarriable_at(value, (*where, str(index)))
            if found is not None:
                return found
    return None


def _validated(model: type[_M], raw: object, *, nonce: bool) -> _M:
    job_id = _peek(raw, "id", 200)
    nonce_value = _peek(raw, "nonce", 50) if nonce else None
    bad = _uncarriable_at(raw)
    if bad is not None:
        where = ".".join(_shown(part) for part in bad) or "job"
        raise InvalidJobDataError(
            f"malformed CodePipeline job data: {where}: contains a NUL character or invalid "
            "Unicode, which no container environment or Kubernetes object can carry",
            job_id=job_id,
            nonce=nonce_value,
        )
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise InvalidJobDataError(_describe(error), job_id=job_id, nonce=nonce_value) from None


def parse_job(raw: object) -> Job:
    """Parse one PollForJobs job (a botocore dict); raise InvalidJobDataError if malformed."""
    return _validated(Job, raw, nonce=True)


def parse_job_details(raw: object) -> JobDetails:
    """Parse GetJobDetails' `jobDetails`; raise InvalidJobDataError if malformed."""
    return _validated(JobDetails, raw, nonce=False)


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
