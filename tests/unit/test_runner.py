from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cpworker.runner import effective_priority, operator_kwargs
from cpworker.settings import load_settings


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


KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:9"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


@pytest.mark.parametrize(
    ("options", "leased"),
    [
        ({"standalone": True}, False),
        ({"peering": "cpworker"}, True),
        ({}, False),  # no peering configured either: standalone
    ],
)
def test_only_operators_with_peering_take_a_report_lease(
    tmp_path: Path, options: dict[str, Any], leased: bool
) -> None:
    """A standalone operator is the only reporter of its Jobs; replicas may overlap."""
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(KUBECONFIG)
    kwargs = operator_kwargs(
        load_settings({"default_region": "us-east-1"}), kubeconfig=str(kubeconfig), **options
    )
    runtime = kwargs["memo"]["runtime"]
    try:
        assert kwargs["standalone"] is not leased
        assert (runtime.reporter.lease_seconds is not None) is leased
        assert (runtime.settings.report_lease_seconds is not None) is leased
    finally:
        runtime.executor.shutdown()
