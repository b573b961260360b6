"""Per-kind behaviour on create and update: defaults, validation and immutable fields,
modelled on the real registry strategies (only what our clients can observe)."""

from __future__ import annotations

import base64
import copy
import re
from typing import Any

from cpworker.sandbox.kube.errors import ApiError, invalid
from cpworker.sandbox.kube.resources import ResourceType

Obj = dict[str, Any]

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
SECRET_MAX_BYTES = 1024 * 1024
CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"


def _fail(rtype: ResourceType, name: str, path: str, message: str, reason: str) -> ApiError:
    return invalid(rtype.kind, rtype.group, name, [(reason, path, message)])


def validate_metadata(rtype: ResourceType, obj: Obj) -> None:
    meta = obj["metadata"]
    name = meta["name"]
    pattern, limit = (
        (_DNS_LABEL, 63) if rtype.plural in {"namespaces", "services"} else (_DNS_SUBDOMAIN, 253)
    )
    if rtype.plural not in {
        "events",
        "clusterroles",
        "clusterrolebindings",
        "roles",
        "rolebindings",
    } and (len(name) > limit or not pattern.match(name)):
        raise _fail(
            rtype,
            name,
            "metadata.name",
            f'Invalid value: "{name}": a lowercase RFC 1123 '
            f"{'label' if limit == 63 else 'subdomain'} must consist of lower case alphanumeric "
            "characters, '-' or '.', and must start and end with an alphanumeric character",
            "FieldValueInvalid",
        )
    for key, value in (meta.get("labels") or {}).items():
        if not isinstance(value, str):
            raise ApiError(400, "BadRequest", f"label {key!r} must be a string")
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            raise _fail(
                rtype,
                name,
                "metadata.labels",
                f'Invalid value: "{value}": '
                + (
                    "must be no more than 63 characters"
                    if len(value) > 63
                    else "a valid label must be an empty string or consist of alphanumeric "
                    "characters, '-', '_' or '.'"
                ),
                "FieldValueInvalid",
            )
        label_name = key.rsplit("/", 1)[-1]
        if len(label_name) > 63 or not _LABEL_NAME.match(label_name):
            raise _fail(
                rtype,
                name,
                "metadata.labels",
                f'Invalid value: "{key}": name part must consist of alphanumeric characters, '
                "'-', '_' or '.', and must be no more than 63 characters",
                "FieldValueInvalid",
            )
    for key, value in (meta.get("annotations") or {}).items():
        if not isinstance(value, str):
            raise ApiError(400, "BadRequest", f"annotation {key!r} must be a string")


def prepare_create(rtype: ResourceType, obj: Obj) -> None:
    """Defaults the API server fills in on create (status reset included)."""
    if rtype.has_status() and rtype.plural != "customresourcedefinitions":
        obj.pop("status", None)
    handler = _CREATE.get((rtype.group, rtype.plural))
    if handler:
        handler(rtype, obj)


def prepare_update(rtype: ResourceType, new: Obj, old: Obj) -> None:
    handler = _UPDATE.get((rtype.group, rtype.plural))
    if handler:
        handler(rtype, new, old)


def _namespace(rtype: ResourceType, obj: Obj) -> None:  # noqa: ARG001 - one signature for every kind strategy
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj["status"] = {"phase": "Active"}
    labels = obj["metadata"].setdefault("labels", {})
    labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]


def _secret(rtype: ResourceType, obj: Obj) -> None:
    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None) or {}
    if string_data:
        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
    size = 0
    for key, value in (obj.get("data") or {}).items():
        if not _CONFIG_KEY.match(key):
            raise _fail(
                rtype,
                obj["metadata"]["name"],
                f"data[{key}]",
                f'Invalid value: "{key}": a valid config key must consist of '
                "alphanumeric characters, '-', '_' or '.'",
                "FieldValueInvalid",
            )
        if not isinstance(value, str):
            raise ApiError(400, "BadRequest", f"secret data {key!r} must be base64 text")
        try:
            size += len(base64.b64decode(value, validate=True))
        except ValueError as exc:
            raise ApiError(400, "BadRequest", f"illegal base64 data in secret key {key!r}") from exc
    if size > SECRET_MAX_BYTES:
        raise _fail(
            rtype,
            obj["metadata"]["name"],
            "data",
            f"Too long: must have at most {SECRET_MAX_BYTES} bytes",
            "FieldValueTooLong",
        )


def _secret_update(rtype: ResourceType, new: Obj, old: Obj) -> None:
    if old.get("immutable") and (new.get("data") != old.get("data")):
        raise _fail(
            rtype,
            new["metadata"]["name"],
            "data",
            "Forbidden: field is immutable when `immutable` is set",
            "FieldValueForbidden",
        )
    _secret(rtype, new)


def default_pod_spec(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    if spec.get("serviceAccount") and not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = spec["serviceAccount"]
    spec.setdefault("serviceAccountName", "default")
    spec["serviceAccount"] = spec["serviceAccountName"]
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        image = str(container.get("image", ""))
        latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("resources", {})


_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")


def _container_causes(container: Obj, where: str) -> list[tuple[str, str, str]]:
    causes: list[tuple[str, str, str]] = []
    for index, variable in enumerate(container.get("env") or []):
        name = str(variable.get("name", ""))
        if not _ENV_NAME.match(name):
            causes.append(
                (
                    "FieldValueInvalid",
                    f"{where}.env[{index}].name",
                    (
                        f'Invalid value: "{name}": a valid environment variable name must '
                        "consist of alphabetic characters, digits, '_', '-', or '.', and "
                        "must not start with a digit"
                    ),
                )
            )
    for kind in ("limits", "requests"):
        for resource, amount in ((container.get("resources") or {}).get(kind) or {}).items():
            if not QUANTITY.match(str(amount)):
                causes.append(
                    (
                        "FieldValueInvalid",
                        f"{where}.resources.{kind}[{resource}]",
                        (f'Invalid value: "{amount}": must match the regex {QUANTITY.pattern}'),
                    )
                )
    for index, port in enumerate(container.get("ports") or []):
        number = port.get("containerPort")
        if not isinstance(number, int) or not 0 < number < 65536:
            causes.append(
                (
                    "FieldValueInvalid",
                    f"{where}.ports[{index}].containerPort",
                    f"Invalid value: {number}: must be between 1 and 65535, inclusive",
                )
            )
    return causes


def pod_spec_causes(spec: Obj, path: str) -> list[tuple[str, str, str]]:
    """The API server's pod-spec rules our clients can trip over: container and volume names
    (DNS labels, unique), mounts of volumes that exist, an image."""
    causes: list[tuple[str, str, str]] = []
    volumes: set[str] = set()
    for index, volume in enumerate(spec.get("volumes") or []):
        name = str(volume.get("name", ""))
        where = f"{path}.volumes[{index}].name"
        if name in volumes:
            causes.append(("FieldValueDuplicate", where, f'Duplicate value: "{name}"'))
        elif len(name) > 63 or not _DNS_LABEL.match(name):
            causes.append(
                (
                    "FieldValueInvalid",
                    where,
                    (
                        f'Invalid value: "{name}": a lowercase '
                        "RFC 1123 label must consist of lower case alphanumeric characters "
                        "or '-'"
                    ),
                )
            )
        volumes.add(name)
    names: set[str] = set()
    for group in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(group) or []):
            where = f"{path}.{group}[{index}]"
            name = str(container.get("name", ""))
            if name in names:
                causes.append(
                    ("FieldValueDuplicate", f"{where}.name", f'Duplicate value: "{name}"')
                )
            elif len(name) > 63 or not _DNS_LABEL.match(name):
                causes.append(
                    (
                        "FieldValueInvalid",
                        f"{where}.name",
                        (
                            f'Invalid value: "{name}": a lowercase RFC 1123 label must '
                            "consist of lower case alphanumeric characters or '-'"
                        ),
                    )
                )
            names.add(name)
            if not container.get("image"):
                causes.append(("FieldValueRequired", f"{where}.image", "Required value"))
            causes += _container_causes(container, where)
            for mount_index, mount in enumerate(container.get("volumeMounts") or []):
                if mount.get("name") not in volumes:
                    causes.append(
                        (
                            "FieldValueNotFound",
                            f"{where}.volumeMounts[{mount_index}].name",
                            f'Not found: "{mount.get("name")}"',
                        )
                    )
    return causes


def _pod(rtype: ResourceType, obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    if not spec.get("containers"):
        raise _fail(
            rtype,
            obj["metadata"]["name"],
            "spec.containers",
            "Required value",
            "FieldValueRequired",
        )
    causes = pod_spec_causes(spec, "spec")
    if causes:
        raise invalid(rtype.kind, rtype.group, obj["metadata"]["name"], causes)
    default_pod_spec(spec)
    obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}


def _job(rtype: ResourceType, obj: Obj) -> None:
    meta, spec = obj["metadata"], obj.setdefault("spec", {})
    name = meta["name"]
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    spec.setdefault("manualSelector", False)
    template = spec.get("template")
    if not isinstance(template, dict) or not isinstance(template.get("spec"), dict):
        raise _fail(rtype, name, "spec.template.spec", "Required value", "FieldValueRequired")
    if template["spec"].get("restartPolicy") not in {"Never", "OnFailure"}:
        raise _fail(
            rtype,
            name,
            "spec.template.spec.restartPolicy",
            f'Unsupported value: "{template["spec"].get("restartPolicy", "Always")}": '
            'supported values: "OnFailure", "Never"',
            "FieldValueNotSupported",
        )
    if not template["spec"].get("containers"):
        raise _fail(
            rtype, name, "spec.template.spec.containers", "Required value", "FieldValueRequired"
        )
    uid = meta["uid"]
    if not spec["manualSelector"]:
        spec["selector"] = {"matchLabels": {CONTROLLER_UID: uid}}
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        labels.update(
            {CONTROLLER_UID: uid, JOB_NAME: name, "controller-uid": uid, "job-name": name}
        )
    causes = pod_spec_causes(template["spec"], "spec.template.spec")
    for key, value in ((template.get("metadata") or {}).get("labels") or {}).items():
        if len(str(value)) > 63 or not _LABEL_VALUE.match(str(value)):
            causes.append(
                (
                    "FieldValueInvalid",
                    "spec.template.labels",
                    f'Invalid value: "{value}": must be no more than 63 characters'
                    if len(str(value)) > 63
                    else f'Invalid value: "{value}" ({key})',
                )
            )
    if causes:
        raise invalid(rtype.kind, rtype.group, name, causes)
    default_pod_spec(template["spec"])


def _job_update(rtype: ResourceType, new: Obj, old: Obj) -> None:
    old_spec, new_spec = old.get("spec", {}), new.get("spec", {})
    name = new["metadata"]["name"]
    for key in ("selector", "completionMode", "manualSelector"):
        if key in new_spec and new_spec.get(key) != old_spec.get(key):
            raise _fail(
                rtype, name, f"spec.{key}", "Invalid value: field is immutable", "FieldValueInvalid"
            )
    new_template = new_spec.get("template")
    if new_template is not None:
        default_pod_spec(new_template.setdefault("spec", {}))
    if new_template is not None and new_template != _mutable_view(old, new_template):
        raise _fail(
            rtype, name, "spec.template", "Invalid value: field is immutable", "FieldValueInvalid"
        )


def _mutable_view(old: Obj, new_template: Obj) -> Obj:
    """The old template with what may change taken from the new one: for a Job suspended
    that never started, only scheduling directives (nodeSelector, tolerations, node
    affinity, schedulingGates), labels and annotations (`pkg/apis/batch/validation/
    validation.go` validatePodTemplateUpdate, `pkg/registry/batch/job/strategy.go`
    AllowMutableSchedulingDirectives); otherwise nothing."""
    old_template: Obj = copy.deepcopy(old.get("spec", {}).get("template") or {})
    never_started = old.get("spec", {}).get("suspend") and not (old.get("status") or {}).get(
        "startTime"
    )
    if not never_started:
        return old_template
    old_pod, new_pod = old_template.setdefault("spec", {}), new_template.get("spec") or {}
    for key in ("nodeSelector", "tolerations", "schedulingGates"):
        if key in new_pod:
            old_pod[key] = new_pod[key]
        else:
            old_pod.pop(key, None)
    node_affinity = (new_pod.get("affinity") or {}).get("nodeAffinity")
    affinity = {k: v for k, v in (old_pod.get("affinity") or {}).items() if k != "nodeAffinity"}
    if node_affinity is not None:
        affinity["nodeAffinity"] = node_affinity
    if affinity:
        old_pod["affinity"] = affinity
    else:
        old_pod.pop("affinity", None)
    old_meta = old_template.setdefault("metadata", {})
    new_meta = new_template.get("metadata") or {}
    for key in ("labels", "annotations"):
        if key in new_meta:
            old_meta[key] = new_meta[key]
        else:
            old_meta.pop(key, None)
    if not old_meta and "metadata" not in new_template:
        del old_template["metadata"]
    return old_template


def _service(rtype: ResourceType, obj: Obj) -> None:  # noqa: ARG001 - one signature for every kind strategy
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec.get("clusterIP") != "None":
        octets = sum(ord(c) for c in obj["metadata"]["uid"])
        spec["clusterIP"] = f"10.96.{octets % 250}.{(octets // 250) % 250 + 2}"
        spec["clusterIPs"] = [spec["clusterIP"]]


_CREATE = {
    ("", "namespaces"): _namespace,
    ("", "secrets"): _secret,
    ("", "pods"): _pod,
    ("", "services"): _service,
    ("batch", "jobs"): _job,
}
_UPDATE = {
    ("", "secrets"): _secret_update,
    ("batch", "jobs"): _job_update,
}
