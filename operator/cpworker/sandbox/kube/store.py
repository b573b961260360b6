"""In-memory object storage: indexed by type, namespace and name; one global resourceVersion;
a bounded history of changes per type for watches; watchers notified synchronously.

Every stored object is treated as immutable: a change stores a new dict, so watch events and
responses can share the stored objects without copying. Everything here runs on the server's
event loop, so there is no locking.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cpworker.sandbox.kube.selectors import FieldMatcher, Requirement, fields_match, labels_match

Obj = dict[str, Any]
StorageKey = tuple[str, str]  # (group, plural)
ObjectRef = tuple[StorageKey, str, str]  # (storage key, namespace, name)


def now_rfc3339(offset: float = 0.0) -> str:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def clone(obj: Any) -> Any:
    """A deep copy of JSON data (faster than copy.deepcopy for plain JSON)."""
    return json.loads(json.dumps(obj))


@dataclass(slots=True)
class Change:
    resource_version: int
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj
    old: Obj | None


@dataclass(eq=False, slots=True)
class Watcher:
    namespace: str | None
    labels: tuple[Requirement, ...]
    fields: tuple[FieldMatcher, ...]
    queue: asyncio.Queue[tuple[str, Obj]] = field(default_factory=asyncio.Queue)

    def selects(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return False
        return labels_match(self.labels, obj) and fields_match(self.fields, obj)

    def offer(self, change: Change) -> None:
        """Translate a change into what this watcher sees (selector transitions included)."""
        now_in = self.selects(change.obj)
        if change.type != "MODIFIED":
            if now_in:
                self.queue.put_nowait((change.type, change.obj))
            return
        was_in = self.selects(change.old)
        if now_in:
            self.queue.put_nowait(("MODIFIED" if was_in else "ADDED", change.obj))
        elif was_in:
            self.queue.put_nowait(("DELETED", change.obj))


class TooOldError(Exception):
    """A watch asked for history that has been dropped (410 Gone)."""


class Store:
    def __init__(self, history_size: int = 10_000) -> None:
        self._rv = 1
        self._objects: dict[StorageKey, dict[str, dict[str, Obj]]] = {}
        self._history: dict[StorageKey, deque[Change]] = {}
        self._history_floor: dict[StorageKey, int] = {}
        self._compacted = 0  # history up to here is gone for every type (compact())
        self._history_size = history_size
        self._watchers: dict[StorageKey, set[Watcher]] = {}
        self._dependents: dict[str, set[ObjectRef]] = {}
        # (label key, value) -> objects carrying it, per type: label-selected lists stay
        # proportional to what they select, not to what is stored.
        self._labelled: dict[StorageKey, dict[tuple[str, str], set[tuple[str, str]]]] = {}
        self._listeners: list[Callable[[StorageKey, Change], None]] = []

    @property
    def resource_version(self) -> int:
        return self._rv

    def next_resource_version(self) -> int:
        self._rv += 1
        return self._rv

    def subscribe(self, listener: Callable[[StorageKey, Change], None]) -> None:
        """Controllers (job runner, garbage collector) hear every change, synchronously."""
        self._listeners.append(listener)

    # -- reads -------------------------------------------------------------------------
    def get(self, key: StorageKey, namespace: str, name: str) -> Obj | None:
        return self._objects.get(key, {}).get(namespace, {}).get(name)

    def iterate(self, key: StorageKey, namespace: str | None = None) -> Iterator[Obj]:
        by_namespace = self._objects.get(key, {})
        if namespace is not None:
            yield from by_namespace.get(namespace, {}).values()
            return
        for objects in by_namespace.values():
            yield from objects.values()

    def select(
        self, key: StorageKey, namespace: str | None, requirements: tuple[Requirement, ...]
    ) -> Iterator[Obj] | None:
        """Candidates for a label selector from the index (a superset of the matches), or
        None when no requirement narrows by value (`in`/`=`): then scan."""
        narrowing = [r for r in requirements if r.operator == "in"]
        if not narrowing:
            return None
        index = self._labelled.get(key, {})
        best: set[tuple[str, str]] | None = None
        for requirement in narrowing:
            refs: set[tuple[str, str]] = set()
            for value in requirement.values:
                refs |= index.get((requirement.key, value), set())
            if best is None or len(refs) < len(best):
                best = refs
        by_namespace = self._objects.get(key, {})
        return (
            by_namespace[ns][name]
            for ns, name in sorted(best or ())
            if namespace is None or ns == namespace
        )

    def count(self, key: StorageKey) -> int:
        return sum(len(objects) for objects in self._objects.get(key, {}).values())

    def namespaces_with_objects(self, key: StorageKey) -> list[str]:
        return [ns for ns, objects in self._objects.get(key, {}).items() if objects]

    def dependents_of(self, uid: str) -> list[ObjectRef]:
        return list(self._dependents.get(uid, ()))

    # -- writes (the caller has set metadata.resourceVersion from next_resource_version) --
    def put(self, key: StorageKey, obj: Obj) -> Change:
        meta = obj["metadata"]
        namespace, name = meta.get("namespace", ""), meta["name"]
        bucket = self._objects.setdefault(key, {}).setdefault(namespace, {})
        old = bucket.get(name)
        bucket[name] = obj
        self._reindex_owners(key, namespace, name, old, obj)
        self._reindex_labels(key, namespace, name, old, obj)
        change = Change(int(meta["resourceVersion"]), "MODIFIED" if old else "ADDED", obj, old)
        self._publish(key, change)
        return change

    def remove(self, key: StorageKey, namespace: str, name: str, final: Obj) -> Change | None:
        """Drop an object; `final` is its last state (with a fresh resourceVersion)."""
        bucket = self._objects.get(key, {}).get(namespace, {})
        old = bucket.pop(name, None)
        if old is None:
            return None
        self._reindex_owners(key, namespace, name, old, None)
        self._reindex_labels(key, namespace, name, old, None)
        change = Change(int(final["metadata"]["resourceVersion"]), "DELETED", final, old)
        self._publish(key, change)
        return change

    def drop_type(self, key: StorageKey) -> None:
        self._objects.pop(key, None)
        self._labelled.pop(key, None)

    def _reindex_labels(
        self, key: StorageKey, namespace: str, name: str, old: Obj | None, new: Obj | None
    ) -> None:
        old_labels = (old or {}).get("metadata", {}).get("labels") or {}
        new_labels = (new or {}).get("metadata", {}).get("labels") or {}
        if old_labels == new_labels:
            return
        index = self._labelled.setdefault(key, {})
        ref = (namespace, name)
        for item in old_labels.items():
            refs = index.get(item)
            if refs is not None:
                refs.discard(ref)
                if not refs:
                    del index[item]
        for item in new_labels.items():
            index.setdefault(item, set()).add(ref)

    def _reindex_owners(
        self, key: StorageKey, namespace: str, name: str, old: Obj | None, new: Obj | None
    ) -> None:
        ref = (key, namespace, name)
        for obj, add in ((old, False), (new, True)):
            for owner in (obj or {}).get("metadata", {}).get("ownerReferences") or []:
                uid = owner.get("uid")
                if not uid:
                    continue
                if add:
                    self._dependents.setdefault(uid, set()).add(ref)
                else:
                    refs = self._dependents.get(uid)
                    if refs is not None:
                        refs.discard(ref)
                        if not refs:
                            del self._dependents[uid]

    def _publish(self, key: StorageKey, change: Change) -> None:
        history = self._history.get(key)
        if history is None:
            history = self._history[key] = deque()
        if len(history) >= self._history_size:
            self._history_floor[key] = history.popleft().resource_version
        history.append(change)
        for watcher in self._watchers.get(key, ()):
            watcher.offer(change)
        for listener in self._listeners:
            listener(key, change)

    # -- watches -------------------------------------------------------------------------
    def watch(self, key: StorageKey, watcher: Watcher, since: int | None) -> None:
        """Register a watcher and queue what it missed since `since` (None: current state)."""
        if since is None:
            for obj in self.iterate(key, watcher.namespace):
                if watcher.selects(obj):
                    watcher.queue.put_nowait(("ADDED", obj))
        else:
            floor = max(self._history_floor.get(key, 0), self._compacted)
            if since < floor:
                raise TooOldError(f"too old resource version: {since} ({floor})")
            history = self._history.get(key, deque())
            missed = []
            for change in reversed(history):
                if change.resource_version <= since:
                    break
                missed.append(change)
            for change in reversed(missed):
                watcher.offer(change)
        self._watchers.setdefault(key, set()).add(watcher)

    def close_watches(self) -> None:
        """Tell every open watch to end (server shutdown)."""
        for watchers in self._watchers.values():
            for watcher in watchers:
                watcher.queue.put_nowait(("STOP", {}))

    def compact(self, resource_version: int | None = None) -> int:
        """Forget the history up to `resource_version` (default: now), as etcd compaction or a
        restarted API server's fresh watch cache does: a watch resuming from an older
        resourceVersion is then answered 410 Gone. Answers the compacted resourceVersion."""
        target = self._rv if resource_version is None else min(resource_version, self._rv)
        self._compacted = max(self._compacted, target)
        for history in self._history.values():
            while history and history[0].resource_version <= self._compacted:
                history.popleft()
        return self._compacted

    def drop_watches(self, selects: Callable[[StorageKey], bool] | None = None) -> int:
        """End the open watches (of the types `selects` picks, or all) at once: unregistered
        now, so no later change reaches them, however long their streams take to close.
        Answers how many."""
        dropped = 0
        for key in [k for k in self._watchers if selects is None or selects(k)]:
            for watcher in self._watchers.pop(key):
                watcher.queue.put_nowait(("STOP", {}))
                dropped += 1
        return dropped

    def unwatch(self, key: StorageKey, watcher: Watcher) -> None:
        self._watchers.get(key, set()).discard(watcher)
