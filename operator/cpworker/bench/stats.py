"""Percentiles and rates: the arithmetic of the report, pure."""

from __future__ import annotations

import math
from collections.abc import Sequence

HOUR = 3600.0


def percentile(samples: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), linear between closest ranks; None without samples."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(samples: Sequence[float], *, digits: int = 4) -> dict[str, float | int | None]:
    """p50/p95/p99/mean/max and the sample count of a latency distribution (seconds)."""

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, digits)

    return {
        "p50": rounded(percentile(samples, 50)),
        "p95": rounded(percentile(samples, 95)),
        "p99": rounded(percentile(samples, 99)),
        "mean": rounded(sum(samples) / len(samples)) if samples else None,
        "max": rounded(max(samples)) if samples else None,
        "samples": len(samples),
    }


def per_hour(count: float, seconds: float) -> float:
    return count * HOUR / seconds if seconds > 0 else 0.0


def per_worker_hour(count: float, workers: int, seconds: float) -> float:
    return per_hour(count, seconds) / workers if workers > 0 else 0.0


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """ours / theirs, None when either is unknown or theirs is zero."""
    if ours is None or theirs is None or theirs == 0:
        return None
    return ours / theirs
