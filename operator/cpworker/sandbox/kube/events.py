"""Events: what a controller records (`record`), and events.k8s.io/v1 Events as a view of
core v1 Events (one storage, as in Kubernetes): field renames between the two shapes."""

from __future__ import annotations

import contextlib
import uuid
from typing import TYPE_CHECKING, Any

from cpworker.sandbox.kube.errors import ApiError
from cpworker.sandbox.kube.store import now_rfc3339

if TYPE_CHECKING:
    from cpworker.sandbox.kube.api import Api

Obj = dict[str, Any]

# events.k8s.io/v1 name -> core v1 name
_RENAMED = {
    "regarding": "involvedObject",
    "note": "message",
    "reportingController": "reportingComponent",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
}
_BACK = {core: new for new, core in _RENAMED.items()}
_RECORDED_MAX = 10_000


def to_core(event: Any) -> Any:
    if not isinstance(event, dict):
        return event
    converted = {_RENAMED.get(key, key): value for key, value in event.items()}
    converted["apiVersion"], converted["kind"] = "v1", "Event"
    return converted


def from_core(event: Obj) -> Obj:
    converted = {_BACK.get(key, key): value for key, value in event.items()}
    converted["apiVersion"] = "events.k8s.io/v1"
    if not converted.get("reportingController") and isinstance(event.get("source"), dict):
        converted["reportingController"] = event["source"].get("component", "")
    return converted


def core_field_selector(text: str | None) -> str | None:
    """events.k8s.io field selectors name `regarding.*`; the stored objects say
    `involvedObject.*`."""
    return text.replace("regarding.", "involvedObject.") if text else text


def record(api: Api, obj: Obj, kind: str, reason: str, message: str, *, component: str) -> None:
    """An Event about `obj`, as a controller's event recorder writes it (a repeat of the same
    reason and message within the object bumps `count`, as the recorder's aggregation does)."""
    meta = obj["metadata"]
    events = api.registry.get("", "v1", "events")
    if events is None:
        return
    stamp = now_rfc3339()
    key = (meta["uid"], reason, message, component)
    seen = api.recorded_events.get(key)
    existing = api.store.get(("", "events"), *seen) if seen else None
    if existing is not None:
        bumped = {**existing, "count": int(existing.get("count", 1)) + 1, "lastTimestamp": stamp}
        with contextlib.suppress(ApiError):
            api.update(events, meta["namespace"], existing["metadata"]["name"], bumped)
        return
    name = f"{meta['name']}.{uuid.uuid4().hex[:16]}"
    body = {
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
        },
        "involvedObject": {
            "kind": obj["kind"],
            "namespace": meta["namespace"],
            "name": meta["name"],
            "uid": meta["uid"],
            "apiVersion": obj["apiVersion"],
            "resourceVersion": meta["resourceVersion"],
        },
        "reason": reason,
        "message": message,
        "type": kind,
        "source": {"component": component},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "reportingComponent": component,
        "reportingInstance": "",
    }
    with contextlib.suppress(ApiError):
        api.create(events, meta["namespace"], body)
        if len(api.recorded_events) >= _RECORDED_MAX:
            del api.recorded_events[next(iter(api.recorded_events))]
        api.recorded_events[key] = (meta["namespace"], name)
