"""RBAC authorization, for identities other than the sandbox admin (pure over a reader).

Enforced for service-account tokens minted by `KubeStandIn.service_account_token()`, so a
process given such a kubeconfig (the operator, say) meets the chart's Roles and ClusterRoles
as in a cluster: a request no binding allows answers 403 Forbidden. Supported: Roles,
ClusterRoles, RoleBindings (to a Role or a ClusterRole), ClusterRoleBindings; subjects of kind
User, Group and ServiceAccount; apiGroups/resources/verbs/resourceNames with `*`. Not
supported: aggregated ClusterRoles, nonResourceURLs (discovery is open to every
authenticated identity, as the default `system:discovery` binding makes it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
# (group, plural, namespace or None for all) -> objects
Reader = Callable[[str, str, str | None], Iterable[Obj]]
MASTERS = "system:masters"


@dataclass(frozen=True, slots=True)
class Identity:
    user: str
    groups: tuple[str, ...]

    @classmethod
    def service_account(cls, namespace: str, name: str) -> Identity:
        return cls(
            f"system:serviceaccount:{namespace}:{name}",
            (
                "system:serviceaccounts",
                f"system:serviceaccounts:{namespace}",
                "system:authenticated",
            ),
        )

    @property
    def unrestricted(self) -> bool:
        return MASTERS in self.groups


@dataclass(frozen=True, slots=True)
class Request:
    verb: str
    group: str
    resource: str  # plural, with "/subresource" when there is one
    namespace: str | None
    name: str | None


def _subject_matches(subject: Obj, identity: Identity, binding_namespace: str | None) -> bool:
    kind = subject.get("kind")
    if kind == "User":
        return bool(subject.get("name") == identity.user)
    if kind == "Group":
        return subject.get("name") in identity.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return identity.user == f"system:serviceaccount:{namespace}:{subject.get('name')}"
    return False


def _rule_allows(rule: Obj, request: Request) -> bool:
    def among(values: Iterable[str] | None, wanted: str) -> bool:
        listed = list(values or [])
        return "*" in listed or wanted in listed

    if not among(rule.get("verbs"), request.verb):
        return False
    if not among(rule.get("apiGroups"), request.group):
        return False
    resources = list(rule.get("resources") or [])
    base, _, sub = request.resource.partition("/")
    del base
    if not ("*" in resources or request.resource in resources or (sub and f"*/{sub}" in resources)):
        return False
    names = rule.get("resourceNames")
    if names:
        return request.name is not None and request.name in names
    return True


def _role_rules(read: Reader, ref: Obj, namespace: str | None) -> list[Obj]:
    if ref.get("kind") == "ClusterRole":
        found = [
            r
            for r in read("rbac.authorization.k8s.io", "clusterroles", None)
            if r["metadata"]["name"] == ref.get("name")
        ]
    else:
        found = [
            r
            for r in read("rbac.authorization.k8s.io", "roles", namespace)
            if r["metadata"]["name"] == ref.get("name")
        ]
    return [rule for role in found for rule in role.get("rules") or []]


# What the default `system:basic-user` ClusterRole grants every authenticated identity.
_BASIC_USER = (
    {
        "apiGroups": ["authorization.k8s.io"],
        "verbs": ["create"],
        "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
    },
)


def allowed(identity: Identity, request: Request, read: Reader) -> bool:
    if identity.unrestricted or any(_rule_allows(rule, request) for rule in _BASIC_USER):
        return True
    for binding in read("rbac.authorization.k8s.io", "clusterrolebindings", None):
        if any(_subject_matches(s, identity, None) for s in binding.get("subjects") or []) and any(
            _rule_allows(rule, request)
            for rule in _role_rules(read, binding.get("roleRef") or {}, None)
        ):
            return True
    if request.namespace is None:
        return False
    for binding in read("rbac.authorization.k8s.io", "rolebindings", request.namespace):
        if any(
            _subject_matches(s, identity, request.namespace) for s in binding.get("subjects") or []
        ) and any(
            _rule_allows(rule, request)
            for rule in _role_rules(read, binding.get("roleRef") or {}, request.namespace)
        ):
            return True
    return False


def denial(identity: Identity, request: Request) -> str:
    """The real server's wording."""
    where = (
        f' in the namespace "{request.namespace}"' if request.namespace else " at the cluster scope"
    )
    named = f' "{request.name}"' if request.name else ""
    base = request.resource.partition("/")[0]
    qualified = f"{base}.{request.group}" if request.group else base
    return (
        f'{qualified}{named} is forbidden: User "{identity.user}" cannot {request.verb} '
        f'resource "{request.resource}" in API group "{request.group}"{where}'
    )
