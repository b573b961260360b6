"""Does the chart's RBAC allow exactly the Kubernetes API calls the operator makes?

Pure functions over two inputs: RBAC rules (as rendered by the chart) and API calls (as the
local Kubernetes API's audit log records them: verb, apiGroup, resource, subresource,
namespace). `rules_cover` answers "what would be forbidden"; `unused_permissions` answers
"what is granted but never used" — together they pin the rules to the operator's behaviour.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Rule = Mapping[str, Any]  # an rbac.authorization.k8s.io/v1 PolicyRule


@dataclass(frozen=True, order=True)
class ApiCall:
    """One request to the Kubernetes API, in RBAC terms."""

    verb: str
    api_group: str
    resource: str
    subresource: str = ""
    namespace: str = ""  # "": cluster-scoped, or across all namespaces
    name: str = ""  # "": no name (list, watch, create)

    @property
    def full_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    def __str__(self) -> str:
        group = self.api_group or "core"
        where = f"in {self.namespace}" if self.namespace else "cluster-wide"
        return f"{self.verb} {group}/{self.full_resource} {where}"


@dataclass(frozen=True)
class Grant:
    """Rules bound to the operator, effective in one namespace (or everywhere when None)."""

    rules: tuple[Rule, ...]
    namespace: str | None = None


def _field(record: Any, *names: str) -> Any:
    for name in names:
        if isinstance(record, Mapping) and name in record:
            return record[name]
        if not isinstance(record, Mapping) and hasattr(record, name):
            return getattr(record, name)
    return None


def calls_from_audit(records: Iterable[Any]) -> list[ApiCall]:
    """Audit records (mappings or objects; camelCase or snake_case fields) -> ApiCalls.

    Records without a resource (discovery: `/api`, `/apis`, `/version`) are dropped: every
    authenticated user may read those (system:discovery), so no rule is needed.
    """
    calls = []
    for record in records:
        resource = _field(record, "resource")
        if not resource:
            continue
        calls.append(
            ApiCall(
                verb=str(_field(record, "verb")),
                api_group=str(_field(record, "apiGroup", "api_group", "group") or ""),
                resource=str(resource),
                subresource=str(_field(record, "subresource") or ""),
                namespace=str(_field(record, "namespace") or ""),
                name=str(_field(record, "name") or ""),
            )
        )
    return calls


def _matches(values: Sequence[str], wanted: str) -> bool:
    return "*" in values or wanted in values


def _resource_matches(resources: Sequence[str], call: ApiCall) -> bool:
    if "*" in resources or call.full_resource in resources:
        return True
    # RBAC's subresource wildcards: "*/status" and "pods/*".
    return bool(call.subresource) and (
        f"*/{call.subresource}" in resources or f"{call.resource}/*" in resources
    )


def rule_allows(rule: Rule, call: ApiCall) -> bool:
    """Whether one PolicyRule allows one call (resourceNames honoured)."""
    if not _matches(rule.get("apiGroups", []), call.api_group):
        return False
    if not _resource_matches(rule.get("resources", []), call):
        return False
    if not _matches(rule.get("verbs", []), call.verb):
        return False
    names = rule.get("resourceNames")
    return not names or call.name in names


def rules_cover(rules: Iterable[Rule], calls: Iterable[ApiCall]) -> list[ApiCall]:
    """The calls no rule allows, rules applying everywhere (a ClusterRole + binding).
    Sorted and de-duplicated; empty means the rules cover every call."""
    rules = list(rules)
    return sorted({call for call in calls if not any(rule_allows(r, call) for r in rules)})


def grants_cover(grants: Iterable[Grant], calls: Iterable[ApiCall]) -> list[ApiCall]:
    """Like `rules_cover`, with each grant effective only in its namespace: a call in a
    namespace needs a cluster-wide grant or one for that namespace; a cluster-scoped or
    all-namespaces call needs a cluster-wide grant."""
    grants = list(grants)

    def allowed(call: ApiCall) -> bool:
        return any(
            rule_allows(rule, call)
            for grant in grants
            if grant.namespace is None or (call.namespace and grant.namespace == call.namespace)
            for rule in grant.rules
        )

    return sorted({call for call in calls if not allowed(call)})


def unused_permissions(
    rules: Iterable[Rule], calls: Iterable[ApiCall]
) -> list[tuple[str, str, str]]:
    """(apiGroup, resource, verb) triples the rules grant that no call used (wildcards are
    reported as such: a wildcard is never "exactly what is used")."""
    calls = list(calls)
    unused = set()
    for rule in rules:
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                for verb in rule.get("verbs", []):
                    used = any(
                        _matches([group], call.api_group)
                        and _resource_matches([resource], call)
                        and _matches([verb], call.verb)
                        for call in calls
                    )
                    if not used or "*" in (group, resource, verb):
                        unused.add((group, resource, verb))
    return sorted(unused)


def grants_for(
    documents: Iterable[Mapping[str, Any]], service_account: str, namespace: str
) -> list[Grant]:
    """The grants rendered RBAC objects give one ServiceAccount."""
    documents = list(documents)
    roles = {
        (doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"]): tuple(
            doc.get("rules") or ()
        )
        for doc in documents
        if doc.get("kind") in {"ClusterRole", "Role"}
    }
    grants = []
    for doc in documents:
        kind = doc.get("kind")
        if kind not in {"ClusterRoleBinding", "RoleBinding"}:
            continue
        subjects = doc.get("subjects") or []
        if not any(
            s.get("kind") == "ServiceAccount"
            and s.get("name") == service_account
            and s.get("namespace") == namespace
            for s in subjects
        ):
            continue
        binding_namespace = doc["metadata"].get("namespace") if kind == "RoleBinding" else None
        ref = doc["roleRef"]
        role_namespace = binding_namespace if ref["kind"] == "Role" else None
        rules = roles.get((ref["kind"], role_namespace, ref["name"]), ())
        grants.append(Grant(rules=rules, namespace=binding_namespace))
    return grants
