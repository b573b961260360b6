"""The image of the in-pod artifact helper: the operator's own by default, pinned like it, or
an explicit override; always a value the operator's settings accept."""

from __future__ import annotations

import json
from typing import Any

import helm_python as helm
import pytest

from cpworker.settings import load_settings
from tests.integration.helm.chart import manifests, operator_container

DIGEST = "sha256:" + "b" * 64


def _artifacts_image(chart: helm.Chart, values: dict[str, Any]) -> str:
    env = {e["name"]: e.get("value") for e in operator_container(manifests(chart, values))["env"]}
    image = env["CPWORKER_ARTIFACTS_IMAGE"]
    assert isinstance(image, str)
    assert load_settings({"artifacts_image": image}).artifacts_image == image
    return image


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, "ghcr.io/cpworker/cpworker:0.1.0"),
        ({"image": {"tag": "1.2.3"}}, "ghcr.io/cpworker/cpworker:1.2.3"),
        ({"image": {"tag": "1.2.3", "digest": DIGEST}}, f"ghcr.io/cpworker/cpworker@{DIGEST}"),
        (
            {"image": {"digest": DIGEST}, "artifacts": {"image": "registry.local/helper:7"}},
            "registry.local/helper:7",
        ),
    ],
    ids=["defaults", "tag", "digest", "override"],
)
def test_the_helper_image_follows_the_operator_image(
    chart: helm.Chart, values: dict[str, Any], expected: str
) -> None:
    image = _artifacts_image(chart, values)
    assert image == expected
    if "artifacts" not in values:
        assert image == operator_container(manifests(chart, values))["image"]


def test_an_image_with_whitespace_is_refused(chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmValuesError, match="image"):
        chart.validate_schema({"artifacts": {"image": "two words"}})


def _operator_env(chart: helm.Chart, values: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in operator_container(manifests(chart, values))["env"]}


def test_the_artifact_settings_reach_the_operator_as_it_reads_them(chart: helm.Chart) -> None:
    default = _operator_env(chart, {})
    settings = load_settings(
        {
            "artifacts_push_grace_seconds": default["CPWORKER_ARTIFACTS_PUSH_GRACE_SECONDS"],
            "artifacts_resources": json.loads(default["CPWORKER_ARTIFACTS_RESOURCES"]),
        }
    )
    assert settings.artifacts_push_grace_seconds == 900
    assert settings.artifacts_resources == load_settings().artifacts_resources
    assert "CPWORKER_ARTIFACTS_S3_ENDPOINT_URL" not in default

    values = {
        "artifacts": {
            "pushGraceSeconds": 1800,
            "s3EndpointUrl": "https://bucket.vpce-0a1b.s3.us-east-1.vpce.amazonaws.com",
            "resources": {"requests": {"cpu": 1, "memory": "1Gi"}, "limits": {"memory": "4Gi"}},
        }
    }
    env = _operator_env(chart, values)
    settings = load_settings(
        {
            "artifacts_push_grace_seconds": env["CPWORKER_ARTIFACTS_PUSH_GRACE_SECONDS"],
            "artifacts_resources": json.loads(env["CPWORKER_ARTIFACTS_RESOURCES"]),
            "artifacts_s3_endpoint_url": env["CPWORKER_ARTIFACTS_S3_ENDPOINT_URL"],
        }
    )
    assert settings.artifacts_push_grace_seconds == 1800
    assert settings.artifacts_resources == {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"memory": "4Gi"},
    }
    assert settings.artifacts_s3_endpoint_url == values["artifacts"]["s3EndpointUrl"]


@pytest.mark.parametrize(
    "artifacts",
    [{"pushGraceSeconds": 0}, {"s3EndpointUrl": "s3.example.com"}, {"resources": {"cpus": {}}}],
)
def test_bad_artifact_values_are_refused(chart: helm.Chart, artifacts: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmValuesError):
        chart.validate_schema({"artifacts": artifacts})
