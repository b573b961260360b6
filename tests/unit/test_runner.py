from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from cpworker import kube
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


def test_login_rereads_a_rotating_token() -> None:
    # In-cluster, the kubernetes client re-reads the projected token file through this hook.
    tokens = iter(["first-token", "rotated-token"])

    def refresh(configuration: Any) -> None:
        configuration.api_key = {"authorization": f"Bearer {next(tokens)}"}

    configuration = SimpleNamespace(
        host="https://10.0.0.1:443",
        api_key={},
        refresh_api_key_hook=refresh,
        ssl_ca_cert="/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
        verify_ssl=True,
        cert_file=None,
        key_file=None,
        username="",
        password="",
    )
    assert kube.connection_info(configuration).token == "first-token"
    assert kube.connection_info(configuration).token == "rotated-token"
