"""The resource types the stand-in serves: built-ins, plus those registered by CRDs."""

# The built-in table below is positional on purpose (group, version, plural, kind, namespaced,
# ...) so it reads as a table, like the real server's discovery output.
# ruff: noqa: FBT003

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, slots=True)
class PrinterColumn:
    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0
    format: str = ""


@dataclass(frozen=True, slots=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()
    # Kinds whose metadata.generation the API server maintains.
    has_generation: bool = False
    # Whether DELETE answers with the object (else a Status), as the real registry does.
    returns_deleted_object: bool = False
    columns: tuple[PrinterColumn, ...] = ()
    # For custom resources: the served version's openAPIV3Schema and CEL rules live here.
    schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    custom: bool = False
    # Another resource's storage this one is a view of (events.k8s.io Events are core Events).
    stored_as: tuple[str, str] | None = None
    verbs: tuple[str, ...] = ALL_VERBS

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_key(self) -> tuple[str, str]:
        """All versions of one resource share one storage."""
        return self.stored_as or (self.group, self.plural)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def has_status(self) -> bool:
        return "status" in self.subresources

    def discovery_entries(self) -> list[dict[str, Any]]:
        entry: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        entries = [entry]
        for sub in sorted(self.subresources):
            verbs = (
                ["get"]
                if sub == "log"
                else ["create"]
                if sub == "eviction"
                else ["get", "patch", "update"]
            )
            kind = "Pod" if sub == "log" else "Eviction" if sub == "eviction" else self.kind
            entries.append(
                {
                    "name": f"{self.plural}/{sub}",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": kind,
                    "verbs": verbs,
                }
            )
        return entries


def _col(name: str, json_path: str, type_: str = "string", priority: int = 0) -> PrinterColumn:
    return PrinterColumn(name=name, type=type_, json_path=json_path, priority=priority)


_AGE = _col("Age", ".metadata.creationTimestamp", "date")
_STATUS = frozenset({"status"})

BUILTINS: tuple[ResourceType, ...] = (
    ResourceType(
        "",
        "v1",
        "namespaces",
        "Namespace",
        False,
        ("ns",),
        (),
        _STATUS,
        returns_deleted_object=True,
        columns=(_col("Status", ".status.phase"), _AGE),
    ),
    ResourceType(
        "",
        "v1",
        "secrets",
        "Secret",
        True,
        columns=(_col("Type", ".type"), _AGE),
    ),
    ResourceType("", "v1", "configmaps", "ConfigMap", True, ("cm",), columns=(_AGE,)),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",), columns=(_AGE,)),
    ResourceType(
        "",
        "v1",
        "events",
        "Event",
        True,
        ("ev",),
        columns=(
            _col("Type", ".type"),
            _col("Reason", ".reason"),
            _col("Object", ".involvedObject.name"),
            _col("Message", ".message"),
        ),
    ),
    ResourceType(
        "",
        "v1",
        "pods",
        "Pod",
        True,
        ("po",),
        ("all",),
        frozenset({"status", "log", "eviction"}),
        returns_deleted_object=True,
        columns=(
            _col("Ready", "@pod-ready"),
            _col("Status", "@pod-status"),
            _col("Restarts", "@pod-restarts", "integer"),
            _AGE,
        ),
    ),
    ResourceType(
        "",
        "v1",
        "services",
        "Service",
        True,
        ("svc",),
        ("all",),
        _STATUS,
        returns_deleted_object=True,
        columns=(_col("Type", ".spec.type"), _AGE),
    ),
    ResourceType("", "v1", "endpoints", "Endpoints", True, ("ep",), columns=(_AGE,)),
    ResourceType(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        True,
        ("pvc",),
        subresources=_STATUS,
        columns=(_AGE,),
    ),
    ResourceType("", "v1", "nodes", "Node", False, ("no",), (), _STATUS, columns=(_AGE,)),
    ResourceType("", "v1", "resourcequotas", "ResourceQuota", True, ("quota",), (), _STATUS),
    ResourceType("", "v1", "limitranges", "LimitRange", True, ("limits",)),
    ResourceType(
        "batch",
        "v1",
        "jobs",
        "Job",
        True,
        (),
        ("all",),
        _STATUS,
        has_generation=True,
        returns_deleted_object=True,
        columns=(
            _col("Status", "@job-status"),
            _col("Completions", "@job-completions"),
            _col("Duration", "@job-duration"),
            _AGE,
        ),
    ),
    ResourceType(
        "batch",
        "v1",
        "cronjobs",
        "CronJob",
        True,
        ("cj",),
        ("all",),
        _STATUS,
        has_generation=True,
        columns=(_AGE,),
    ),
    ResourceType(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        True,
        ("deploy",),
        ("all",),
        frozenset({"status", "scale"}),
        has_generation=True,
        columns=(_col("Ready", ".status.readyReplicas", "integer"), _AGE),
    ),
    ResourceType(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        True,
        ("rs",),
        ("all",),
        _STATUS,
        has_generation=True,
        columns=(_AGE,),
    ),
    ResourceType(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        True,
        ("sts",),
        ("all",),
        _STATUS,
        has_generation=True,
        columns=(_AGE,),
    ),
    ResourceType(
        "apps",
        "v1",
        "daemonsets",
        "DaemonSet",
        True,
        ("ds",),
        ("all",),
        _STATUS,
        has_generation=True,
        columns=(_AGE,),
    ),
    ResourceType(
        "coordination.k8s.io",
        "v1",
        "leases",
        "Lease",
        True,
        columns=(_col("Holder", ".spec.holderIdentity"), _AGE),
    ),
    ResourceType(
        "events.k8s.io",
        "v1",
        "events",
        "Event",
        True,
        ("ev",),
        columns=(_col("Type", ".type"), _col("Reason", ".reason"), _col("Note", ".note")),
        stored_as=("", "events"),
    ),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        ("crd", "crds"),
        ("api-extensions",),
        _STATUS,
        has_generation=True,
        returns_deleted_object=True,
        columns=(_col("Created At", ".metadata.creationTimestamp"),),
    ),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role", True, columns=(_AGE,)),
    ResourceType(
        "rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True, columns=(_AGE,)
    ),
    ResourceType(
        "rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False, columns=(_AGE,)
    ),
    ResourceType(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        False,
        columns=(_AGE,),
    ),
    ResourceType(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        True,
        ("pdb",),
        (),
        _STATUS,
        has_generation=True,
        columns=(_AGE,),
    ),
    ResourceType(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        True,
        ("netpol",),
        has_generation=True,
        columns=(_AGE,),
    ),
    ResourceType(
        "scheduling.k8s.io",
        "v1",
        "priorityclasses",
        "PriorityClass",
        False,
        ("pc",),
        columns=(_AGE,),
    ),
    # Reviews are answered, never stored (server.py): `kubectl auth can-i`.
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        False,
        verbs=("create",),
    ),
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "subjectaccessreviews",
        "SubjectAccessReview",
        False,
        verbs=("create",),
    ),
)

# Group preference order for discovery (legacy core first, as the real server lists them).
PREFERRED_GROUP_ORDER = (
    "apps",
    "events.k8s.io",
    "batch",
    "policy",
    "rbac.authorization.k8s.io",
    "networking.k8s.io",
    "coordination.k8s.io",
    "scheduling.k8s.io",
    "apiextensions.k8s.io",
    "authorization.k8s.io",
)


class Registry:
    """Resource types by (group, version, plural); CRDs add and remove entries at runtime."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._crd_types: dict[str, list[ResourceType]] = {}
        for rtype in BUILTINS:
            self.add(rtype)

    def add(self, rtype: ResourceType) -> None:
        self._types[(rtype.group, rtype.version, rtype.plural)] = rtype

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def set_crd_types(self, crd_name: str, types: list[ResourceType]) -> None:
        self.remove_crd(crd_name)
        for rtype in types:
            self.add(rtype)
        self._crd_types[crd_name] = types

    def remove_crd(self, crd_name: str) -> list[ResourceType]:
        removed = self._crd_types.pop(crd_name, [])
        for rtype in removed:
            self._types.pop((rtype.group, rtype.version, rtype.plural), None)
        return removed

    def versions_of(self, group: str, plural: str) -> list[ResourceType]:
        return [t for t in self._types.values() if t.group == group and t.plural == plural]

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self._types.values() if t.group == group and t.version == version]

    def groups(self) -> dict[str, list[str]]:
        """group -> versions served, core group excluded, in discovery order."""
        found: dict[str, list[str]] = {}
        for rtype in self._types.values():
            if rtype.group and rtype.version not in found.setdefault(rtype.group, []):
                found[rtype.group].append(rtype.version)
        known = [g for g in PREFERRED_GROUP_ORDER if g in found]
        others = sorted(g for g in found if g not in PREFERRED_GROUP_ORDER)
        return {group: found[group] for group in known + others}

    def all_types(self) -> list[ResourceType]:
        return list(self._types.values())

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        for rtype in self._types.values():
            if rtype.api_version == api_version and rtype.kind == kind:
                return rtype
        return None
