"""values.schema.json rejects bad values with messages that name the offending key."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from tests.integration.helm.chart import VALUES_MATRIX, manifests


@pytest.mark.parametrize("values", VALUES_MATRIX.values(), ids=VALUES_MATRIX.keys())
def test_matrix_values_are_accepted(chart: helm.Chart, values: dict[str, Any]) -> None:
    chart.validate_schema(values)


def test_chart_defaults_are_accepted(chart: helm.Chart) -> None:
    chart.validate_schema(chart.values)


REJECTED: dict[str, tuple[dict[str, Any], str]] = {
    "wrong type": ({"replicaCount": "two"}, "replicaCount"),
    "unknown top-level key": ({"replicas": 2}, "replicas"),
    "negative replicas": ({"replicaCount": -1}, "replicaCount"),
    "bad enum (log format)": ({"logging": {"format": "xml"}}, "format"),
    "bad enum (pull policy)": ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
    "unknown nested key": ({"serviceAccount": {"annotation": {}}}, "annotation"),
    "namespace not a DNS label": ({"watchNamespaces": ["CI_Builds"]}, "watchNamespaces"),
    "malformed digest": ({"image": {"digest": "latest"}}, "digest"),
    "port out of range": ({"liveness": {"port": 70000}}, "port"),
    "bad region": ({"aws": {"region": "Europe"}}, "region"),
    "non-string annotation": ({"podAnnotations": {"a": 1}}, "podAnnotations"),
    "events queue not a URL": ({"events": {"queueUrl": "cpworker-events"}}, "queueUrl"),
    "bad events region": ({"events": {"region": "Ireland"}}, "region"),
    "selector with a newline": ({"workerSelector": "shard=a\n"}, "workerSelector"),
}


@pytest.mark.parametrize(("values", "key"), REJECTED.values(), ids=REJECTED.keys())
def test_bad_values_are_rejected_naming_the_key(
    chart: helm.Chart, values: dict[str, Any], key: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as raised:
        chart.validate_schema(values)
    assert key in str(raised.value)


def test_install_render_enforces_the_schema(chart: helm.Chart) -> None:
    """Rendering (what `helm install` does) refuses bad values, not just validate_schema."""
    with pytest.raises(helm.HelmError, match="replicaCount"):
        manifests(chart, {"replicaCount": -1})
