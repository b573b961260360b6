"""How known CodePipeline job workers poll, as policy models for the baselines.

Each model reproduces only the *polling policy* of a product, and is labelled as a model,
never as the product itself. Where the policies come from:

- AWS Java sample worker (awslabs/aws-codepipeline-custom-job-worker, README:
  `POLL_INTERVAL_MS = 30000L`): a fixed 30 s, up to 10 jobs per poll;
- TeamCity plugin (JetBrains/teamcity-aws-codepipeline-plugin): a fixed 20 s;
- Jenkins plugin (jenkinsci/aws-codepipeline-plugin): an SCM-polling cron of at least a
  minute, which Jenkins spreads with 0-55 s of jitter;
- Buildkite's Kubernetes stack (buildkite/agent-stack-k8s, `--poll-interval`, 1 s default).

Every model dispatches as the raw loop does (acknowledge, Secret, Job), so that what differs
from our operator under the same stand-ins and workload is the policy alone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class PollingPolicy:
    """Poll, then wait `interval` plus a uniform 0..`jitter` seconds (divided by `scale`)."""

    name: str
    label: str
    interval: float
    jitter: float = 0.0
    batch: int = 1

    def next_delay(self, rng: random.Random, scale: float = 1.0) -> float:
        return (self.interval + rng.uniform(0.0, self.jitter)) / scale

    def first_delay(self, rng: random.Random, scale: float = 1.0) -> float:
        """Workers start at different times: the first poll falls anywhere in one period."""
        return rng.uniform(0.0, self.interval + self.jitter) / scale

    def expected_calls_per_worker_hour(self, scale: float = 1.0) -> float:
        mean = (self.interval + self.jitter / 2) / scale
        return 3600.0 / mean if mean > 0 else float("inf")


BASELINES: tuple[PollingPolicy, ...] = (
    PollingPolicy(
        "aws-java-sample",
        "fixed 30 s: a model of the AWS Java sample worker's polling policy, not the product",
        interval=30.0,
        batch=10,
    ),
    PollingPolicy(
        "teamcity",
        "fixed 20 s: a model of the TeamCity plugin's polling policy, not the product",
        interval=20.0,
    ),
    PollingPolicy(
        "jenkins",
        "1 min + 0-55 s jitter: a model of the Jenkins plugin's polling policy, not the product",
        interval=60.0,
        jitter=55.0,
    ),
    PollingPolicy(
        "buildkite-k8s",
        "1 s floor: a model of Buildkite's Kubernetes stack's polling policy, not the product",
        interval=1.0,
    ),
)

# The raw loop of the burst: poll again at once, as fast as the stand-ins answer.
CEILING = PollingPolicy(
    "raw-ceiling",
    "no wait: only the necessary calls, as fast as the stand-ins allow",
    0.0,
    batch=10,
)


def by_name(name: str) -> PollingPolicy:
    for policy in (*BASELINES, CEILING):
        if policy.name == name:
            return policy
    raise KeyError(name)
