"""The one place that reads and writes timestamps (RFC 3339, UTC, whole seconds).

Kubernetes stores metav1.Time with second precision; the operator's own annotations use the
same form, so every timestamp on a Job reads alike (`2026-11-29T10:00:00Z`).
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
