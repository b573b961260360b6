"""The admission chain a real API server runs on a create or update, in its order: LimitRanger
(defaults, then min/max), PodSecurity, validating webhooks, ResourceQuota last — plus the
opt-in OwnerReferencesPermissionEnforcement. Every refusal answers as the real plugin words it.

- LimitRanger: `plugin/pkg/admission/limitranger/admission.go` (mergeContainerResources,
  minConstraint/maxConstraint): `pods "x" is forbidden: maximum cpu usage per Container is 1,
  but limit is 2`.
- PodSecurity: `staging/src/k8s.io/pod-security-admission` (admission/admission.go,
  policy/check_*.go), from the namespace label `pod-security.kubernetes.io/enforce`:
  `violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (...)`. The
  checks of the baseline and restricted levels our pods can trip over are modelled.
- Validating webhooks: `staging/src/k8s.io/apiserver/pkg/admission/plugin/webhook/errors`
  ToStatusErr: `admission webhook "NAME" denied the request: MESSAGE`, code >= 400. Configured
  with `DenyingWebhook`, no HTTP server involved.
- ResourceQuota: `staging/src/k8s.io/apiserver/pkg/admission/plugin/resourcequota/controller.go`
  checkRequest: `exceeded quota: q, requested: pods=1, used: pods=1, limited: pods=1`, and the
  pod evaluator's `failed quota: q: must specify requests.cpu for: main`
  (`pkg/quota/v1/evaluator/core/pods.go`). Usage is counted live from the store (as a quota
  controller that is never behind): pods that are not terminal, objects by kind for `count/*`.
- OwnerReferencesPermissionEnforcement (`plugin/pkg/admission/gc/gc_admission.go`): changing
  ownerReferences needs `delete` on the object; a new `blockOwnerDeletion: true` needs `update`
  on the owner's `finalizers` subresource. Off by default, as in kube-apiserver (it is not in
  the default plugin set; OpenShift enables it); only for RBAC-checked identities.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from cpworker.sandbox.kube import quantity, rbac
from cpworker.sandbox.kube.errors import ApiError
from cpworker.sandbox.kube.store import Store

Obj = dict[str, Any]
# The identity of the request being served, for the plugins that authorize (set by the HTTP
# layer around each call; controllers run with none).
REQUEST_IDENTITY: contextvars.ContextVar[rbac.Identity | None] = contextvars.ContextVar(
    "identity", default=None
)
Authorizer = Callable[[rbac.Identity, rbac.Request], bool]
# (apiVersion, kind) -> (group, plural), for owner references
KindResolver = Callable[[str, str], tuple[str, str] | None]
ENFORCE = "pod-security.kubernetes.io/enforce"
ENFORCE_VERSION = "pod-security.kubernetes.io/enforce-version"
# capabilities the baseline level allows to add (policy/check_capabilities_baseline.go)
_BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
# volume types the restricted level allows (policy/check_restrictedVolumes.go)
_RESTRICTED_VOLUMES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
        "name",
    }
)


@dataclass(frozen=True, slots=True)
class DenyingWebhook:
    """A validating admission webhook that refuses what it matches."""

    name: str  # e.g. "validate.policy.example.com"
    message: str
    resources: tuple[str, ...] = ("pods",)  # plurals
    operations: tuple[str, ...] = ("CREATE",)
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    code: int = 403


@dataclass(frozen=True, slots=True)
class AdmissionConfig:
    owner_references_permission_enforcement: bool = False
    webhooks: tuple[DenyingWebhook, ...] = ()


def forbidden(plural: str, group: str, name: str, why: str) -> ApiError:
    """admission.NewForbidden: `<resource> "<name>" is forbidden: <why>`, 403."""
    qualified = f"{plural}.{group}" if group else plural
    return ApiError(
        403,
        "Forbidden",
        f'{qualified} "{name}" is forbidden: {why}',
        details={"name": name, "group": group, "kind": plural},
    )


@dataclass(slots=True)
class Admission:
    store: Store
    authorize: Authorizer
    resolve_kind: KindResolver
    config: AdmissionConfig = field(default_factory=AdmissionConfig)

    def admit(
        self, group: str, plural: str, obj: Obj, old: Obj | None, *, subresource: str | None
    ) -> None:
        """Raise the first refusal; may mutate `obj` (LimitRange defaults)."""
        meta = obj["metadata"]
        namespace, name = meta.get("namespace", ""), meta.get("name", "")
        identity = REQUEST_IDENTITY.get()
        if (
            self.config.owner_references_permission_enforcement
            and identity is not None
            and not identity.unrestricted
            and not (plural == "pods" and subresource == "status")
        ):
            self._owner_references(identity, group, plural, obj, old)
        if subresource:
            return
        operation = "CREATE" if old is None else "UPDATE"
        if (group, plural) == ("", "pods") and old is None:
            ranges = list(self.store.iterate(("", "limitranges"), namespace))
            why = limit_range_refusal(obj, ranges)
            if why:
                raise forbidden(plural, group, name, why)
            ns = self.store.get(("", "namespaces"), "", namespace) or {}
            why = pod_security_refusal(obj, (ns.get("metadata") or {}).get("labels") or {})
            if why:
                raise forbidden(plural, group, name, why)
        for hook in self.config.webhooks:
            if (
                plural in hook.resources
                and operation in hook.operations
                and (not hook.namespaces or namespace in hook.namespaces)
            ):
                raise ApiError(
                    max(hook.code, 400),
                    "",
                    f'admission webhook "{hook.name}" denied the request: {hook.message}',
                )
        if old is None:
            quotas = list(self.store.iterate(("", "resourcequotas"), namespace))
            if quotas:
                why = quota_refusal(group, plural, obj, quotas, self._usage(namespace))
                if why:
                    raise forbidden(plural, group, name, why)

    def _usage(self, namespace: str) -> Callable[[str], Fraction]:
        def used(resource: str) -> Fraction:
            return usage_of(resource, self.store, namespace)

        return used

    def _owner_references(
        self, identity: rbac.Identity, group: str, plural: str, obj: Obj, old: Obj | None
    ) -> None:
        meta = obj["metadata"]
        refs = list(meta.get("ownerReferences") or [])
        old_refs = list(((old or {}).get("metadata") or {}).get("ownerReferences") or [])
        if (old is None and not refs) or (old is not None and refs == old_refs):
            return
        namespace, name = meta.get("namespace") or None, meta.get("name", "")
        delete = rbac.Request("delete", group, plural, namespace, name)
        if not self.authorize(identity, delete):
            raise forbidden(
                plural,
                group,
                name,
                "cannot set an ownerRef on a resource you can't delete: , <nil>",
            )
        was_blocking = {r.get("uid") for r in old_refs if r.get("blockOwnerDeletion")}
        for ref in refs:
            if not ref.get("blockOwnerDeletion") or ref.get("uid") in was_blocking:
                continue
            resolved = self.resolve_kind(str(ref.get("apiVersion", "")), str(ref.get("kind", "")))
            if resolved is None:
                raise forbidden(
                    plural,
                    group,
                    name,
                    "cannot set blockOwnerDeletion in this case because cannot find RESTMapping "
                    f"for APIVersion {ref.get('apiVersion')} Kind {ref.get('kind')}: , <nil>",
                )
            owner_group, owner_plural = resolved
            update = rbac.Request(
                "update", owner_group, f"{owner_plural}/finalizers", namespace, ref.get("name")
            )
            if not self.authorize(identity, update):
                raise forbidden(
                    plural,
                    group,
                    name,
                    "cannot set blockOwnerDeletion if an ownerReference refers to a resource "
                    "you can't set finalizers on: , <nil>",
                )


# -- LimitRanger -----------------------------------------------------------------------------
def _containers(pod: Obj) -> list[Obj]:
    spec = pod.get("spec") or {}
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def limit_range_refusal(pod: Obj, ranges: Iterable[Obj]) -> str:
    """Apply Container defaults to `pod` in place; answer the min/max refusal, or ''."""
    errors: list[str] = []
    for limit_range in ranges:
        for item in (limit_range.get("spec") or {}).get("limits") or []:
            if item.get("type") != "Container":
                continue
            for container in _containers(pod):
                resources = container.setdefault("resources", {})
                limits = resources.setdefault("limits", {})
                requests = resources.setdefault("requests", {})
                for resource, value in (item.get("default") or {}).items():
                    limits.setdefault(resource, value)
                for resource, value in (item.get("defaultRequest") or {}).items():
                    requests.setdefault(resource, limits.get(resource, value))
                for resource, value in limits.items():
                    requests.setdefault(resource, value)  # a limit alone sets the request
                for key in ("limits", "requests"):
                    if not resources[key]:
                        del resources[key]
                errors += _min_max(item, requests, limits)
    if not errors:
        return ""
    return errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"


def _min_max(item: Obj, requests: Obj, limits: Obj) -> list[str]:
    errors = []
    for resource, enforced in (item.get("min") or {}).items():
        if resource not in requests:
            errors.append(
                f"minimum {resource} usage per Container is {enforced}.  No request is specified"
            )
        elif quantity.parse(requests[resource]) < quantity.parse(enforced):
            errors.append(
                f"minimum {resource} usage per Container is {enforced}, but request is "
                f"{requests[resource]}"
            )
    for resource, enforced in (item.get("max") or {}).items():
        if resource not in limits:
            errors.append(
                f"maximum {resource} usage per Container is {enforced}.  No limit is specified"
            )
        elif quantity.parse(limits[resource]) > quantity.parse(enforced):
            errors.append(
                f"maximum {resource} usage per Container is {enforced}, but limit is "
                f"{limits[resource]}"
            )
    return errors


# -- PodSecurity ------------------------------------------------------------------------------
def _named(names: list[str], singular: str = "container") -> str:
    quoted = ", ".join(f'"{n}"' for n in names)
    return f"{singular} {quoted}" if len(names) == 1 else f"{singular}s {quoted}"


def _baseline(pod: Obj) -> list[str]:
    spec = pod.get("spec") or {}
    found = []
    privileged = [
        c["name"]
        for c in _containers(pod)
        if (c.get("securityContext") or {}).get("privileged") is True
    ]
    if privileged:
        found.append(
            f"privileged ({_named(privileged)} must not set securityContext.privileged=true)"
        )
    hosts = [f"{key}=true" for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key)]
    if hosts:
        found.append(f"host namespaces ({', '.join(hosts)})")
    host_paths = [v["name"] for v in spec.get("volumes") or [] if "hostPath" in v]
    if host_paths:
        found.append(f"hostPath volumes ({_named(host_paths, 'volume')})")
    for container in _containers(pod):
        added = ((container.get("securityContext") or {}).get("capabilities") or {}).get("add")
        extra = [c for c in added or [] if c not in _BASELINE_CAPABILITIES]
        if extra:
            listed = ", ".join(f'"{c}"' for c in extra)
            found.append(
                f'non-default capabilities (container "{container["name"]}" must not include '
                f"{listed} in securityContext.capabilities.add)"
            )
        ports = [p["hostPort"] for p in container.get("ports") or [] if p.get("hostPort")]
        if ports:
            found.append(
                f'hostPort (container "{container["name"]}" uses hostPort '
                f"{', '.join(str(p) for p in ports)})"
            )
    return found


def _restricted(pod: Obj) -> list[str]:
    spec = pod.get("spec") or {}
    pod_context = spec.get("securityContext") or {}
    containers = _containers(pod)
    found = []
    volumes = [v["name"] for v in spec.get("volumes") or [] if not set(v) <= _RESTRICTED_VOLUMES]
    if volumes:
        found.append(f"restricted volume types ({_named(volumes, 'volume')})")
    escalating = [
        c["name"]
        for c in containers
        if (c.get("securityContext") or {}).get("allowPrivilegeEscalation") is not False
    ]
    if escalating:
        found.append(
            f"allowPrivilegeEscalation != false ({_named(escalating)} must set "
            "securityContext.allowPrivilegeEscalation=false)"
        )
    undropped = [
        c["name"]
        for c in containers
        if "ALL"
        not in (((c.get("securityContext") or {}).get("capabilities") or {}).get("drop") or [])
    ]
    if undropped:
        found.append(
            f"unrestricted capabilities ({_named(undropped)} must set "
            'securityContext.capabilities.drop=["ALL"])'
        )
    rooted = [
        c["name"]
        for c in containers
        if (c.get("securityContext") or {}).get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        is not True
    ]
    if rooted:
        found.append(
            f"runAsNonRoot != true (pod or {_named(rooted)} must set "
            "securityContext.runAsNonRoot=true)"
        )
    unconfined = [
        c["name"]
        for c in containers
        if (
            ((c.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
            or (pod_context.get("seccompProfile") or {}).get("type")
        )
        not in {"RuntimeDefault", "Localhost"}
    ]
    if unconfined:
        found.append(
            f"seccompProfile (pod or {_named(unconfined)} must set "
            'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
        )
    return found


def pod_security_refusal(pod: Obj, namespace_labels: dict[str, str]) -> str:
    level = namespace_labels.get(ENFORCE, "privileged")
    if level not in {"baseline", "restricted"}:
        return ""
    found = _baseline(pod) + (_restricted(pod) if level == "restricted" else [])
    if not found:
        return ""
    version = namespace_labels.get(ENFORCE_VERSION, "latest")
    return f'violates PodSecurity "{level}:{version}": {", ".join(found)}'


# -- ResourceQuota ----------------------------------------------------------------------------
_COUNTED = {
    ("", "pods"): ("pods", "count/pods"),
    ("", "secrets"): ("secrets", "count/secrets"),
    ("", "configmaps"): ("configmaps", "count/configmaps"),
    ("", "services"): ("services", "count/services"),
    ("", "persistentvolumeclaims"): ("persistentvolumeclaims", "count/persistentvolumeclaims"),
    ("batch", "jobs"): ("count/jobs.batch",),
}
_COMPUTE = ("requests.cpu", "requests.memory", "limits.cpu", "limits.memory", "cpu", "memory")


def _pod_compute(pod: Obj, resource: str) -> Fraction:
    """A pod's usage of one compute resource: the sum over its containers (init containers:
    the largest, as the pod evaluator's max(init, sum(containers)) does)."""
    kind, _, name = resource.rpartition(".")
    key = "limits" if kind == "limits" else "requests"

    def amount(container: Obj) -> Fraction:
        value = ((container.get("resources") or {}).get(key) or {}).get(name)
        return quantity.parse(value) if value is not None else Fraction(0)

    spec = pod.get("spec") or {}
    regular = sum((amount(c) for c in spec.get("containers") or []), Fraction(0))
    init = max((amount(c) for c in spec.get("initContainers") or []), default=Fraction(0))
    return max(regular, init)


def _counts(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") not in {"Succeeded", "Failed"}


def usage_of(resource: str, store: Store, namespace: str) -> Fraction:
    for (group, plural), names in _COUNTED.items():
        if resource in names:
            objects = store.iterate((group, plural), namespace)
            if plural == "pods":
                return Fraction(sum(1 for p in objects if _counts(p)))
            return Fraction(sum(1 for _ in objects))
    if resource in _COMPUTE:
        return sum(
            (
                _pod_compute(p, resource)
                for p in store.iterate(("", "pods"), namespace)
                if _counts(p)
            ),
            Fraction(0),
        )
    return Fraction(0)


def _requested(group: str, plural: str, obj: Obj, resource: str) -> Fraction:
    if resource in _COUNTED.get((group, plural), ()):
        return Fraction(1)
    if (group, plural) == ("", "pods") and resource in _COMPUTE:
        return _pod_compute(obj, resource)
    return Fraction(0)


def _pretty(values: dict[str, Fraction]) -> str:
    return ",".join(
        f"{k}={quantity.format_quantity(v, quantity.is_binary(k))}"
        for k, v in sorted(values.items())
    )


def quota_refusal(
    group: str, plural: str, obj: Obj, quotas: Iterable[Obj], used: Callable[[str], Fraction]
) -> str:
    for quota in sorted(quotas, key=lambda q: q["metadata"]["name"]):
        name = quota["metadata"]["name"]
        hard = {
            k: quantity.parse(v) for k, v in ((quota.get("spec") or {}).get("hard") or {}).items()
        }
        if (group, plural) == ("", "pods"):
            missing = _missing_compute(obj, hard)
            if missing:
                return f"failed quota: {name}: must specify {missing}"
        requested = {k: amount for k in hard if (amount := _requested(group, plural, obj, k)) != 0}
        current = {k: used(k) for k in requested}
        exceeded = [k for k in requested if current[k] + requested[k] > hard[k]]
        if exceeded:
            return (
                f"exceeded quota: {name}, requested: {_pretty({k: requested[k] for k in exceeded})}"
                f", used: {_pretty({k: current[k] for k in exceeded})}"
                f", limited: {_pretty({k: hard[k] for k in exceeded})}"
            )
    return ""


def _missing_compute(pod: Obj, hard: dict[str, Fraction]) -> str:
    """The pod evaluator's constraint: a quota on cpu/memory needs every container to say."""
    missing: dict[str, list[str]] = {}
    for resource in sorted(set(hard) & set(_COMPUTE)):
        kind, _, name = resource.rpartition(".")
        key = "limits" if kind == "limits" else "requests"
        for container in _containers(pod):
            if name not in ((container.get("resources") or {}).get(key) or {}):
                missing.setdefault(resource, []).append(container["name"])
    return "; ".join(f"{r} for: {','.join(sorted(names))}" for r, names in missing.items())
