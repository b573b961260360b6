"""Can a worker's jobTemplate be used? Every problem with it, in words a user can act on. Pure.

A template must be a valid batch/v1 JobTemplateSpec (strict: unknown fields are problems too)
and must not set what the operator owns (jobmanifest.py builds those parts). The structure is
checked against schemas/job-batch-v1.json, Kubernetes' own strict schema shipped in the package
(tools/jobschema.py extracts it), so a broken template is refused with the same words wherever
the operator runs, before the API server refuses its Job.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

from cpworker import names
from cpworker.jobmanifest import (
    MOUNT_PATH,
    POD_REPLACEMENT_POLICY,
    RESERVED_CONTAINER_PREFIX,
    RESERVED_ENV_NAMES,
    RESERVED_ENV_PREFIX,
    RESERVED_VOLUME_PREFIX,
)
from cpworker.models import Artifacts, JobTemplate

if TYPE_CHECKING:
    from jsonschema.validators import Draft202012Validator

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


@functools.cache
def _job_validator() -> Draft202012Validator:
    """The strict batch/v1 Job validator, from the schema shipped in the package.

    schemas/job-batch-v1.json is kubernetes-validate's strict Job schema reduced to what a Job
    refers to (tools/jobschema.py; a test keeps it in step with the installed
    kubernetes-validate): the same check in development and in the operator's image, without
    kubernetes-validate (about 100 MiB) or the kubernetes client's models (about 40 MiB
    resident) at run time. Imported and built on first use: jsonschema with its referencing
    adds about 10 MiB resident, which an operator without workers does not need.
    """
    from jsonschema.validators import Draft202012Validator  # noqa: PLC0415 - see above

    text = (resources.files("cpworker") / "schemas" / "job-batch-v1.json").read_text("utf-8")
    return Draft202012Validator(json.loads(text))


def _json_path(path: Sequence[object]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out.lstrip(".")


def _structure_problems(spec: Mapping[str, Any]) -> list[str]:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x"}, "spec": spec}
    problems = []
    errors = sorted(_job_validator().iter_errors(job), key=lambda e: [str(p) for p in e.path])
    for error in errors:
        where = _json_path(list(error.absolute_path)) or "spec"
        problems.append(f"jobTemplate.{where}: {error.message}")
    return problems


def _containers(pod_spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found: list[Mapping[str, Any]] = []
    for key in ("initContainers", "containers"):
        items = pod_spec.get(key)
        if isinstance(items, list):
            found += [item for item in items if isinstance(item, Mapping)]
    return found


def _metadata_problems(
    metadata: object, where: str, allowed_annotations: frozenset[str] = frozenset()
) -> list[str]:
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
                if isinstance(key, str)
                and names.is_reserved_key(key)
                and not (kind == "annotations" and key in allowed_annotations)
            ]
    return problems


def _at_or_under(path: object, directory: str) -> bool:
    return isinstance(path, str) and (
        path.rstrip("/") == directory or path.startswith(directory + "/")
    )


def _is_mount_reserved(path: object) -> bool:
    return _at_or_under(path, MOUNT_PATH)


def _artifact_mount_problem(path: object, artifacts: Artifacts | None) -> str | None:
    """A mount where the operator mounts the artifacts (with them on): the API server would
    refuse the duplicate path, and a mount below would hide part of the artifacts."""
    if artifacts is None or not artifacts.enabled:
        return None
    for field, directory in (
        ("inputDir", artifacts.input_dir),
        ("outputDir", artifacts.output_dir),
    ):
        if _at_or_under(path, directory):
            return (
                f"{path} is at or under spec.artifacts.{field} ({directory}), where the "
                "operator mounts the job's artifacts: mount elsewhere, choose another "
                f"spec.artifacts.{field}, or set spec.artifacts.enabled: false"
            )
    return None


def _container_problems(
    container: Mapping[str, Any], where: str, artifacts: Artifacts | None
) -> list[str]:
    problems = []
    name = container.get("name")
    if isinstance(name, str) and name.startswith(RESERVED_CONTAINER_PREFIX):
        problems.append(
            f"{where}: container names starting with {RESERVED_CONTAINER_PREFIX} are reserved "
            "for the operator's artifact containers"
        )
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
        artifact_problem = _artifact_mount_problem(mount.get("mountPath"), artifacts)
        if artifact_problem is not None:
            problems.append(f"{where}.volumeMounts {artifact_problem}")
    return problems


def _pod_problems(pod_spec: Mapping[str, Any], artifacts: Artifacts | None) -> list[str]:
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
        problems += _container_problems(
            container, f"{where} container {container.get('name')}", artifacts
        )
    return problems


def _spec_problems(
    spec: Mapping[str, Any], max_deadline: int | None, artifacts: Artifacts | None
) -> list[str]:
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
    replacement = spec.get("podReplacementPolicy")
    if replacement is not None and replacement != POD_REPLACEMENT_POLICY:
        problems.append(
            f"jobTemplate.spec.podReplacementPolicy is {replacement}: must be "
            f"{POD_REPLACEMENT_POLICY} (or unset); with TerminatingOrFailed an evicted pod's "
            "replacement runs the job a second time while the evicted pod still runs"
        )
    deadline = spec.get("activeDeadlineSeconds")
    if isinstance(deadline, int) and max_deadline is not None and deadline > max_deadline:
        problems.append(
            f"jobTemplate.spec.activeDeadlineSeconds {deadline} exceeds the operator's limit "
            f"of {max_deadline} seconds"
        )
    template = spec.get("template")
    if isinstance(template, Mapping):
        # The pod template may name its classic sidecars (results.py: they end with the job).
        problems += _metadata_problems(
            template.get("metadata"),
            "jobTemplate.spec.template",
            allowed_annotations=frozenset({names.ANNOTATION_SIDECARS}),
        )
        pod_spec = template.get("spec")
        if isinstance(pod_spec, Mapping):
            problems += _pod_problems(pod_spec, artifacts)
    return problems


def validate_job_template(
    template: Mapping[str, Any] | JobTemplate,
    *,
    max_active_deadline_seconds: int | None = None,
    artifacts: Artifacts | None = None,
) -> list[str]:
    """Every problem with a worker's jobTemplate (empty list: it can be used).

    Checks that the template is a valid batch/v1 JobTemplateSpec (strict: unknown fields are
    problems too) and that it does not set anything the operator owns: name, namespace,
    ownerReferences, `cpworker.io/` labels/annotations, restartPolicy other than Never,
    suspend, selector, manualSelector, ttlSecondsAfterFinished, parallelism/completions other
    than 1, reserved container/volume/env/mount names, a mount at or under the artifact
    directories (when `artifacts` are on), or an activeDeadlineSeconds above the limit.
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
    problems += _spec_problems(spec, max_active_deadline_seconds, artifacts)
    problems += _structure_problems(spec)
    return problems[:_MAX_PROBLEMS]
