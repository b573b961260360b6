"""The image of the in-pod artifact helper: the operator's own by default, pinned like it, or
an explicit override; always a value the operator's settings accept."""

from __future__ import annotations

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
