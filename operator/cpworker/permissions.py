"""Which Kubernetes permissions does the operator need? One table, for `cpworker check`.

The chart's RBAC (helm/cpworker/templates/_helpers.tpl) grants exactly these, and the tests
hold all three together: the chart covers this table, the table in docs/operator-runtime.md
lists it, and the operator's recorded API calls need nothing more
(tests/integration/helm/test_rbac_audit.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

from cpworker import names


class Needed(Enum):
    """When a permission is needed."""

    ALWAYS = "always"
    NAMESPACED_MODE = "namespaced mode"  # the operator serves a list of namespaces
    PEERING_CLUSTER_WIDE = "peering, cluster-wide"
    PEERING_NAMESPACED = "peering, namespaced mode"


@dataclass(frozen=True)
class Permission:
    """Verbs on one resource (`resource/subresource` for a subresource)."""

    group: str
    resource: str
    verbs: tuple[str, ...]
    why: str
    cluster_scoped: bool = False  # granted cluster-wide in every mode
    needed: Needed = Needed.ALWAYS

    @property
    def subresource(self) -> str:
        return self.resource.partition("/")[2]

    @property
    def plural(self) -> str:
        return self.resource.partition("/")[0]

    def applies(self, *, namespaced: bool, peering: bool) -> bool:
        return {
            Needed.ALWAYS: True,
            Needed.NAMESPACED_MODE: namespaced,
            Needed.PEERING_CLUSTER_WIDE: peering and not namespaced,
            Needed.PEERING_NAMESPACED: peering and namespaced,
        }[self.needed]


PERMISSIONS: Final = (
    Permission(
        names.GROUP,
        names.PLURAL,
        ("get", "list", "watch", "patch"),
        "kopf handlers, finalizer, progress annotations",
    ),
    Permission(names.GROUP, f"{names.PLURAL}/status", ("patch",), "conditions, counters"),
    # No call uses these: OwnerReferencesPermissionEnforcement (on in OpenShift) checks them
    # when an object is created with `blockOwnerDeletion: true` on its owner reference
    # (plugin/pkg/admission/gc/gc_admission.go): each Job's to its worker, each Secret's to
    # its Job. Without them such a cluster refuses every Job with 403.
    Permission(
        names.GROUP,
        f"{names.PLURAL}/finalizers",
        ("update",),
        "owner references that block deletion: each Job's to its worker",
    ),
    Permission(
        "batch",
        "jobs",
        ("get", "list", "watch", "create", "patch", "delete"),
        "one Job per CodePipeline job",
    ),
    Permission(
        "batch",
        "jobs/finalizers",
        ("update",),
        "owner references that block deletion: each Secret's to its Job",
    ),
    Permission(
        "", "pods", ("list", "watch"), "exit codes, termination messages, pods that never start"
    ),
    Permission(
        "",
        "secrets",
        ("get", "create", "patch", "delete"),
        "the job's credentials and secret configuration (by name only: no list)",
    ),
    Permission(
        "",
        "events",
        ("create", "list"),
        "JobDispatched, JobSucceeded, JobFailed, ...; a Job's FailedCreate events (why it has "
        "no pod: quota, admission)",
    ),
    Permission(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        ("list", "watch"),
        "kopf's resource discovery",
        cluster_scoped=True,
    ),
    Permission(
        "",
        "namespaces",
        ("list", "watch"),
        "kopf notices when a served namespace appears",
        cluster_scoped=True,
        needed=Needed.NAMESPACED_MODE,
    ),
    Permission(
        "kopf.dev",
        "clusterkopfpeerings",
        ("list", "watch", "patch"),
        "peering keep-alives (--peering)",
        cluster_scoped=True,
        needed=Needed.PEERING_CLUSTER_WIDE,
    ),
    Permission(
        "kopf.dev",
        "kopfpeerings",
        ("list", "watch", "patch"),
        "peering keep-alives per served namespace (--peering)",
        needed=Needed.PEERING_NAMESPACED,
    ),
)


@dataclass(frozen=True, order=True)
class Access:
    """One verb on one resource in one namespace ("" = cluster-wide or every namespace)."""

    verb: str
    group: str
    resource: str
    namespace: str = ""

    def __str__(self) -> str:
        where = f"in namespace {self.namespace}" if self.namespace else "cluster-wide"
        return f"{self.verb} {self.group or 'core'}/{self.resource} {where}"


def required_access(namespaces: tuple[str, ...] = (), *, peering: bool = False) -> list[Access]:
    """Every (verb, resource, namespace) the operator needs when it serves `namespaces`
    (empty: every namespace, the ClusterRole mode)."""
    namespaced = bool(namespaces)
    wanted = []
    for permission in PERMISSIONS:
        if not permission.applies(namespaced=namespaced, peering=peering):
            continue
        scopes = ("",) if permission.cluster_scoped or not namespaced else namespaces
        wanted += [
            Access(verb, permission.group, permission.resource, scope)
            for scope in scopes
            for verb in permission.verbs
        ]
    return wanted
