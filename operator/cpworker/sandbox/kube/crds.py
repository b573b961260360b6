"""CustomResourceDefinitions: turning one into served resource types, and its status."""

from __future__ import annotations

from typing import Any

from cpworker.sandbox.kube.errors import invalid
from cpworker.sandbox.kube.resources import PrinterColumn, ResourceType
from cpworker.sandbox.kube.store import now_rfc3339

Obj = dict[str, Any]


def types_of(crd: Obj) -> list[ResourceType]:
    spec = crd["spec"]
    names = spec["names"]
    types = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        subresources = frozenset(
            sub for sub in ("status", "scale") if sub in (version.get("subresources") or {})
        )
        columns = tuple(
            PrinterColumn(
                name=column["name"],
                type=column.get("type", "string"),
                json_path=column["jsonPath"],
                description=column.get("description", ""),
                priority=int(column.get("priority", 0)),
                format=column.get("format", ""),
            )
            for column in version.get("additionalPrinterColumns") or []
        ) or (PrinterColumn("Age", "date", ".metadata.creationTimestamp"),)
        types.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=subresources,
                has_generation=True,
                returns_deleted_object=True,
                columns=columns,
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                custom=True,
            )
        )
    return types


def validate_crd(crd: Obj) -> None:
    name = crd["metadata"]["name"]
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    causes = [
        ("FieldValueRequired", f"spec.names.{field}", "Required value")
        for field in ("plural", "kind")
        if not names.get(field)
    ]
    if not spec.get("group"):
        causes.append(("FieldValueRequired", "spec.group", "Required value"))
    elif names.get("plural") and name != f"{names['plural']}.{spec['group']}":
        causes.append(
            (
                "FieldValueInvalid",
                "metadata.name",
                f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
            )
        )
    versions = spec.get("versions") or []
    if not versions:
        causes.append(("FieldValueRequired", "spec.versions", "Required value"))
    elif sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(
            (
                "FieldValueInvalid",
                "spec.versions",
                "Invalid value: must have exactly one version marked as storage version",
            )
        )
    if causes:
        raise invalid("CustomResourceDefinition", "apiextensions.k8s.io", name, causes)


def established_status(crd: Obj, previous: Obj | None) -> Obj:
    spec = crd["spec"]
    names = dict(spec["names"])
    names.setdefault("singular", names["kind"].lower())
    names.setdefault("listKind", f"{names['kind']}List")
    stamp = now_rfc3339()
    stored = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
    old_stored = (previous or {}).get("status", {}).get("storedVersions") or []
    return {
        "acceptedNames": names,
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": stamp,
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": stamp,
            },
        ],
        "storedVersions": list(dict.fromkeys(old_stored + stored)),
    }


def default_crd(crd: Obj) -> None:
    spec = crd.setdefault("spec", {})
    spec.setdefault("scope", "Namespaced")
    names = spec.setdefault("names", {})
    if names.get("kind"):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", f"{names['kind']}List")
    spec.setdefault("conversion", {"strategy": "None"})
