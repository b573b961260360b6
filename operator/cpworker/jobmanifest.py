"""Where the Kubernetes Job is built: (worker, CodePipeline job, settings) -> batch/v1 Job. Pure.

What a job's containers get (documented for users in docs/job-contract.md):

- environment: `CPWORKER_JOB_ID`, `CPWORKER_PIPELINE_NAME`, `CPWORKER_STAGE_NAME`,
  `CPWORKER_ACTION_NAME`, `CPWORKER_PIPELINE_EXECUTION_ID`, `CPWORKER_ACTION_EXECUTION_ID`,
  `CPWORKER_ACCOUNT_ID`, `CPWORKER_REGION`, `CPWORKER_CONFIG_<NAME>` for every NON-secret
  configuration property, `CPWORKER_JOB_FILE`, `CPWORKER_SECRET_CONFIG_FILE`,
  `CPWORKER_RESULT_FILE`, `AWS_SHARED_CREDENTIALS_FILE` (and `AWS_REGION` unless set);
- a read-only volume at `/var/run/cpworker` of the job's Secret (jobsecret.py);
- for a job with artifacts (and `spec.artifacts.enabled`): `CPWORKER_INPUT_DIR` and
  `CPWORKER_OUTPUT_DIR`, both backed by one emptyDir, and the artifact helper before the
  user's init containers: `cpworker-push` (a native sidecar, only when the job has output
  artifacts) then `cpworker-pull`, with a grace period that covers the upload
  (docs/architecture.md, "Artifacts in the pod").

The Job is created suspended, carrying the initial Job record (`job_annotations`): everything
needed to claim, supervise and report it, even after a restart. Every later change to that
record is a named operation of `jobrecord`. Secret values never appear here (no env literals,
no annotations), so `kubectl get job -o yaml` never shows one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from cpworker import jobsecret, names, timestamps
from cpworker.jobdata import Job
from cpworker.models import JOB_MOUNT_PATH, Artifacts, CustomActionWorkerSpec
from cpworker.settings import OperatorSettings, ResourceKind

MOUNT_PATH: Final = JOB_MOUNT_PATH
SECRET_VOLUME_NAME: Final = names.JOB_VOLUME
DEFAULT_TERMINATION_MESSAGE_PATH: Final = "/dev/termination-log"
# A replacement pod (after an eviction, with backoffLimit > 0) starts only once the pod it
# replaces has stopped: the default TerminatingOrFailed starts it while the evicted pod still
# runs, and the job would run twice at once (pkg/controller/job/job_controller.go
# onlyReplaceFailedPods). Beta and on by default from Kubernetes 1.29; older API servers drop
# the field.
POD_REPLACEMENT_POLICY: Final = "Failed"
# Kubernetes' default terminationGracePeriodSeconds (pkg/apis/core/v1/defaults.go).
DEFAULT_GRACE_SECONDS: Final = 30

RESERVED_VOLUME_PREFIX: Final = names.POD_RESERVED_PREFIX
RESERVED_CONTAINER_PREFIX: Final = names.POD_RESERVED_PREFIX
RESERVED_ENV_PREFIX: Final = "CPWORKER_"
ENV_SHARED_CREDENTIALS: Final = "AWS_SHARED_CREDENTIALS_FILE"
RESERVED_ENV_NAMES: Final = frozenset({ENV_SHARED_CREDENTIALS})
ENV_CONFIG_PREFIX: Final = "CPWORKER_CONFIG_"
_ENV_NAME_RE: Final = re.compile(r"[^A-Z0-9_]")


# The most a built Job may weigh as JSON. etcd refuses objects over 1.5 MiB by default
# (--max-request-bytes; kube-apiserver answers "etcdserver: request is too large"); the Job
# grows further with its status and managedFields, so stay well below.
MAX_JOB_BYTES: Final = 1024 * 1024


class ManifestError(ValueError):
    """The manifests cannot be built (for example: no region). Safe to show."""


@dataclass(frozen=True)
class WorkerRef:
    """The CustomActionWorker a Job belongs to (its ownerReference)."""

    name: str
    namespace: str
    uid: str


def config_env_names(property_names: Collection[str]) -> dict[str, str]:
    """Environment variable for each NON-secret property: `CPWORKER_CONFIG_<NAME>` sanitised."""
    result: dict[str, str] = {}
    taken: set[str] = set()
    for name in sorted(property_names):
        sanitised = ENV_CONFIG_PREFIX + _ENV_NAME_RE.sub("_", name.upper())
        env = jobsecret.disambiguate(sanitised, name, taken, upper=True)
        taken.add(env)
        result[name] = env
    return result


def _env(name: str, value: str) -> dict[str, str]:
    return {"name": name, "value": value}


def literal(value: str) -> str:
    """`value` as an env value the kubelet hands over unchanged: it expands `$(NAME)` in env
    values and `$$` is its escape for `$` (kubernetes/kubernetes third_party/forked/golang/
    expansion/expand.go). Without this, a configuration value `$(AWS_SHARED_CREDENTIALS_FILE)`
    reached the container as a path and `price: $$5` as `price: $5`."""
    return value.replace("$", "$$")


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
        "CPWORKER_JOB_FILE": f"{MOUNT_PATH}/{jobsecret.JOB_KEY}",
        "CPWORKER_SECRET_CONFIG_FILE": f"{MOUNT_PATH}/{jobsecret.SECRET_CONFIG_KEY}",
        ENV_SHARED_CREDENTIALS: f"{MOUNT_PATH}/{jobsecret.CREDENTIALS_KEY}",
    }
    # Every value here comes from CodePipeline's job data (or is a path of ours): literal.
    env = [_env(name, literal(value)) for name, value in plain.items()]
    configuration = job.data.configuration()
    public = [name for name in configuration if name not in secret_property_names]
    for name, env_name in config_env_names(public).items():
        env.append(_env(env_name, literal(configuration[name].get_secret_value())))
    return env


def _with_operator_parts(
    container: Mapping[str, Any],
    operator_env: list[dict[str, str]],
    region: str,
    mounts: list[dict[str, Any]],
) -> dict[str, Any]:
    result = dict(container)
    user_env = [dict(e) for e in container.get("env") or []]
    result_file = container.get("terminationMessagePath") or DEFAULT_TERMINATION_MESSAGE_PATH
    extra = [_env("CPWORKER_RESULT_FILE", result_file)]
    if not any(e.get("name") == "AWS_REGION" for e in user_env):
        extra.append(_env("AWS_REGION", region))
    # Ours first, so that the user's env may refer to them as $(CPWORKER_JOB_ID).
    result["env"] = [*operator_env, *extra, *user_env]
    result["volumeMounts"] = [*(container.get("volumeMounts") or []), *mounts]
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


@dataclass(frozen=True)
class PodArtifacts:
    """The artifact helper in a job's pod: where the artifacts live and what runs them."""

    artifacts: Artifacts
    image: str
    push: bool  # the job has output artifacts: the push sidecar uploads them
    grace_seconds: int
    resources: Mapping[ResourceKind, Mapping[str, str]]
    s3_endpoint_url: str | None

    def env(self) -> list[dict[str, str]]:
        """What every container of the pod gets."""
        return [
            _env(ENV_INPUT_DIR, self.artifacts.input_dir),
            _env(ENV_OUTPUT_DIR, self.artifacts.output_dir),
        ]

    def mounts(self) -> list[dict[str, Any]]:
        """One emptyDir, two subPaths: inputDir and outputDir may lie anywhere (apart)."""
        return [
            {
                "name": names.ARTIFACTS_VOLUME,
                "mountPath": self.artifacts.input_dir,
                "subPath": names.ARTIFACTS_INPUT_SUBPATH,
            },
            {
                "name": names.ARTIFACTS_VOLUME,
                "mountPath": self.artifacts.output_dir,
                "subPath": names.ARTIFACTS_OUTPUT_SUBPATH,
            },
        ]

    def helper_env(self) -> list[dict[str, str]]:
        """The helper's own settings (cpworker.artifacts.settings reads these names)."""
        limits = self.artifacts.limits
        env = [
            _env(HELPER_MAX_TOTAL_BYTES, str(limits.max_total_bytes)),
            _env(HELPER_MAX_FILES, str(limits.max_files)),
            _env(HELPER_MAX_COMPRESSION_RATIO, str(limits.max_compression_ratio)),
        ]
        if self.s3_endpoint_url:
            env.append(_env("AWS_ENDPOINT_URL_S3", self.s3_endpoint_url))
        return env


ENV_INPUT_DIR: Final = "CPWORKER_INPUT_DIR"
ENV_OUTPUT_DIR: Final = "CPWORKER_OUTPUT_DIR"
HELPER_MAX_TOTAL_BYTES: Final = "CPWORKER_ARTIFACTS_MAX_TOTAL_BYTES"
HELPER_MAX_FILES: Final = "CPWORKER_ARTIFACTS_MAX_FILES"
HELPER_MAX_COMPRESSION_RATIO: Final = "CPWORKER_ARTIFACTS_MAX_COMPRESSION_RATIO"
PULL_COMMAND: Final = ("cpworker", "artifacts", "pull")
PUSH_COMMAND: Final = ("cpworker", "artifacts", "push", "--wait-for-sigterm")


def pod_artifacts(
    spec: CustomActionWorkerSpec, job: Job, settings: OperatorSettings
) -> PodArtifacts | None:
    """The artifact helper this job's pod needs; None without artifacts or when disabled."""
    data = job.data
    if not spec.artifacts.enabled or not (data.input_artifacts or data.output_artifacts):
        return None
    return PodArtifacts(
        artifacts=spec.artifacts,
        image=settings.artifacts_image,
        push=bool(data.output_artifacts),
        grace_seconds=settings.artifacts_push_grace_seconds,
        resources=settings.artifacts_resources,
        s3_endpoint_url=settings.artifacts_s3_endpoint_url,
    )


def _run_as(pod_spec: Mapping[str, Any]) -> dict[str, Any]:
    """The user and group the helper runs as: the first regular container's (else the pod's,
    which applies anyway), so that the extracted inputs belong to the user's containers."""
    first = (pod_spec.get("containers") or [{}])[0]
    container = (first.get("securityContext") or {}) if isinstance(first, Mapping) else {}
    pod = pod_spec.get("securityContext") or {}
    chosen = {
        key: container[key] if key in container else pod.get(key)
        for key in ("runAsUser", "runAsGroup")
    }
    result: dict[str, Any] = {key: value for key, value in chosen.items() if value is not None}
    # An explicit root template keeps working (as _pod_security): the helper runs as root too.
    result["runAsNonRoot"] = chosen["runAsUser"] != 0
    return result


def _helper(
    name: str, command: tuple[str, ...], helper: PodArtifacts, pod_spec: Mapping[str, Any]
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,
        "image": helper.image,
        "command": list(command),
        "env": helper.helper_env(),
        "resources": {kind: dict(values) for kind, values in helper.resources.items()},
        # A helper killed before it wrote its report (OOM, SIGKILL) still says something.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        # Restricted Pod Security, whatever the template chose for its own containers: the
        # helper writes only into the artifacts volume and its termination message.
        "securityContext": {
            **_run_as(pod_spec),
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if name == names.PUSH_CONTAINER:
        # A native sidecar (Kubernetes >= 1.29): started before the user's init containers,
        # stopped after every other container has exited, so it uploads what they wrote.
        container["restartPolicy"] = "Always"
    return container


def _helpers(helper: PodArtifacts, pod_spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """[push, pull]: the push sidecar first, so that it is stopped last of all; and pull,
    which everything after it waits for, ends only once push is ready for SIGTERM (a sidecar
    counts as started as soon as its process exists: docs/architecture.md)."""
    if not helper.push:
        return [_helper(names.PULL_CONTAINER, PULL_COMMAND, helper, pod_spec)]
    return [
        _helper(names.PUSH_CONTAINER, PUSH_COMMAND, helper, pod_spec),
        _helper(names.PULL_CONTAINER, (*PULL_COMMAND, "--wait-for-push"), helper, pod_spec),
    ]


def _pod_template(
    template: Mapping[str, Any],
    labels: Mapping[str, str],
    job_name: str,
    operator_env: list[dict[str, str]],
    region: str,
    *,
    helper: PodArtifacts | None,
) -> dict[str, Any]:
    metadata = dict(template.get("metadata") or {})
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    user_pod = dict(template.get("spec") or {})
    pod_spec = dict(user_pod)
    pod_spec["restartPolicy"] = "Never"
    pod_spec["securityContext"] = _pod_security(pod_spec)
    mounts = [{"name": SECRET_VOLUME_NAME, "mountPath": MOUNT_PATH, "readOnly": True}]
    env = list(operator_env)
    if helper is not None:
        mounts += helper.mounts()
        env += helper.env()
        pod_spec["initContainers"] = [
            *_helpers(helper, user_pod),
            *(pod_spec.get("initContainers") or []),
        ]
        if helper.push:
            grace = pod_spec.get("terminationGracePeriodSeconds")
            current = grace if isinstance(grace, int) else DEFAULT_GRACE_SECONDS
            pod_spec["terminationGracePeriodSeconds"] = max(current, helper.grace_seconds)
    for key in ("initContainers", "containers"):
        if key in pod_spec:
            pod_spec[key] = [
                _with_operator_parts(c, env, region, mounts) for c in pod_spec[key] or []
            ]
    volumes: list[dict[str, Any]] = [
        {"name": SECRET_VOLUME_NAME, "secret": {"secretName": job_name, "defaultMode": 0o444}}
    ]
    if helper is not None:
        volumes.append({"name": names.ARTIFACTS_VOLUME, "emptyDir": {}})
    pod_spec["volumes"] = [*(pod_spec.get("volumes") or []), *volumes]
    return {"metadata": metadata, "spec": pod_spec}


def dropped_sidecars(job: Mapping[str, Any]) -> list[str]:
    """The operator's sidecars whose `restartPolicy: Always` the API server dropped.

    An API server without native sidecars (Kubernetes < 1.29, or the SidecarContainers gate
    off) drops the field silently (`dropDisabledFields`, pkg/api/pod/util.go), and the push
    container would then block as an ordinary init container until the Job's deadline.
    """
    pod_spec = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    return [
        str(container.get("name"))
        for container in pod_spec.get("initContainers") or []
        if isinstance(container, Mapping)
        and container.get("name") == names.PUSH_CONTAINER
        and container.get("restartPolicy") != "Always"
    ]


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
        names.ANNOTATION_CREDENTIALS_ISSUED_AT: timestamps.rfc3339(now),
    }
    optional = {
        names.ANNOTATION_ROLE_ARN: role_arn,
        names.ANNOTATION_CONTINUATION_OF: continuation_of,
        names.ANNOTATION_PIPELINE: context.pipeline_name,
        names.ANNOTATION_STAGE: context.stage.name,
        names.ANNOTATION_ACTION: context.action.name,
        names.ANNOTATION_PIPELINE_EXECUTION_ID: context.pipeline_execution_id,
    }
    annotations |= {key: value for key, value in optional.items() if value}
    return annotations


def effective_deadline(spec: CustomActionWorkerSpec, settings: OperatorSettings) -> int:
    """The Job's activeDeadlineSeconds: the template's, at most the operator's limit."""
    deadline = spec.job_template.spec.get("activeDeadlineSeconds")
    if not isinstance(deadline, int) or deadline > settings.default_active_deadline_seconds:
        return settings.default_active_deadline_seconds
    return deadline


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
    deadline = effective_deadline(spec, settings)
    operator_env = _operator_env(job, region, frozenset(secret_property_names))
    helper = pod_artifacts(spec, job, settings)
    job_spec = {
        **user_spec,
        "suspend": True,
        # One CodePipeline job is one pod at a time: a second one would run the job twice.
        "parallelism": 1,
        "completions": 1,
        "backoffLimit": user_spec.get("backoffLimit", 0),
        "podReplacementPolicy": POD_REPLACEMENT_POLICY,
        "activeDeadlineSeconds": deadline,
        # No TTL yet: a finished Job must outlive an operator outage until its result is
        # reported (reported_patch sets it), or the result would be lost with the Job.
        "template": _pod_template(
            user_spec.get("template") or {}, labels, job_name, operator_env, region, helper=helper
        ),
    }
    for field in ("selector", "manualSelector", "managedBy", "ttlSecondsAfterFinished"):
        job_spec.pop(field, None)
    annotations = job_annotations(
        job=job, worker_name=worker.name, region=region, role_arn=spec.role_arn, now=now
    )
    built = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name,
            "namespace": worker.namespace,
            "labels": {**template.metadata.labels, **labels},
            "annotations": {**template.metadata.annotations, **annotations},
            "ownerReferences": [
                names.controller_reference(names.API_VERSION, names.KIND, worker.name, worker.uid)
            ],
        },
        "spec": job_spec,
    }
    size = len(json.dumps(built))
    if size > MAX_JOB_BYTES:
        # Every container gets the job's configuration as environment variables.
        raise ManifestError(
            f"the Job would be {size} bytes, more than the {MAX_JOB_BYTES} an API server "
            "stores: the job's configuration is repeated in every container's environment "
            "(fewer containers in the template, or shorter configuration values)"
        )
    return built
