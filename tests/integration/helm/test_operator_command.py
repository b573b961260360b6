"""The command and environment the chart gives the operator are ones `cpworker run` accepts
and understands as intended (checked with the operator's own parser and settings)."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from cpworker import runner
from cpworker.settings import OperatorSettings
from tests.integration.helm.chart import VALUES_MATRIX, manifests, operator_container


def _parsed(chart: helm.Chart, values: dict[str, Any]) -> tuple[Any, OperatorSettings]:
    container = operator_container(manifests(chart, values))
    assert container["args"][0] == "run", "the image's ENTRYPOINT is `cpworker`"
    args = runner.parse_args(container["args"][1:])
    literal_env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    settings = OperatorSettings(
        **{
            name.removeprefix("CPWORKER_").lower(): value
            for name, value in literal_env.items()
            if name.startswith("CPWORKER_")
        }
    )
    return args, settings


@pytest.mark.parametrize("values", VALUES_MATRIX.values(), ids=VALUES_MATRIX.keys())
def test_cpworker_run_accepts_the_chart_command(chart: helm.Chart, values: dict[str, Any]) -> None:
    args, settings = _parsed(chart, values)
    assert args.liveness is True
    assert settings.health_host == "0.0.0.0"
    assert settings.health_port == chart.merge_values(values)["liveness"]["port"]


def test_scope_and_peering_reach_kopf_as_intended(chart: helm.Chart) -> None:
    args, _ = _parsed(chart, VALUES_MATRIX["defaults"])
    assert (args.all_namespaces, args.namespace, args.standalone) == (True, [], True)
    args, _ = _parsed(chart, VALUES_MATRIX["namespaced"])
    assert (args.all_namespaces, args.namespace) == (False, ["ci", "build"])
    args, _ = _parsed(chart, VALUES_MATRIX["ha"])
    assert (args.standalone, args.peering) == (False, "cpworker")


def test_logging_and_region_values_are_valid_operator_settings(chart: helm.Chart) -> None:
    _, settings = _parsed(chart, VALUES_MATRIX["everything-set"])
    assert (settings.log_format, settings.log_level) == ("text", "DEBUG")
    _, settings = _parsed(chart, VALUES_MATRIX["irsa"])
    assert settings.default_region == "eu-west-1"


def test_events_queue_and_shard_selector_reach_the_operator(chart: helm.Chart) -> None:
    _, settings = _parsed(chart, VALUES_MATRIX["events-shard"])
    assert settings.events_queue_url == (
        "https://sqs.eu-west-1.amazonaws.com/123456789012/cpworker-events"
    )
    assert settings.events_queue_region == "eu-west-1"
    assert settings.worker_selector == "shard in (a,b),!legacy"
    _, settings = _parsed(chart, VALUES_MATRIX["defaults"])
    assert (settings.events_queue_url, settings.worker_selector) == (None, None)
