"""The garbage collector: dependents (by ownerReferences) of a deleted owner are deleted in
the background; an owner deleted in the foreground keeps its `foregroundDeletion` finalizer
until its dependents are gone. (Orphaning happens in the delete call itself.)

Not instant, as the real one is not (`pkg/controller/garbagecollector`: informers feed a
dependency graph, workers drain attemptToDelete queues): it acts `delay` seconds after the
change, so a client can see dependents outlive their owner for a moment."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from typing import Any

from cpworker.sandbox.kube.api import FOREGROUND, Api, DeleteOptions, Obj
from cpworker.sandbox.kube.errors import ApiError
from cpworker.sandbox.kube.store import Change, ObjectRef, StorageKey, clone


class GarbageCollector:
    def __init__(self, api: Api, *, delay: float = 0.0) -> None:
        self.api = api
        self.delay = delay
        self._by_uid: dict[str, ObjectRef] = {}
        api.store.subscribe(self._on_change)

    def _on_change(self, key: StorageKey, change: Change) -> None:
        meta = change.obj["metadata"]
        uid = meta.get("uid", "")
        if change.type == "DELETED":
            self._by_uid.pop(uid, None)
            if self.api.store.dependents_of(uid):
                self._later(self._collect, uid)
            for owner in meta.get("ownerReferences") or []:
                self._release_foreground_owner(owner.get("uid", ""))
            return
        self._by_uid[uid] = (key, meta.get("namespace", ""), meta["name"])
        refs = meta.get("ownerReferences") or []
        if (
            refs
            and not meta.get("deletionTimestamp")
            and change.type == "ADDED"
            and all(self._absent(ref, meta.get("namespace", "")) for ref in refs)
        ):
            # every owner is gone (or is another object of the same name): a dependent
            # with a stale owner reference is collected, as the real collector's
            # attemptToDelete does after looking the owners up by UID
            self._later(self._collect_orphan, (key, meta.get("namespace", ""), meta["name"]))
        if meta.get("deletionTimestamp") and FOREGROUND in (meta.get("finalizers") or []):
            if self.api.store.dependents_of(uid):
                self._later(self._collect, uid)
            else:
                self._release_foreground_owner(uid)

    def _later(self, callback: Any, *args: Any) -> None:
        # A fresh context: the controller does not act as the client whose request woke it.
        asyncio.get_running_loop().call_later(
            self.delay, callback, *args, context=contextvars.Context()
        )

    def _absent(self, ref: Obj, namespace: str) -> bool:
        rtype = self.api.registry.by_kind(str(ref.get("apiVersion", "")), str(ref.get("kind", "")))
        if rtype is None:
            return False  # an unknown kind: the real collector waits for discovery
        owner = self.api.store.get(
            rtype.storage_key, namespace if rtype.namespaced else "", str(ref.get("name", ""))
        )
        return owner is None or owner["metadata"].get("uid") != ref.get("uid")

    def _collect_orphan(self, ref: ObjectRef) -> None:
        obj = self.api.store.get(*ref)
        rtype = self.api.storage_type(ref[0])
        if obj is None or rtype is None or obj["metadata"].get("deletionTimestamp"):
            return
        refs = obj["metadata"].get("ownerReferences") or []
        if refs and all(self._absent(r, ref[1]) for r in refs):
            with contextlib.suppress(ApiError):
                self.api.delete(
                    rtype, ref[1] or None, ref[2], DeleteOptions(propagation_policy="Background")
                )

    def _live(self, uid: str) -> bool:
        """The owner exists and is not being deleted."""
        ref = self._by_uid.get(uid)
        obj = self.api.store.get(*ref) if ref else None
        return obj is not None and not obj["metadata"].get("deletionTimestamp")

    def _collect(self, owner_uid: str) -> None:
        for key, namespace, name in self.api.store.dependents_of(owner_uid):
            obj = self.api.store.get(key, namespace, name)
            rtype = self.api.storage_type(key)
            if obj is None or rtype is None or obj["metadata"].get("deletionTimestamp"):
                continue
            owners = [o.get("uid", "") for o in obj["metadata"].get("ownerReferences") or []]
            if any(self._live(uid) for uid in owners if uid != owner_uid):
                continue  # another owner still holds it
            with contextlib.suppress(ApiError):
                self.api.delete(
                    rtype, namespace or None, name, DeleteOptions(propagation_policy="Background")
                )

    def _release_foreground_owner(self, owner_uid: str) -> None:
        ref = self._by_uid.get(owner_uid)
        if ref is None or self.api.store.dependents_of(owner_uid):
            return
        owner = self.api.store.get(*ref)
        if owner is None or FOREGROUND not in (owner["metadata"].get("finalizers") or []):
            return
        self._later(self._drop_finalizer, ref)

    def _drop_finalizer(self, ref: ObjectRef) -> None:
        current = self.api.store.get(*ref)
        rtype = self.api.storage_type(ref[0])
        if current is None or rtype is None:
            return
        remaining = [f for f in current["metadata"].get("finalizers") or [] if f != FOREGROUND]
        updated: Obj = clone(
            {**current, "metadata": {**current["metadata"], "finalizers": remaining}}
        )
        with contextlib.suppress(ApiError):
            self.api.update(rtype, ref[1] or None, ref[2], updated)
