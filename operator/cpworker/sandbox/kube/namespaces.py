"""The namespace and service-account controllers: every new namespace gets a `default`
ServiceAccount; a namespace marked for deletion is emptied, then removed."""

from __future__ import annotations

import asyncio
import contextlib

from cpworker.sandbox.kube.api import NAMESPACES, SERVICEACCOUNTS, Api
from cpworker.sandbox.kube.errors import ApiError
from cpworker.sandbox.kube.store import Change, StorageKey


class NamespaceController:
    def __init__(self, api: Api) -> None:
        self.api = api
        api.store.subscribe(self._on_change)

    def _on_change(self, key: StorageKey, change: Change) -> None:
        if key != NAMESPACES or change.type == "DELETED":
            return
        name = change.obj["metadata"]["name"]
        loop = asyncio.get_running_loop()
        if change.type == "ADDED":
            loop.call_soon(self._default_service_account, name)
        elif change.obj["metadata"].get("deletionTimestamp"):
            loop.call_soon(self._empty, name)

    def _default_service_account(self, namespace: str) -> None:
        sa_type = self.api.registry.get("", "v1", "serviceaccounts")
        if sa_type and self.api.store.get(SERVICEACCOUNTS, namespace, "default") is None:
            with contextlib.suppress(ApiError):  # the namespace went away meanwhile
                self.api.create(sa_type, namespace, {"metadata": {"name": "default"}})

    def _empty(self, namespace: str) -> None:
        keys = {t.storage_key for t in self.api.registry.all_types() if t.namespaced}
        for key in keys:
            for obj in list(self.api.store.iterate(key, namespace)):
                self.api.force_remove(key, obj)
        ns = self.api.store.get(NAMESPACES, "", namespace)
        if ns is not None:
            self.api.force_remove(NAMESPACES, ns)
