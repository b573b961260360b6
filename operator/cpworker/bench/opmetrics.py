"""What the operator's own metrics say over a window: event-loop lag and rate-budget waits.

The operator measures its event loop from the inside (`cpworker_event_loop_lag_seconds`, a
task that sleeps 0.25 s and records how late it wakes) and every call's wait for the rate
budget by lane (`cpworker_codepipeline_rate_budget_wait_seconds`). The benchmark scrapes
`/metrics` at the start and the end of a window and reads the difference: quantiles from a
histogram's buckets are upper bounds (the bucket a quantile falls in), means are exact.
"""

from __future__ import annotations

import math
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

LAG = "cpworker_event_loop_lag_seconds"
BUDGET_WAIT = "cpworker_codepipeline_rate_budget_wait_seconds"


@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts (upper bound -> count), count and sum of one series."""

    buckets: Mapping[float, float] = field(default_factory=dict)
    count: float = 0.0
    total: float = 0.0

    def minus(self, earlier: Histogram) -> Histogram:
        return Histogram(
            {le: n - earlier.buckets.get(le, 0.0) for le, n in self.buckets.items()},
            self.count - earlier.count,
            self.total - earlier.total,
        )

    def quantile(self, q: float) -> float | None:
        """The upper bound of the bucket holding the q-th quantile (0-1); None when empty."""
        if self.count <= 0:
            return None
        rank = q * self.count
        for le in sorted(self.buckets):
            if self.buckets[le] >= rank:
                return le
        return math.inf

    def summary(self) -> dict[str, Any]:
        def bound(q: float) -> float | None:
            value = self.quantile(q)
            return None if value is None or math.isinf(value) else value

        return {
            "p50_at_most": bound(0.5),
            "p99_at_most": bound(0.99),
            "mean": round(self.total / self.count, 6) if self.count > 0 else None,
            "samples": int(self.count),
        }


Series = dict[tuple[str, tuple[tuple[str, str], ...]], Histogram]


def parse(text: str) -> Series:
    """Every histogram series in a Prometheus text exposition, by (name, labels without le)."""
    parts: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, Any]] = defaultdict(
        lambda: {"buckets": {}, "count": 0.0, "sum": 0.0}
    )
    for family in text_string_to_metric_families(text):
        if family.type != "histogram":
            continue
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
            entry = parts[(family.name, labels)]
            if sample.name.endswith("_bucket"):
                entry["buckets"][float(sample.labels["le"])] = sample.value
            elif sample.name.endswith("_count"):
                entry["count"] = sample.value
            elif sample.name.endswith("_sum"):
                entry["sum"] = sample.value
    return {key: Histogram(v["buckets"], v["count"], v["sum"]) for key, v in parts.items()}


def scrape(port: int, timeout: float = 10.0) -> Series:
    """The operator's histograms now (empty when /metrics cannot be read)."""
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        # S310: our own http://127.0.0.1 endpoint.
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return parse(answer.read().decode())
    except (urllib.error.URLError, OSError, TimeoutError):
        return {}


def _total(series: Series, name: str, **labels: str) -> Histogram:
    """The sum of the series of `name` whose labels include `labels`."""
    buckets: dict[float, float] = defaultdict(float)
    count = total = 0.0
    for (metric, key), histogram in series.items():
        if metric != name or not set(labels.items()) <= set(key):
            continue
        for le, n in histogram.buckets.items():
            buckets[le] += n
        count += histogram.count
        total += histogram.total
    return Histogram(dict(buckets), count, total)


def window(start: Series, end: Series) -> dict[str, Any]:
    """The lag and the budget waits per lane between two scrapes."""
    figures: dict[str, Any] = {
        "event_loop_lag_s": _total(end, LAG).minus(_total(start, LAG)).summary(),
        "rate_budget_wait_s": {
            lane: _total(end, BUDGET_WAIT, lane=lane)
            .minus(_total(start, BUDGET_WAIT, lane=lane))
            .summary()
            for lane in ("urgent", "poll")
        },
    }
    figures["method"] = (
        "the operator's own histograms, scraped from /metrics at the window's start and end: "
        "p50/p99 are the upper bounds of the buckets they fall in, means are exact"
    )
    return figures
