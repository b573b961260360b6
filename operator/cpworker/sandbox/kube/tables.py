"""`Accept: application/json;as=Table` answers, from printer columns (pure)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from cpworker.sandbox.kube.resources import PrinterColumn, ResourceType

Obj = dict[str, Any]

_TOKEN = re.compile(
    r"\.([A-Za-z0-9_\-/]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_.]+)\s*==\s*[\"']([^\"']*)[\"']\)\]|\['([^']+)'\]"
)


def jsonpath(obj: Any, path: str) -> list[Any]:
    """The small JSONPath subset printer columns use: .a.b, [0], ['k'], [?(@.k=="v")]."""
    values = [obj]
    position = 0
    path = path.strip().removeprefix("{").removesuffix("}").removeprefix("$")
    while position < len(path):
        match = _TOKEN.match(path, position)
        if not match:
            return []
        position = match.end()
        field, index, filter_key, filter_value, quoted = match.groups()
        next_values: list[Any] = []
        for value in values:
            if field is not None or quoted is not None:
                key = field if field is not None else quoted
                if isinstance(value, dict) and key in value:
                    next_values.append(value[key])
            elif index is not None:
                if isinstance(value, list) and int(index) < len(value):
                    next_values.append(value[int(index)])
            elif isinstance(value, list):
                for item in value:
                    probe = jsonpath(item, "." + filter_key)
                    if probe and str(probe[0]) == filter_value:
                        next_values.append(item)
        values = next_values
    return values


def human_age(timestamp: str, now: dt.datetime | None = None) -> str:  # noqa: PLR0911 - one branch per case of the protocol
    """Like the API server's HumanDuration: 45s, 3m20s, 5h, 2d."""
    try:
        then = dt.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return "<invalid>"
    seconds = int(((now or dt.datetime.now(dt.UTC)) - then).total_seconds())
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h"
    return f"{hours // 24}d"


def _job_status(job: Obj) -> str:
    """As kubectl 1.32 shows a Job's STATUS."""
    true = {
        c.get("type")
        for c in (job.get("status") or {}).get("conditions") or []
        if c.get("status") == "True"
    }
    for kind in ("Failed", "Complete", "Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if kind in true:
            return kind
    return "Running"


def _job_completions(job: Obj) -> str:
    succeeded = (job.get("status") or {}).get("succeeded") or 0
    return f"{succeeded}/{(job.get('spec') or {}).get('completions', 1)}"


def _job_duration(job: Obj) -> str:
    status = job.get("status") or {}
    start = status.get("startTime")
    if not start:
        return ""
    end = status.get("completionTime")
    if end:
        now = dt.datetime.strptime(end, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        return human_age(start, now)
    return human_age(start)


def _pod_status(pod: Obj) -> str:
    """As kubectl shows a Pod's STATUS: a container's waiting/terminated reason, else phase."""
    status = pod.get("status") or {}
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        for key in ("waiting", "terminated"):
            reason = (state.get(key) or {}).get("reason")
            if reason and not (key == "terminated" and reason == "Completed"):
                return str(reason)
    if status.get("phase") == "Succeeded":
        return "Completed"
    return str(status.get("phase", "Pending"))


def _pod_ready(pod: Obj) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    ready = sum(
        1 for c in (pod.get("status") or {}).get("containerStatuses") or [] if c.get("ready")
    )
    return f"{ready}/{len(containers)}"


def _pod_restarts(pod: Obj) -> int:
    return sum(
        int(c.get("restartCount") or 0)
        for c in (pod.get("status") or {}).get("containerStatuses") or []
    )


# Columns whose cell is computed, as the real server's printers do for built-ins.
COMPUTED = {
    "@job-status": _job_status,
    "@job-completions": _job_completions,
    "@job-duration": _job_duration,
    "@pod-status": _pod_status,
    "@pod-ready": _pod_ready,
    "@pod-restarts": _pod_restarts,
}


def _cell(column: PrinterColumn, obj: Obj) -> Any:
    computed = COMPUTED.get(column.json_path)
    if computed is not None:
        return computed(obj)
    found = jsonpath(obj, column.json_path)
    if not found:
        return None
    value = found[0] if len(found) == 1 else ",".join(str(v) for v in found)
    if column.type == "date" and isinstance(value, str):
        return human_age(value)
    if column.type == "integer" and isinstance(value, bool | int | float):
        return int(value)
    if column.type == "string" and isinstance(value, dict | list):
        return str(value)
    return value


def column_definitions(rtype: ResourceType) -> list[Obj]:
    columns = [
        {
            "name": "Name",
            "type": "string",
            "format": "name",
            "priority": 0,
            "description": "Name must be unique within a namespace.",
        }
    ]
    columns.extend(
        {
            "name": column.name,
            "type": column.type,
            "format": column.format,
            "description": column.description,
            "priority": column.priority,
        }
        for column in rtype.columns
    )
    return columns


def row(rtype: ResourceType, obj: Obj, include: str) -> Obj:
    cells = [obj["metadata"]["name"]] + [_cell(column, obj) for column in rtype.columns]
    result: Obj = {"cells": cells}
    if include == "Object":
        result["object"] = obj
    elif include != "None":
        result["object"] = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj["metadata"],
        }
    return result


def table(
    rtype: ResourceType,
    objects: list[Obj],
    resource_version: str,
    include: str,
    *,
    with_columns: bool = True,
    extra_metadata: Obj | None = None,
) -> Obj:
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version, **(extra_metadata or {})},
        "columnDefinitions": column_definitions(rtype) if with_columns else [],
        "rows": [row(rtype, obj, include) for obj in objects],
    }
