"""Read a Prometheus exposition the way Prometheus does (prometheus_client's own parser).

`Scrape.value("cpworker_jobs_total", outcome="failed")` sums every sample of that name whose
labels include the given ones, so a test states only the labels it cares about.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


@dataclass(frozen=True)
class Scrape:
    """One parsed exposition: metric families and their samples."""

    text: str

    def families(self) -> dict[str, str]:
        """Family name -> type (counter, gauge, histogram, ...)."""
        return {f.name: f.type for f in text_string_to_metric_families(self.text)}

    def samples(self) -> Iterator[Sample]:
        for family in text_string_to_metric_families(self.text):
            yield from family.samples

    def value(self, name: str, **labels: str) -> float:
        """Sum of the samples called `name` whose labels include `labels` (0 when none)."""
        return sum(
            sample.value
            for sample in self.samples()
            if sample.name == name and labels.items() <= sample.labels.items()
        )

    def label_values(self, label: str) -> set[str]:
        """Every value the label takes in any sample."""
        return {s.labels[label] for s in self.samples() if label in s.labels}


def scrape(url: str, timeout: float = 10.0) -> Scrape:
    """GET a /metrics URL (loopback only in tests)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return Scrape(response.read().decode())
