"""(worker, CodePipeline job, settings) -> the Kubernetes Job and Secret that run it. Pure.

What a job's containers get (documented for users in docs/job-contract.md):

- environment: `CPWORKER_JOB_ID`, `CPWORKER_PIPELINE_NAME`, `CPWORKER_STAGE_NAME`,
  `CPWORKER_ACTION_NAME`, `CPWORKER_PIPELINE_EXECUTION_ID`, `CPWORKER_ACTION_EXECUTION_ID`,
  `CPWORKER_ACCOUNT_ID`, `CPWORKER_REGION`, `CPWORKER_CONFIG_<NAME>` for every NON-secret
  configuration property, `CPWORKER_JOB_FILE`, `CPWORKER_SECRET_CONFIG_FILE`,
  `CPWORKER_RESULT_FILE`, `AWS_SHARED_CREDENTIALS_FILE` (and `AWS_REGION` unless set);
- a read-only Secret volume at `/var/run/cpworker` with `credentials` (AWS shared-credentials
  file, `[default]` profile, refreshed in place while the Job runs), `job.json` (job data
  without credentials or secret values), `secret-config.json` and one
  `secret-config.<name>` file per secret configuration property.

Secret values are only ever written into the Secret's `data`; never into the Job (no env
literals, no annotations), so `kubectl get job -o yaml` never shows one.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import SecretStr, ValidationError

from cpworker import names
from cpworker.jobdata import AwsSessionCredentials, Job, JobData, job_document
from cpworker.models import CustomActionWorkerSpec, JobTemplate
from cpworker.settings import OperatorSettings

MOUNT_PATH: Final = "/var/run/cpworker"
SECRET_VOLUME_NAME: Final = "cpworker-job"  # noqa: S105 - a volume name, not a secret
CREDENTIALS_KEY: Final = "credentials"
JOB_KEY: Final = "job.json"
SECRET_CONFIG_KEY: Final = "secret-config.json"  # noqa: S105 - a file name
SECRET_CONFIG_FILE_PREFIX: Final = "secret-config."  # noqa: S105 - a file name
DEFAULT_TERMINATION_MESSAGE_PATH: Final = "/dev/termination-log"

RESERVED_VOLUME_PREFIX: Final = "cpworker-"
RESERVED_ENV_PREFIX: Final = "CPWORKER_"
ENV_SHARED_CREDENTIALS: Final = "AWS_SHARED_CREDENTIALS_FILE"
RESERVED_ENV_NAMES: Final = frozenset({ENV_SHARED_CREDENTIALS})
ENV_CONFIG_PREFIX: Final = "CPWORKER_CONFIG_"

# Job fields only the operator sets (docs/architecture.md, the claim protocol).
_OPERATOR_JOB_SPEC_FIELDS: Final = {
    "suspend": "the operator creates Jobs suspended and releases them after the claim",
    "selector": "the Job controller generates it",
    "manualSelector": "the Job controller generates the selector",
    "ttlSecondsAfterFinished": "set from the operator's settings",
    "managedBy": "the built-in Job controller must run the Job",
}
_OPERATOR_METADATA_FIELDS: Final = (
    "name",
    "generateName",
    "namespace",
    "ownerReferences",
    "finalizers",
)
_MAX_PROBLEMS: Final = 20
_SECRET_KEY_RE: Final = re.compile(r"[^-._a-zA-Z0-9]")
_ENV_NAME_RE: Final = re.compile(r"[^A-Z0-9_]")
_CONTINUATION_PREFIX: Final = "cpworker.io/v1"


class ManifestError(ValueError):
    """The manifests cannot be built (for example: no region). Safe to show."""


@dataclass(frozen=True)
class WorkerRef:
    """The CustomActionWorker a Job belongs to (its ownerReference)."""

    name: str
    namespace: str
    uid: str


@dataclass(frozen=True)
class ContinuationRef:
    """The Kubernetes Job a cpworker continuation token names."""

    namespace: str | None
    job_name: str
    job_uid: str


# --- Template validation ------------------------------------------------------------------


@functools.cache
def _job_validator() -> Any | None:
    """A strict batch/v1 Job validator from kubernetes-validate's bundled schemas, if installed.

    kubernetes-validate weighs about 100 MiB (schemas of every Kubernetes version), so it is a
    development dependency; without it `_structure_problems` falls back to the kubernetes
    client's models, and the API server's own validation of the Job remains the last word.
    """
    try:
        utils = importlib.import_module("kubernetes_validate.utils")
        jsonschema = importlib.import_module("jsonschema")
        referencing = importlib.import_module("referencing")
    except ImportError:
        return None
    version = utils.latest_version()
    folder = f"kubernetes-json-schema/v{version}-local-strict"
    schema = utils.schema_contents(f"{folder}/job-batch-v1.json", version)
    definitions = utils.schema_contents(f"{folder}/_definitions.json", version)
    registry = referencing.Resource.from_contents(schema) @ referencing.Registry()
    registry = referencing.Resource.from_contents(definitions) @ registry
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def _json_path(path: Sequence[object]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out.lstrip(".")


def _structure_problems(spec: Mapping[str, Any]) -> list[str]:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x"}, "spec": spec}
    validator = _job_validator()
    if validator is None:
        return _client_model_problems(spec)
    problems = []
    errors = sorted(validator.iter_errors(job), key=lambda e: [str(p) for p in e.path])
    for error in errors:
        where = _json_path(list(error.absolute_path)) or "spec"
        problems.append(f"jobTemplate.{where}: {error.message}")
    return problems


@functools.cache
def _model_deserializer() -> Any:
    client = importlib.import_module("kubernetes.client")
    # The public `deserialize` changed its signature between client releases (a response
    # object before v32, the response text after); the private one it wraps did not.
    return client.ApiClient()._ApiClient__deserialize


def _client_model_problems(spec: Mapping[str, Any]) -> list[str]:
    """Fallback structure check: can the kubernetes client build a V1JobSpec from it?

    Weaker than the schema (unknown fields pass, types are only partly checked) but it does
    catch missing required fields such as containers, names and images.
    """
    try:
        _model_deserializer()(json.loads(json.dumps(dict(spec))), "V1JobSpec")
    except ValidationError as error:  # kubernetes >= 35 builds its models with pydantic
        return [
            f"jobTemplate.spec: {error.title} {_json_path(item['loc'])}: {item['msg']}".replace(
                "  ", " "
            )
            for item in error.errors(include_input=False, include_url=False)
        ]
    except (ValueError, TypeError, AttributeError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        return [f"jobTemplate.spec is not a valid batch/v1 JobSpec: {first_line}"]
    return []


def _containers(pod_spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found: list[Mapping[str, Any]] = []
    for key in ("initContainers", "containers"):
        items = pod_spec.get(key)
        if isinstance(items, list):
            found += [item for item in items if isinstance(item, Mapping)]
    return found


def _metadata_problems(metadata: object, where: str) -> list[str]:
    if not isinstance(metadata, Mapping):
        return []
    problems = [
        f"{where}.{field} is set by the operator and must not be in the template"
        for field in _OPERATOR_METADATA_FIELDS
        if field in metadata
    ]
    for kind in ("labels", "annotations"):
        keys = metadata.get(kind)
        if isinstance(keys, Mapping):
            problems += [
                f"{where}.{kind}.{key}: keys under {names.RESERVED_KEY_PREFIX} are reserved "
                "for the operator"
                for key in keys
                if isinstance(key, str) and names.is_reserved_key(key)
            ]
    return problems


def _is_mount_reserved(path: object) -> bool:
    return isinstance(path, str) and (
        path.rstrip("/") == MOUNT_PATH or path.startswith(MOUNT_PATH + "/")
    )


def _container_problems(container: Mapping[str, Any], where: str) -> list[str]:
    problems = []
    for env in container.get("env") or []:
        name = env.get("name") if isinstance(env, Mapping) else None
        if isinstance(name, str) and (
            name.startswith(RESERVED_ENV_PREFIX) or name in RESERVED_ENV_NAMES
        ):
            problems.append(f"{where}.env {name}: the operator sets it")
    for mount in container.get("volumeMounts") or []:
        if not isinstance(mount, Mapping):
            continue
        if str(mount.get("name", "")).startswith(RESERVED_VOLUME_PREFIX):
            problems.append(
                f"{where}.volumeMounts {mount.get('name')}: volume names starting with "
                f"{RESERVED_VOLUME_PREFIX} are reserved"
            )
        if _is_mount_reserved(mount.get("mountPath")):
            problems.append(
                f"{where}.volumeMounts {mount.get('mountPath')}: {MOUNT_PATH} is where the "
                "operator mounts the job's credentials and data"
            )
    return problems


def _pod_problems(pod_spec: Mapping[str, Any]) -> list[str]:
    problems = []
    where = "jobTemplate.spec.template.spec"
    restart = pod_spec.get("restartPolicy")
    if restart is not None and restart != "Never":
        problems.append(
            f"{where}.restartPolicy is {restart}: must be Never (or unset); a retried "
            "container would run the job twice"
        )
    for volume in pod_spec.get("volumes") or []:
        name = volume.get("name") if isinstance(volume, Mapping) else None
        if isinstance(name, str) and name.startswith(RESERVED_VOLUME_PREFIX):
            problems.append(
                f"{where}.volumes {name}: names starting with {RESERVED_VOLUME_PREFIX} are reserved"
            )
    for container in _containers(pod_spec):
        problems += _container_problems(container, f"{where} container {container.get('name')}")
    return problems


def _spec_problems(spec: Mapping[str, Any], max_deadline: int | None) -> list[str]:
    problems = [
        f"jobTemplate.spec.{field} must not be set: {why}"
        for field, why in _OPERATOR_JOB_SPEC_FIELDS.items()
        if field in spec
    ]
    for field in ("parallelism", "completions"):
        value = spec.get(field)
        if value is not None and value != 1:
            problems.append(
                f"jobTemplate.spec.{field} is {value}: one CodePipeline job runs as exactly "
                "one pod at a time"
            )
    deadline = spec.get("activeDeadlineSeconds")
    if isinstance(deadline, int) and max_deadline is not None and deadline > max_deadline:
        problems.append(
            f"jobTemplate.spec.activeDeadlineSeconds {deadline} exceeds the operator's limit "
            f"of {max_deadline} seconds"
        )
    template = spec.get("template")
    if isinstance(template, Mapping):
        problems += _metadata_problems(template.get("metadata"), "jobTemplate.spec.template")
        pod_spec = template.get("spec")
        if isinstance(pod_spec, Mapping):
            problems += _pod_problems(pod_spec)
    return problems


def validate_job_template(
    template: Mapping[str, Any] | JobTemplate, *, max_active_deadline_seconds: int | None = None
) -> list[str]:
    """Every problem with a worker's jobTemplate (empty list: it can be used).

    Checks that the template is a valid batch/v1 JobTemplateSpec (strict: unknown fields are
    problems too) and that it does not set anything the operator owns: name, namespace,
    ownerReferences, `cpworker.io/` labels/annotations, restartPolicy other than Never,
    suspend, selector, manualSelector, ttlSecondsAfterFinished, parallelism/completions other
    than 1, reserved volume/env/mount names, or an activeDeadlineSeconds above the limit.
    """
    # Typed as a mapping, but it comes from a user's resource: check, do not trust.
    raw: object = (
        template.model_dump(by_alias=True) if isinstance(template, JobTemplate) else template
    )
    if not isinstance(raw, Mapping):
        return ["jobTemplate must be an object"]
    problems = _metadata_problems(raw.get("metadata"), "jobTemplate.metadata")
    spec = raw.get("spec")
    if not isinstance(spec, Mapping):
        return [*problems, "jobTemplate.spec must be an object (a batch/v1 JobSpec)"]
    if not isinstance(spec.get("template"), Mapping):
        problems.append("jobTemplate.spec.template is required (the pod template)")
    problems += _spec_problems(spec, max_active_deadline_seconds)
    problems += _structure_problems(spec)
    return problems[:_MAX_PROBLEMS]


# --- Secret content -----------------------------------------------------------------------


def credentials_file(creds: AwsSessionCredentials | None) -> str:
    """The AWS shared-credentials file (`[default]` profile) for the artifact credentials."""
    if creds is None:
        return "# CodePipeline sent no artifact credentials for this job\n"
    return (
        "[default]\n"
        f"aws_access_key_id = {creds.access_key_id.get_secret_value()}\n"
        f"aws_secret_access_key = {creds.secret_access_key.get_secret_value()}\n"
        f"aws_session_token = {creds.session_token.get_secret_value()}\n"
    )


def _disambiguate(sanitised: str, original: str, taken: set[str], *, upper: bool = False) -> str:
    """`sanitised`, or with a hash of the original name when two names sanitise alike."""
    if sanitised not in taken:
        return sanitised
    digest = hashlib.sha256(original.encode()).hexdigest()[:8]
    return f"{sanitised}_{digest.upper() if upper else digest}"


def secret_file_names(property_names: Collection[str]) -> dict[str, str]:
    """Secret key (file name) for each secret configuration property: `secret-config.<name>`."""
    result: dict[str, str] = {}
    taken: set[str] = set()
    for name in sorted(property_names):
        key = _disambiguate(
            SECRET_CONFIG_FILE_PREFIX + _SECRET_KEY_RE.sub("_", name)[:200], name, taken
        )
        taken.add(key)
        result[name] = key
    return result


def config_env_names(property_names: Collection[str]) -> dict[str, str]:
    """Environment variable for each NON-secret property: `CPWORKER_CONFIG_<NAME>` sanitised."""
    result: dict[str, str] = {}
    taken: set[str] = set()
    for name in sorted(property_names):
        sanitised = ENV_CONFIG_PREFIX + _ENV_NAME_RE.sub("_", name.upper())
        env = _disambiguate(sanitised, name, taken, upper=True)
        taken.add(env)
        result[name] = env
    return result


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _secret_configuration(
    data: JobData, secret_property_names: Collection[str]
) -> dict[str, SecretStr]:
    return {k: v for k, v in data.configuration().items() if k in secret_property_names}


def secret_data(
    job_id: str, account_id: str, data: JobData, secret_property_names: Collection[str]
) -> dict[str, str]:
    """The Secret's `data` (base64): credentials, job.json, secret configuration files.

    Also what a credential refresh writes (from GetJobDetails), so that the keys never change.
    """
    secret_names = frozenset(secret_property_names)
    secrets = _secret_configuration(data, secret_names)
    document = job_document(job_id, account_id, data, secret_names)
    result = {
        CREDENTIALS_KEY: _b64(credentials_file(data.artifact_credentials)),
        JOB_KEY: _b64(json.dumps(document, indent=2, sort_keys=True)),
        SECRET_CONFIG_KEY: _b64(
            json.dumps({k: v.get_secret_value() for k, v in sorted(secrets.items())}, indent=2)
        ),
    }
    for name, key in secret_file_names(secrets).items():
        result[key] = _b64(secrets[name].get_secret_value())
    return result


def build_secret(
    *,
    job_name: str,
    namespace: str,
    job_uid: str,
    worker_name: str,
    job: Job,
    secret_property_names: Collection[str],
) -> dict[str, Any]:
    """The Secret `job_name` holding the job's credentials and secret configuration.

    Owned by the Job (`job_uid`), so it is garbage-collected with it; not immutable, because
    a credential refresh rewrites `credentials`.
    """
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "immutable": False,  # a credential refresh rewrites it in place
        "metadata": {
            "name": job_name,
            "namespace": namespace,
            "labels": names.job_labels(worker_name, job.id),
            "annotations": {names.ANNOTATION_JOB_ID: job.id},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": job_name,
                    "uid": job_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "data": secret_data(job.id, job.account_id, job.data, secret_property_names),
    }


# --- The Job ------------------------------------------------------------------------------


def _rfc3339(now: datetime) -> str:
    if now.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return now.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _env(name: str, value: str) -> dict[str, str]:
    return {"name": name, "value": value}


def _operator_env(
    job: Job, region: str, secret_property_names: Collection[str]
) -> list[dict[str, str]]:
    context = job.data.pipeline_context
    plain = {
        "CPWORKER_JOB_ID": job.id,
        "CPWORKER_PIPELINE_NAME": context.pipeline_name or "",
        "CPWORKER_STAGE_NAME": context.stage.name or "",
        "CPWORKER_ACTION_NAME": context.action.name or "",
        "CPWORKER_PIPELINE_EXECUTION_ID": context.pipeline_execution_id or "",
        "CPWORKER_ACTION_EXECUTION_ID": context.action.action_execution_id or "",
        "CPWORKER_ACCOUNT_ID": job.account_id,
        "CPWORKER_REGION": region,
        "CPWORKER_JOB_FILE": f"{MOUNT_PATH}/{JOB_KEY}",
        "CPWORKER_SECRET_CONFIG_FILE": f"{MOUNT_PATH}/{SECRET_CONFIG_KEY}",
        ENV_SHARED_CREDENTIALS: f"{MOUNT_PATH}/{CREDENTIALS_KEY}",
    }
    env = [_env(name, value) for name, value in plain.items()]
    configuration = job.data.configuration()
    public = [name for name in configuration if name not in secret_property_names]
    for name, env_name in config_env_names(public).items():
        env.append(_env(env_name, configuration[name].get_secret_value()))
    return env


def _with_operator_parts(
    container: Mapping[str, Any], operator_env: list[dict[str, str]], region: str
) -> dict[str, Any]:
    result = dict(container)
    user_env = [dict(e) for e in container.get("env") or []]
    result_file = container.get("terminationMessagePath") or DEFAULT_TERMINATION_MESSAGE_PATH
    extra = [_env("CPWORKER_RESULT_FILE", result_file)]
    if not any(e.get("name") == "AWS_REGION" for e in user_env):
        extra.append(_env("AWS_REGION", region))
    # Ours first, so that the user's env may refer to them as $(CPWORKER_JOB_ID).
    result["env"] = [*operator_env, *extra, *user_env]
    mount = {"name": SECRET_VOLUME_NAME, "mountPath": MOUNT_PATH, "readOnly": True}
    result["volumeMounts"] = [*(container.get("volumeMounts") or []), mount]
    security = dict(container.get("securityContext") or {})
    if not security.get("privileged"):
        security.setdefault("allowPrivilegeEscalation", False)
    security.setdefault("capabilities", {"drop": ["ALL"]})
    result["securityContext"] = security
    return result


def _pod_security(pod_spec: Mapping[str, Any]) -> dict[str, Any]:
    security = dict(pod_spec.get("securityContext") or {})
    # A template that explicitly runs as root keeps working rather than failing admission.
    if security.get("runAsUser") != 0:
        security.setdefault("runAsNonRoot", True)
    security.setdefault("seccompProfile", {"type": "RuntimeDefault"})
    return security


def _pod_template(
    template: Mapping[str, Any],
    labels: Mapping[str, str],
    job_name: str,
    operator_env: list[dict[str, str]],
    region: str,
) -> dict[str, Any]:
    metadata = dict(template.get("metadata") or {})
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    pod_spec = dict(template.get("spec") or {})
    pod_spec["restartPolicy"] = "Never"
    pod_spec["securityContext"] = _pod_security(pod_spec)
    for key in ("initContainers", "containers"):
        if key in pod_spec:
            pod_spec[key] = [
                _with_operator_parts(c, operator_env, region) for c in pod_spec[key] or []
            ]
    volume = {
        "name": SECRET_VOLUME_NAME,
        "secret": {"secretName": job_name, "defaultMode": 0o444},
    }
    pod_spec["volumes"] = [*(pod_spec.get("volumes") or []), volume]
    return {"metadata": metadata, "spec": pod_spec}


def job_annotations(
    *,
    job: Job,
    worker_name: str,
    region: str,
    role_arn: str | None,
    now: datetime,
    continuation_of: str | None = None,
) -> dict[str, str]:
    """The operator's annotations on a Job: everything needed to claim, tend and report it."""
    context = job.data.pipeline_context
    annotations = {
        names.ANNOTATION_PHASE: names.Phase.CLAIMING.value,
        names.ANNOTATION_JOB_ID: job.id,
        names.ANNOTATION_NONCE: job.nonce,
        names.ANNOTATION_REGION: region,
        names.ANNOTATION_ACCOUNT_ID: job.account_id,
        names.ANNOTATION_WORKER: worker_name,
        names.ANNOTATION_CREDENTIALS_ISSUED_AT: _rfc3339(now),
    }
    optional = {
        names.ANNOTATION_ROLE_ARN: role_arn,
        names.ANNOTATION_CONTINUATION_OF: continuation_of,
        names.ANNOTATION_PIPELINE: context.pipeline_name,
        names.ANNOTATION_STAGE: context.stage.name,
        names.ANNOTATION_ACTION: context.action.name,
    }
    annotations |= {key: value for key, value in optional.items() if value}
    return annotations


def build_job(
    *,
    worker: WorkerRef,
    spec: CustomActionWorkerSpec,
    job: Job,
    secret_property_names: Collection[str],
    settings: OperatorSettings,
    now: datetime,
) -> dict[str, Any]:
    """The suspended batch/v1 Job for a CodePipeline job (phase `claiming`).

    Raises ManifestError when the worker has no region. The template should have passed
    `validate_job_template` already; operator-owned fields are overwritten regardless.
    """
    region = spec.effective_region(settings.default_region)
    if region is None:
        raise ManifestError("no region: set spec.region or the operator's CPWORKER_DEFAULT_REGION")
    job_name = names.job_object_name(job.id)
    labels = names.job_labels(worker.name, job.id)
    template = spec.job_template
    user_spec = dict(template.spec)
    deadline = user_spec.get("activeDeadlineSeconds")
    if not isinstance(deadline, int) or deadline > settings.default_active_deadline_seconds:
        deadline = settings.default_active_deadline_seconds
    operator_env = _operator_env(job, region, frozenset(secret_property_names))
    job_spec = {
        **user_spec,
        "suspend": True,
        # One CodePipeline job is one pod at a time: a second one would run the job twice.
        "parallelism": 1,
        "completions": 1,
        "backoffLimit": user_spec.get("backoffLimit", 0),
        "activeDeadlineSeconds": deadline,
        # No TTL yet: a finished Job must outlive an operator outage until its result is
        # reported (reported_patch sets it), or the result would be lost with the Job.
        "template": _pod_template(
            user_spec.get("template") or {}, labels, job_name, operator_env, region
        ),
    }
    for field in ("selector", "manualSelector", "managedBy", "ttlSecondsAfterFinished"):
        job_spec.pop(field, None)
    annotations = job_annotations(
        job=job, worker_name=worker.name, region=region, role_arn=spec.role_arn, now=now
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name,
            "namespace": worker.namespace,
            "labels": {**template.metadata.labels, **labels},
            "annotations": {**template.metadata.annotations, **annotations},
            "ownerReferences": [
                {
                    "apiVersion": names.API_VERSION,
                    "kind": names.KIND,
                    "name": worker.name,
                    "uid": worker.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": job_spec,
    }


def release_patch(now: datetime) -> dict[str, Any]:
    """Merge patch that starts a claimed Job: `suspend: false`, phase `running`, and when."""
    return {
        "metadata": {
            "annotations": {
                names.ANNOTATION_PHASE: names.Phase.RUNNING.value,
                names.ANNOTATION_RELEASED_AT: _rfc3339(now),
            }
        },
        "spec": {"suspend": False},
    }


def reported_patch(result: names.Result, finished_ttl_seconds: int) -> dict[str, Any]:
    """Merge patch for a Job whose result CodePipeline has: phase, result, and now its TTL."""
    return {
        "metadata": {
            "annotations": {
                names.ANNOTATION_PHASE: names.Phase.REPORTED.value,
                names.ANNOTATION_RESULT: result.value,
            }
        },
        "spec": {"ttlSecondsAfterFinished": finished_ttl_seconds},
    }


def credentials_patch(
    job_id: str,
    account_id: str,
    data: JobData,
    secret_property_names: Collection[str],
) -> dict[str, Any]:
    """Merge patch for the Secret after GetJobDetails returned fresh credentials."""
    return {"data": secret_data(job_id, account_id, data, secret_property_names)}


def continuation_patch(job: Job, *, previous_job_id: str, now: datetime) -> dict[str, Any]:
    """Merge patch that makes an existing Job track continuation job `job`.

    The Job keeps its name (it was named after the first CodePipeline job); its job-id label
    and annotations move to the new job, which must then be acknowledged with its own nonce
    (phase `claiming` again, so a restart re-acknowledges it).
    """
    return {
        "metadata": {
            "labels": {names.LABEL_JOB_ID: names.job_label_value(job.id)},
            "annotations": {
                names.ANNOTATION_PHASE: names.Phase.CLAIMING.value,
                names.ANNOTATION_JOB_ID: job.id,
                names.ANNOTATION_NONCE: job.nonce,
                names.ANNOTATION_ACCOUNT_ID: job.account_id,
                names.ANNOTATION_CONTINUATION_OF: previous_job_id,
                names.ANNOTATION_CREDENTIALS_ISSUED_AT: _rfc3339(now),
            },
        }
    }


# --- Continuation tokens ------------------------------------------------------------------


def continuation_token(job_name: str, job_uid: str, namespace: str | None = None) -> str:
    """A continuation token naming the Kubernetes Job that goes on running.

    CodePipeline hands it back in the next job's `data.continuationToken`. It names the Job
    by namespace, name and uid; the runtime must still check that the Job exists, has that
    uid and carries this worker's labels, because job data comes from outside.
    """
    return f"{_CONTINUATION_PREFIX}/{namespace or ''}/{job_name}/{job_uid}"


_DNS_LABEL_RE: Final = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_UID_RE: Final = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def parse_continuation_token(token: str) -> ContinuationRef | None:
    """The Job a token made by `continuation_token` names; None for any other token."""
    prefix = _CONTINUATION_PREFIX + "/"
    if not token.startswith(prefix):
        return None
    parts = token[len(prefix) :].split("/")
    if len(parts) != 3:
        return None
    namespace, job_name, job_uid = parts
    if namespace and not _DNS_LABEL_RE.match(namespace):
        return None
    if not _DNS_LABEL_RE.match(job_name) or not _UID_RE.match(job_uid):
        return None
    return ContinuationRef(namespace=namespace or None, job_name=job_name, job_uid=job_uid)
