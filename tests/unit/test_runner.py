from __future__ import annotations

from cpworker.runner import effective_priority


def test_an_explicit_priority_wins() -> None:
    assert effective_priority(7, 3, peering=True, replica="cpworker-abc") == 7


def test_standalone_keeps_the_configured_priority() -> None:
    assert effective_priority(None, 0, peering=False, replica="cpworker-abc") == 0
    assert effective_priority(None, 5, peering=False, replica="cpworker-abc") == 5


def test_peering_replicas_get_distinct_stable_priorities() -> None:
    # kopf pauses all replicas that share the top priority: Deployment pods must differ.
    replicas = [f"cpworker-7d9c5b-{suffix}" for suffix in ("x2k4p", "q8r7t", "m3n6w", "zz9aa")]
    priorities = [effective_priority(None, 0, peering=True, replica=r) for r in replicas]
    assert len(set(priorities)) == len(replicas)
    assert all(p > 0 for p in priorities)
    assert priorities == [effective_priority(None, 0, peering=True, replica=r) for r in replicas]
