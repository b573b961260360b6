"""What one benchmark run measures: sizes, windows and the time scale, with two presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

EventsMode = Literal["auto", "on", "off"]


@dataclass(frozen=True)
class Plan:
    """Sizes and windows of one run. Times are seconds of wall clock.

    `time_scale` divides every polling interval (our workers' idle ceiling and the baselines'
    intervals) so that a short run still sees many polls; figures are reported as measured,
    so a scaled run's latencies and per-hour costs are not the defaults' (its metadata says so).
    """

    jobs: int = 1000  # P3: burst size N
    workers: int = 50  # P3: workers M sharing the burst
    idle_workers: tuple[int, ...] = (1000,)  # P4: fleet sizes K; the first is the headline
    idle_seconds: float = 300.0  # measurement window once the fleet is Ready
    idle_jobs: int = 30  # jobs started while the fleet idles (dispatch and report latency)
    ready_timeout: float = 900.0  # at most this long for the fleet to become Ready
    # At most this long (from the start) for every worker's first poll before the idle window.
    steady_timeout: float = 600.0
    drain_timeout: float = 600.0  # at most this long for started jobs to finish afterwards
    baseline_workers: int = 20  # workers per baseline model (a pool each)
    baseline_seconds: float = 120.0  # window in which baseline jobs are started
    baseline_jobs: int = 20  # jobs per baseline model
    shard_workers: int = 200  # two shards of one fleet (label selectors)
    shard_jobs: int = 100  # jobs started over their pools
    shard_seconds: float = 60.0  # window in which the shard jobs are started
    burst_timeout: float = 900.0
    burst_rate: float = 1000.0  # the operator's rate budget during the burst (calls/s)
    job_duration: float = 1.0  # how long each simulated pod runs
    time_scale: float = 1.0
    events: EventsMode = "auto"
    seed: int = 1
    quick: bool = False

    def with_changes(self, **changes: object) -> Plan:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


FULL = Plan()

# Well under a minute on the 2-core build machine: small sizes, polling 20 times faster.
QUICK = Plan(
    jobs=100,
    workers=10,
    idle_workers=(20,),
    idle_seconds=4.0,
    idle_jobs=8,
    ready_timeout=30.0,
    steady_timeout=20.0,
    drain_timeout=6.0,
    baseline_workers=6,
    baseline_seconds=3.0,
    baseline_jobs=6,
    shard_workers=20,
    shard_jobs=10,
    shard_seconds=3.0,
    burst_timeout=60.0,
    job_duration=0.5,
    time_scale=20.0,
    quick=True,
)
