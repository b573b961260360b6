"""events.k8s.io/v1 Events are a view of core v1 Events (one storage, as in Kubernetes):
field renames between the two shapes (pure)."""

from __future__ import annotations

from typing import Any

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
