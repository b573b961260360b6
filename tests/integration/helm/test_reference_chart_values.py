"""The chart values docs/reference.md names for a setting set that setting."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from cpworker.settings import ENV_PREFIX
from tests.integration.helm.chart import manifests, operator_container
from tools.docs.reference import CHART_VALUES

SAMPLE = {
    "aws.region": "eu-central-1",
    "logging.format": "text",
    "logging.level": "DEBUG",
    "liveness.port": 9191,
    "artifacts.image": "registry.example.com/cpworker:9.9.9",
}


def _nested(path: str, value: Any) -> dict[str, Any]:
    head, _, rest = path.partition(".")
    return {head: _nested(rest, value) if rest else value}


@pytest.mark.parametrize(("setting", "value_path"), sorted(CHART_VALUES.items()))
def test_the_chart_value_sets_the_setting(chart: helm.Chart, setting: str, value_path: str) -> None:
    value = SAMPLE[value_path]
    container = operator_container(manifests(chart, _nested(value_path, value)))
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env[f"{ENV_PREFIX}{setting.upper()}"] == str(value)
