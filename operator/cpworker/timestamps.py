"""The one place that reads and writes timestamps (RFC 3339, UTC).

Kubernetes stores metav1.Time with second precision (`2026-11-29T10:00:00Z`); the operator's
own milestone annotations carry milliseconds (`2026-11-29T10:00:00.123Z`), because dispatch
latencies are measured in fractions of a second. `parse` reads both.
"""

from __future__ import annotations

import datetime as dt


def now() -> dt.datetime:
    """The current time, timezone-aware (UTC)."""
    return dt.datetime.now(dt.UTC)


def rfc3339(when: dt.datetime) -> str:
    """`when` as RFC 3339 in UTC at whole seconds; refuses naive datetimes."""
    if when.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_ms(when: dt.datetime) -> str:
    """`when` as RFC 3339 in UTC with milliseconds: the operator's own milestones (when a job
    became available, was released, was reported), precise enough for sub-second latencies."""
    if when.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return when.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse(value: object) -> dt.datetime | None:
    """A timezone-aware datetime from an RFC 3339 string (or a datetime); None if unreadable.

    A value without a zone is taken as UTC (Kubernetes always writes UTC).
    """
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str) and value:
        try:
            parsed = dt.datetime.fromisoformat(value)  # 3.11 reads the "Z" suffix
        except ValueError:
            return None
    else:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
