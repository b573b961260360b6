"""The API server's semantics, independent of HTTP: create, read, update, patch, delete,
with metadata bookkeeping, status subresource rules, finalizers, CRD registration, garbage
collection by ownerReferences and namespace cleanup."""

from __future__ import annotations

import contextvars
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from cpworker.sandbox.kube import builtin_schema, crds, events, schema, strategies
from cpworker.sandbox.kube.admission import Admission
from cpworker.sandbox.kube.errors import (
    ApiError,
    already_exists,
    bad_request,
    conflict,
    invalid,
    not_found,
)
from cpworker.sandbox.kube.patching import (
    STRATEGIC_KEYS,
    PatchError,
    PatchTestFailedError,
    json_patch,
    merge_patch,
    strategic_merge,
)
from cpworker.sandbox.kube.resources import Registry, ResourceType
from cpworker.sandbox.kube.selectors import FieldMatcher, Requirement, fields_match, labels_match
from cpworker.sandbox.kube.store import Change, StorageKey, Store, clone, now_rfc3339

Obj = dict[str, Any]

NAMESPACES: StorageKey = ("", "namespaces")
CRDS: StorageKey = ("apiextensions.k8s.io", "customresourcedefinitions")
SERVICEACCOUNTS: StorageKey = ("", "serviceaccounts")
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
# `fieldValidation=Strict` on the current request (kubectl sends it): unknown fields are
# refused instead of dropped. A context variable, so each request task sees its own.
STRICT_FIELDS: contextvars.ContextVar[bool] = contextvars.ContextVar("strict", default=False)
BOOT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass(slots=True)
class DeleteOptions:
    propagation_policy: str | None = None
    precondition_uid: str | None = None
    precondition_rv: str | None = None
    dry_run: bool = False
    grace_period_seconds: int | None = None

    @classmethod
    def from_body(cls, body: Obj | None, query: dict[str, str]) -> DeleteOptions:
        body = body or {}
        policy = body.get("propagationPolicy") or query.get("propagationPolicy")
        orphan = body.get("orphanDependents")
        if policy is None and orphan is not None:
            policy = "Orphan" if orphan else "Background"
        preconditions = body.get("preconditions") or {}
        grace = body.get("gracePeriodSeconds", query.get("gracePeriodSeconds"))
        return cls(
            propagation_policy=policy,
            precondition_uid=preconditions.get("uid"),
            precondition_rv=preconditions.get("resourceVersion"),
            dry_run=bool(body.get("dryRun")) or "dryRun" in query,
            grace_period_seconds=None if grace is None else int(grace),
        )


@dataclass(slots=True)
class Api:
    store: Store
    registry: Registry
    # (uid, field manager) -> the configuration it last applied (server-side apply).
    _applied: dict[tuple[str, str], Obj] = field(default_factory=dict)
    # (namespace, pod) -> container -> log text, kept by the job runner's local-exec mode.
    pod_logs: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    # The admission plugins (quota, LimitRange, PodSecurity, webhooks, owner references).
    admission: Admission | None = None
    # (involved uid, reason, message, component) -> (namespace, name) of the Event that
    # recorded it, so a repeat bumps its count (events.record); bounded, oldest dropped.
    recorded_events: dict[tuple[str, str, str, str], tuple[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.store.subscribe(self._on_change)

    # -- helpers -----------------------------------------------------------------------
    def storage_type(self, key: StorageKey) -> ResourceType | None:
        versions = self.registry.versions_of(*key)
        return versions[0] if versions else None

    def present(self, rtype: ResourceType, obj: Obj) -> Obj:
        """The object as seen through `rtype`'s version (custom resources share storage)."""
        if rtype.stored_as:
            return events.from_core(obj)
        if obj.get("apiVersion") == rtype.api_version:
            return obj
        return {**obj, "apiVersion": rtype.api_version}

    def _stamp(self, obj: Obj) -> Obj:
        obj["metadata"]["resourceVersion"] = str(self.store.next_resource_version())
        return obj

    def bootstrap(self) -> None:
        namespaces = self.registry.get("", "v1", "namespaces")
        assert namespaces is not None
        for name in BOOT_NAMESPACES:
            self.create(namespaces, None, {"metadata": {"name": name}})

    # -- reads -------------------------------------------------------------------------
    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = self.store.get(rtype.storage_key, namespace or "", name)
        if obj is None:
            raise not_found(rtype.group, rtype.plural, name)
        return self.present(rtype, obj)

    def list(
        self,
        rtype: ResourceType,
        namespace: str | None,
        labels: tuple[Requirement, ...] = (),
        fields: tuple[FieldMatcher, ...] = (),
    ) -> list[Obj]:
        candidates = self.store.select(rtype.storage_key, namespace, labels)
        if candidates is None:
            candidates = self.store.iterate(rtype.storage_key, namespace)
        return [
            self.present(rtype, obj)
            for obj in candidates
            if labels_match(labels, obj) and fields_match(fields, obj)
        ]

    # -- create --------------------------------------------------------------------------
    def _stored_type(self, rtype: ResourceType) -> ResourceType:
        """The type an object is stored as (itself, unless it is a view of another)."""
        if rtype.stored_as is None:
            return rtype
        storage = self.storage_type(rtype.stored_as)
        assert storage is not None
        return storage

    def create(
        self,
        rtype: ResourceType,
        namespace: str | None,
        body: Any,
        *,
        dry_run: bool = False,
        field_manager: str | None = None,
        operation: str = "Update",
    ) -> Obj:
        if rtype.stored_as is None:
            return self._create(
                rtype,
                namespace,
                body,
                dry_run=dry_run,
                field_manager=field_manager,
                operation=operation,
            )
        created = self._create(
            self._stored_type(rtype),
            namespace,
            events.to_core(body),
            dry_run=dry_run,
            field_manager=field_manager,
        )
        return self.present(rtype, created)

    def _create(  # noqa: PLR0912 - one branch per case of the protocol
        self,
        rtype: ResourceType,
        namespace: str | None,
        body: Any,
        *,
        dry_run: bool = False,
        field_manager: str | None = None,
        operation: str = "Update",
    ) -> Obj:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be an object")
        obj: Obj = clone(body)
        obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        if rtype.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace "
                    "sent on the request"
                )
            namespace = namespace or meta.get("namespace")
            if not namespace:
                raise bad_request("a namespace is required for namespaced resources")
            self._require_namespace(namespace)
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise invalid(
                    rtype.kind,
                    rtype.group,
                    "",
                    [
                        (
                            "FieldValueRequired",
                            "metadata.name",
                            "Required value: name or generateName is required",
                        )
                    ],
                )
            meta["name"] = meta["generateName"] + "".join(
                random.choice(_NAME_CHARS)  # noqa: S311 - a name suffix, not a secret
                for _ in range(5)
            )
        name = meta["name"]
        if self.store.get(rtype.storage_key, meta.get("namespace", ""), name) is not None:
            raise already_exists(rtype.group, rtype.plural, name)
        for transient in (
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "managedFields",
        ):
            meta.pop(transient, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if rtype.has_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        self._admit(rtype, obj, None)
        strategies.validate_metadata(rtype, obj)
        if self.admission is not None:
            self.admission.admit(rtype.group, rtype.plural, obj, None, subresource=None)
        if field_manager:
            meta["managedFields"] = [self._managed_entry(rtype, field_manager, operation)]
        if dry_run:
            meta["resourceVersion"] = ""
            return obj
        self.store.put(rtype.storage_key, self._stamp(obj))
        return self.present(rtype, obj)

    def _require_namespace(self, namespace: str) -> None:
        ns = self.store.get(NAMESPACES, "", namespace)
        if ns is None:
            raise not_found("", "namespaces", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                "Forbidden",
                f"unable to create new content in namespace {namespace} because it is being "
                "terminated",
            )

    def _admit(self, rtype: ResourceType, obj: Obj, old: Obj | None) -> None:
        """Kind-specific defaults and validation for a create (old None) or an update."""
        if not rtype.custom:  # decode first: the strategies may rely on the types
            decoded = builtin_schema.decode(obj, strict=STRICT_FIELDS.get())
            if decoded is not obj:
                obj.clear()
                obj.update(decoded)
        if old is None:
            strategies.prepare_create(rtype, obj)
        else:
            strategies.prepare_update(rtype, obj, old)
        if rtype.custom and rtype.schema:
            self._admit_custom(rtype, obj, old)
        if rtype.storage_key == CRDS:
            crds.default_crd(obj)
            crds.validate_crd(obj)
            obj["status"] = crds.established_status(obj, old)

    def _admit_custom(self, rtype: ResourceType, obj: Obj, old: Obj | None) -> None:
        assert rtype.schema is not None
        dropped: list[str] = []
        pruned = schema.prune(rtype.schema, obj, root=True, dropped=dropped)
        if dropped and STRICT_FIELDS.get():
            raise bad_request(
                "strict decoding error: " + ", ".join(f'unknown field "{path}"' for path in dropped)
            )
        obj.clear()
        obj.update(schema.apply_defaults(rtype.schema, schema.prune_nulls(rtype.schema, pruned)))
        causes = schema.validate(rtype.schema, obj, "", old, has_old=old is not None)
        if causes:
            raise invalid(rtype.kind, rtype.group, obj["metadata"].get("name", ""), causes)

    @staticmethod
    def _managed_entry(rtype: ResourceType, manager: str, operation: str) -> Obj:
        return {
            "manager": manager,
            "operation": operation,
            "apiVersion": rtype.api_version,
            "time": now_rfc3339(),
            "fieldsType": "FieldsV1",
            "fieldsV1": {},
        }

    # -- update --------------------------------------------------------------------------
    def update(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be an object")
        current = self.store.get(rtype.storage_key, namespace or "", name)
        if current is None:
            raise not_found(rtype.group, rtype.plural, name)
        body_meta = body.get("metadata") or {}
        if body_meta.get("name") not in (None, name):
            raise bad_request("the name of the object does not match the name on the URL")
        wanted_rv = body_meta.get("resourceVersion")
        if wanted_rv and wanted_rv != current["metadata"]["resourceVersion"]:
            raise conflict(rtype.group, rtype.plural, name)
        storage = self._stored_type(rtype)
        replacement = clone(events.to_core(body) if rtype.stored_as else body)
        replaced = self._replace(storage, current, replacement, subresource, dry_run=dry_run)
        return self.present(rtype, replaced)

    def _replace(  # noqa: PLR0912, PLR0915 - one branch per case of the protocol
        self,
        rtype: ResourceType,
        current: Obj,
        new: Obj,
        subresource: str | None,
        *,
        dry_run: bool = False,
    ) -> Obj:
        """Store `new` in place of `current`, keeping what the client may not change."""
        old_meta = current["metadata"]
        new["apiVersion"], new["kind"] = rtype.api_version, rtype.kind
        if subresource == "status":
            # /status changes status only: everything else stays as stored.
            merged = {k: v for k, v in current.items() if k != "status"}
            if "status" in new:
                merged["status"] = new["status"]
            merged["apiVersion"] = rtype.api_version
            new = clone(merged)
            if not rtype.custom:
                new = builtin_schema.decode(new, strict=STRICT_FIELDS.get())
            if rtype.custom and rtype.schema:
                status_schema = (rtype.schema.get("properties") or {}).get("status")
                if status_schema and "status" in new:
                    pruned = schema.prune(status_schema, new["status"])
                    new["status"] = schema.apply_defaults(
                        status_schema, schema.prune_nulls(status_schema, pruned)
                    )
                    causes = schema.validate(status_schema, new["status"], "status")
                    if causes:
                        raise invalid(rtype.kind, rtype.group, old_meta["name"], causes)
        else:
            meta = new.get("metadata")
            if not isinstance(meta, dict):
                meta = new["metadata"] = {}
            for kept in (
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "namespace",
                "name",
                "deletionGracePeriodSeconds",
                "generateName",
            ):
                if kept in old_meta:
                    meta[kept] = old_meta[kept]
                else:
                    meta.pop(kept, None)
            if rtype.has_status():
                if "status" in current:
                    new["status"] = clone(current["status"])
                else:
                    new.pop("status", None)
            if old_meta.get("deletionTimestamp"):
                added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
                if added:
                    raise invalid(
                        rtype.kind,
                        rtype.group,
                        old_meta["name"],
                        [
                            (
                                "FieldValueForbidden",
                                "metadata.finalizers",
                                (
                                    "Forbidden: no new finalizers can be added if the object is "
                                    "being deleted"
                                ),
                            )
                        ],
                    )
            self._admit(rtype, new, current)
            strategies.validate_metadata(rtype, new)
            if self.admission is not None:
                self.admission.admit(rtype.group, rtype.plural, new, current, subresource=None)
        meta = new["metadata"]
        if rtype.has_generation:
            generation = old_meta.get("generation", 1)
            if _spec_of(new) != _spec_of(current):
                generation += 1
            meta["generation"] = generation
        if dry_run:
            return new
        if (
            old_meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and not old_meta.get("deletionGracePeriodSeconds")
        ):
            # removed once the last finalizer goes, unless a grace period is still running
            # (registry/generic/registry/store.go shouldDeleteDuringUpdate)
            self._stamp(new)
            self.store.remove(
                rtype.storage_key, old_meta.get("namespace", ""), old_meta["name"], new
            )
            return self.present(rtype, new)
        self.store.put(rtype.storage_key, self._stamp(new))
        return self.present(rtype, new)

    # -- patch ---------------------------------------------------------------------------
    def patch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        content_type: str,
        patch: Any,
        *,
        subresource: str | None = None,
        field_manager: str | None = None,
        dry_run: bool = False,
    ) -> tuple[Obj, bool]:
        """Apply a patch; answers (object, created) — server-side apply may create."""
        current = self.store.get(rtype.storage_key, namespace or "", name)
        if content_type == "application/apply-patch+yaml":
            return self._apply(
                rtype, namespace, name, current, patch, subresource, field_manager or "", dry_run
            )
        if current is None:
            raise not_found(rtype.group, rtype.plural, name)
        document = clone(self.present(rtype, current))
        try:
            if content_type == "application/json-patch+json":
                patched = json_patch(document, patch)
            elif content_type == "application/merge-patch+json":
                patched = merge_patch(document, patch)
            elif content_type == "application/strategic-merge-patch+json":
                if rtype.custom:
                    raise ApiError(
                        415,
                        "UnsupportedMediaType",
                        "strategic merge patch is not supported for custom resources",
                    )
                patched = strategic_merge(document, patch)
            else:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the content type {content_type!r} is not supported",
                )
        except PatchTestFailedError as exc:
            raise ApiError(422, "Invalid", str(exc)) from exc
        except PatchError as exc:
            raise ApiError(422, "Invalid", str(exc)) from exc
        if not isinstance(patched, dict):
            raise bad_request("a patch must leave an object")
        wanted_rv = (patched.get("metadata") or {}).get("resourceVersion")
        if wanted_rv and wanted_rv != current["metadata"]["resourceVersion"]:
            raise conflict(rtype.group, rtype.plural, name)
        storage = self._stored_type(rtype)
        if rtype.stored_as:
            patched = events.to_core(patched)
        replaced = self._replace(storage, current, patched, subresource, dry_run=dry_run)
        return self.present(rtype, replaced), False

    def _apply(  # noqa: PLR0917 - internal, called once
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        current: Obj | None,
        config: Any,
        subresource: str | None,
        manager: str,
        dry_run: bool,
    ) -> tuple[Obj, bool]:
        """Server-side apply, simplified: the manager's fields are merged in, and fields it
        applied last time but no longer applies are removed. No conflict detection."""
        if not isinstance(config, dict):
            raise bad_request("an apply configuration must be an object")
        if not manager:
            raise bad_request("fieldManager is required for apply requests")
        if current is None:
            if subresource:
                raise not_found(rtype.group, rtype.plural, name)
            body = clone(config)
            body.setdefault("metadata", {})["name"] = name
            created = self.create(
                rtype, namespace, body, dry_run=dry_run, field_manager=manager, operation="Apply"
            )
            if not dry_run:
                self._applied[(created["metadata"]["uid"], manager)] = clone(config)
            return created, True
        uid = current["metadata"]["uid"]
        previous = self._applied.get((uid, manager))
        document = clone(self.present(rtype, current))
        if previous is not None:
            _remove_dropped(document, previous, config)
        patched = strategic_merge(document, config)
        patched["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        entries = [
            e for e in current["metadata"].get("managedFields") or [] if e.get("manager") != manager
        ]
        patched["metadata"]["managedFields"] = [
            *entries,
            self._managed_entry(rtype, manager, "Apply"),
        ]
        result = self._replace(rtype, current, patched, subresource, dry_run=dry_run)
        if not dry_run:
            self._applied[(uid, manager)] = clone(config)
        return result, False

    # -- delete --------------------------------------------------------------------------
    def delete(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        options: DeleteOptions,
    ) -> tuple[Obj, bool]:
        """Delete; answers (last state, removed now?)."""
        current = self.store.get(rtype.storage_key, namespace or "", name)
        if current is None:
            raise not_found(rtype.group, rtype.plural, name)
        meta = current["metadata"]
        if options.precondition_uid and options.precondition_uid != meta["uid"]:
            raise conflict(
                rtype.group,
                rtype.plural,
                name,
                f"Precondition failed: UID in precondition: "
                f"{options.precondition_uid}, UID in object meta: {meta['uid']}",
            )
        if options.precondition_rv and options.precondition_rv != meta["resourceVersion"]:
            raise conflict(
                rtype.group,
                rtype.plural,
                name,
                "Precondition failed: ResourceVersion in precondition: "
                f"{options.precondition_rv}, ResourceVersion in object meta: "
                f"{meta['resourceVersion']}",
            )
        if options.dry_run:
            return self.present(rtype, current), False
        policy = options.propagation_policy or _default_policy(rtype)
        finalizers = list(meta.get("finalizers") or [])
        if rtype.storage_key == NAMESPACES:
            return self._delete_namespace(current), False
        grace = _grace_period(rtype, current, options)
        if meta.get("deletionTimestamp"):
            if grace == 0 and meta.get("deletionGracePeriodSeconds"):
                return self._end_grace(rtype, current)
            return self.present(rtype, current), False
        if policy == "Orphan":
            self._orphan_dependents(meta["uid"])
        elif policy == "Foreground" and self.store.dependents_of(meta["uid"]):
            finalizers.append(FOREGROUND)
        if finalizers or grace:
            marked = {
                **current,
                "metadata": {
                    **meta,
                    "deletionTimestamp": now_rfc3339(grace),
                    "deletionGracePeriodSeconds": grace,
                    "finalizers": finalizers,
                },
            }
            if not finalizers:
                del marked["metadata"]["finalizers"]
            self.store.put(rtype.storage_key, self._stamp(marked))
            return self.present(rtype, marked), False
        final = {**current, "metadata": dict(meta)}
        self._stamp(final)
        self.store.remove(rtype.storage_key, meta.get("namespace", ""), name, final)
        if rtype.storage_key == CRDS:
            self._drop_crd(current)
        return self.present(rtype, final), True

    def _end_grace(self, rtype: ResourceType, current: Obj) -> tuple[Obj, bool]:
        """A delete with grace 0 of a pod already terminating (the kubelet's last word):
        removed now, or once its finalizers are gone."""
        meta = current["metadata"]
        if meta.get("finalizers"):
            marked = {**current, "metadata": {**meta, "deletionGracePeriodSeconds": 0}}
            self.store.put(rtype.storage_key, self._stamp(marked))
            return self.present(rtype, marked), False
        final = {**current, "metadata": dict(meta)}
        self._stamp(final)
        self.store.remove(rtype.storage_key, meta.get("namespace", ""), meta["name"], final)
        return self.present(rtype, final), True

    def _delete_namespace(self, current: Obj) -> Obj:
        meta = current["metadata"]
        if meta.get("deletionTimestamp"):
            return current
        marked = {
            **current,
            "metadata": {
                **meta,
                "deletionTimestamp": now_rfc3339(),
                "deletionGracePeriodSeconds": 0,
            },
            "status": {"phase": "Terminating"},
        }
        self.store.put(NAMESPACES, self._stamp(marked))  # the namespace controller empties it
        return marked

    def force_remove(self, key: StorageKey, obj: Obj) -> None:
        """Remove at once, finalizers or not (namespace and CRD cleanup)."""
        final = {**obj, "metadata": dict(obj["metadata"])}
        self._stamp(final)
        self.store.remove(key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"], final)

    def _drop_crd(self, crd: Obj) -> None:
        types = self.registry.remove_crd(crd["metadata"]["name"])
        if types:
            key = types[0].storage_key
            for obj in list(self.store.iterate(key)):
                self.force_remove(key, obj)
            self.store.drop_type(key)

    # -- bookkeeping on every change ----------------------------------------------------
    def _on_change(self, key: StorageKey, change: Change) -> None:
        if change.type == "DELETED":
            uid = change.obj["metadata"].get("uid")
            for manager_key in [k for k in self._applied if k[0] == uid]:
                del self._applied[manager_key]
        if key == CRDS:
            self._sync_crd(change)

    def _sync_crd(self, change: Change) -> None:
        name = change.obj["metadata"]["name"]
        if change.type == "DELETED":
            return
        self.registry.set_crd_types(name, crds.types_of(change.obj))

    def _orphan_dependents(self, owner_uid: str) -> None:
        for key, namespace, name in self.store.dependents_of(owner_uid):
            obj = self.store.get(key, namespace, name)
            if obj is None:
                continue
            refs = [
                o for o in obj["metadata"].get("ownerReferences") or [] if o.get("uid") != owner_uid
            ]
            meta = dict(obj["metadata"])
            if refs:
                meta["ownerReferences"] = refs
            else:
                meta.pop("ownerReferences", None)
            self.store.put(key, self._stamp({**obj, "metadata": meta}))


def _spec_of(obj: Obj) -> Any:
    """What counts as 'spec' for metadata.generation: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in {"metadata", "status", "apiVersion", "kind"}}


def _grace_period(rtype: ResourceType, obj: Obj, options: DeleteOptions) -> int:
    """Seconds a deleted object lingers: pods only, as `pkg/registry/core/pod/strategy.go`
    CheckGracefulDelete says — the request's gracePeriodSeconds, else the pod's
    terminationGracePeriodSeconds; 0 for a pod no node runs or one already terminal."""
    if rtype.storage_key != ("", "pods"):
        return 0
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if not spec.get("nodeName") or status.get("phase") in {"Succeeded", "Failed"}:
        return 0
    if options.grace_period_seconds is not None:
        return max(0, options.grace_period_seconds)
    return int(spec.get("terminationGracePeriodSeconds", 30))


def _default_policy(rtype: ResourceType) -> str:
    # batch/v1 Jobs (and the legacy core controllers) orphan their dependents by default when
    # the client does not say otherwise; kubectl sends Background explicitly.
    if (rtype.group, rtype.plural) in {("batch", "jobs"), ("", "replicationcontrollers")}:
        return "Orphan"
    return "Background"


def _remove_dropped(document: Obj, previous: Obj, config: Obj) -> None:
    """Remove from `document` the fields `previous` applied that `config` no longer does."""
    for key, old_value in previous.items():
        if key not in config:
            if key not in {"apiVersion", "kind"}:
                document.pop(key, None)
            continue
        new_value = config[key]
        if isinstance(old_value, dict) and isinstance(new_value, dict):
            target = document.get(key)
            if isinstance(target, dict):
                _remove_dropped(target, old_value, new_value)
        elif (
            isinstance(old_value, list)
            and isinstance(new_value, list)
            and key in STRATEGIC_KEYS
            and isinstance(document.get(key), list)
        ):
            merge_key = STRATEGIC_KEYS[key]
            kept = {item.get(merge_key) for item in new_value if isinstance(item, dict)}
            dropped = {item.get(merge_key) for item in old_value if isinstance(item, dict)} - kept
            document[key] = [
                item
                for item in document[key]
                if not (isinstance(item, dict) and item.get(merge_key) in dropped)
            ]
