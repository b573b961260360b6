"""Discovery documents: /api, /apis, group/version resource lists, /version, OpenAPI v3."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cpworker.sandbox.kube.resources import Registry, ResourceType

Obj = dict[str, Any]
KUBE_VERSION = {"major": "1", "minor": "32"}


def version_info() -> Obj:
    return {
        **KUBE_VERSION,
        "gitVersion": "v1.32.0-cpworker-sandbox",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def core_versions(address: str) -> Obj:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    }


def _group_entry(group: str, versions: list[str]) -> Obj:
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def group_list(registry: Registry) -> Obj:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group_entry(g, vs) for g, vs in registry.groups().items()],
    }


def group(registry: Registry, name: str) -> Obj | None:
    versions = registry.groups().get(name)
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(name, versions)}


def resource_list(registry: Registry, group_name: str, version: str) -> Obj | None:
    types = registry.in_group_version(group_name, version)
    if not types:
        return None
    resources: list[Obj] = []
    for rtype in sorted(types, key=lambda t: t.plural):
        resources += rtype.discovery_entries()
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group_name}/{version}" if group_name else version,
        "resources": resources,
    }


def _gv_path(group_name: str, version: str) -> str:
    return f"apis/{group_name}/{version}" if group_name else f"api/{version}"


def openapi_root(registry: Registry) -> Obj:
    paths: Obj = {}
    seen = {(t.group, t.version) for t in registry.all_types()}
    for group_name, version in sorted(seen):
        document = openapi_group_version(registry, group_name, version)
        digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:32]
        path = _gv_path(group_name, version)
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest.upper()}"}
    return {"paths": paths}


def _schema_name(rtype: ResourceType) -> str:
    group_name = ".".join(reversed(rtype.group.split("."))) if rtype.group else "core"
    return f"io.k8s.api.{group_name}.{rtype.version}.{rtype.kind}"


_QUERY_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "force")


def _operation(rtype: ResourceType, action: str) -> Obj:
    return {
        "operationId": f"{action}{rtype.kind}",
        "parameters": [
            {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
            for name in _QUERY_PARAMS
        ],
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": rtype.group,
            "version": rtype.version,
            "kind": rtype.kind,
        },
    }


def openapi_group_version(registry: Registry, group_name: str, version: str) -> Obj:
    paths: Obj = {}
    schemas: Obj = {}
    prefix = "/" + _gv_path(group_name, version)
    for rtype in registry.in_group_version(group_name, version):
        scope = f"{prefix}/namespaces/{{namespace}}" if rtype.namespaced else prefix
        paths[f"{scope}/{rtype.plural}/{{name}}"] = {
            "get": _operation(rtype, "get"),
            "put": _operation(rtype, "put"),
            "patch": _operation(rtype, "patch"),
            "delete": _operation(rtype, "delete"),
        }
        paths[f"{scope}/{rtype.plural}"] = {
            "get": _operation(rtype, "list"),
            "post": _operation(rtype, "post"),
        }
        body: Obj = (
            dict(rtype.schema)
            if rtype.schema
            else {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
            }
        )
        body["x-kubernetes-group-version-kind"] = [
            {"group": rtype.group, "version": rtype.version, "kind": rtype.kind}
        ]
        schemas[_schema_name(rtype)] = body
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }
