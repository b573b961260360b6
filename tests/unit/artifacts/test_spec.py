"""spec.artifacts: defaults, and the same rules in the CRD (schema + CEL) and in the models."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpworker import models
from cpworker.models import InvalidSpecError, parse_spec
from tests.unit.operator.samples import spec
from tests.unit.operator.test_crd import _cel_failures, _json_schema_errors, _resource, _root
from tests.unit.operator.test_crd_api import _create, _rejection


def test_defaults() -> None:
    artifacts = parse_spec(spec()).artifacts
    assert artifacts.enabled is True
    assert (artifacts.input_dir, artifacts.output_dir) == ("/workspace/in", "/workspace/out")
    assert artifacts.limits.max_total_bytes == 10 * 1024**3
    assert artifacts.limits.max_files == 100_000
    assert artifacts.limits.max_compression_ratio == 100


def test_crd_defaults_equal_model_defaults() -> None:
    schema = _root()["properties"]["spec"]["properties"]["artifacts"]["properties"]
    defaults = models.Artifacts()
    assert schema["enabled"]["default"] is True
    assert schema["inputDir"]["default"] == defaults.input_dir
    assert schema["outputDir"]["default"] == defaults.output_dir
    limits = schema["limits"]["properties"]
    assert limits["maxTotalBytes"]["default"] == defaults.limits.max_total_bytes
    assert limits["maxFiles"]["default"] == defaults.limits.max_files
    assert limits["maxCompressionRatio"]["default"] == defaults.limits.max_compression_ratio


@pytest.mark.parametrize(
    ("artifacts", "message"),
    [
        ({"inputDir": "/w", "outputDir": "/w/out"}, models.ARTIFACT_DIRS_MESSAGE),
        ({"inputDir": "/w/in/x", "outputDir": "/w/in"}, models.ARTIFACT_DIRS_MESSAGE),
        ({"inputDir": "/same", "outputDir": "/same"}, models.ARTIFACT_DIRS_MESSAGE),
        ({"outputDir": "/workspace/in"}, models.ARTIFACT_DIRS_MESSAGE),  # the default input
        ({"inputDir": "/var/run/cpworker/in"}, models.ARTIFACT_DIR_RESERVED_MESSAGE),
        ({"outputDir": "/var/run/cpworker"}, models.ARTIFACT_DIR_RESERVED_MESSAGE),
    ],
)
def test_cel_and_models_reject_overlapping_or_reserved_directories(
    artifacts: dict[str, Any], message: str
) -> None:
    raw = spec(artifacts=artifacts)
    assert message in _cel_failures(_resource(raw))
    with pytest.raises(InvalidSpecError) as refused:
        parse_spec(raw)
    assert message in refused.value.message


@pytest.mark.parametrize(
    "artifacts",
    [
        {"inputDir": "relative/in"},
        {"inputDir": "/"},
        {"inputDir": "/w/../etc"},
        {"outputDir": "/w/./out"},
        {"outputDir": "/w/out/"},
        {"inputDir": "/w/.hidden"},
        {"limits": {"maxFiles": 0}},
        {"limits": {"maxTotalBytes": 2 * 1024**4}},
        {"limits": {"maxCompressionRatio": 0}},
    ],
)
def test_schema_and_models_reject_bad_values(artifacts: dict[str, Any]) -> None:
    raw = spec(artifacts=artifacts)
    assert _json_schema_errors(_resource(raw))
    with pytest.raises(InvalidSpecError, match=r"spec\.artifacts"):
        parse_spec(raw)


def test_an_unknown_field_is_refused_not_ignored() -> None:
    """The API server prunes it (kubectl's strict field validation refuses it); so do we."""
    with pytest.raises(InvalidSpecError, match=r"spec\.artifacts\.unknown"):
        parse_spec(spec(artifacts={"unknown": 1}))


DIRS = st.sampled_from(["/a", "/a/b", "/b", "/a-b", "/ab", "/var/run", "/var/run/cpworker/x"])


@settings(max_examples=100, deadline=None)
@given(DIRS, DIRS)
def test_crd_and_models_agree_on_directories(input_dir: str, output_dir: str) -> None:
    raw = spec(artifacts={"inputDir": input_dir, "outputDir": output_dir})
    crd_accepts = not _json_schema_errors(_resource(raw)) and not _cel_failures(_resource(raw))
    try:
        parse_spec(raw)
        model_accepts = True
    except InvalidSpecError:
        model_accepts = False
    assert crd_accepts == model_accepts


def test_the_api_server_fills_defaults_and_enforces_the_rules(kube_api: Any) -> None:
    """Through the local Kubernetes API (the committed CRD, its defaults and CEL rules)."""
    created = _create(kube_api, "with-artifacts", spec(artifacts={"limits": {"maxFiles": 5}}))
    stored = created["spec"]["artifacts"]
    assert stored == {
        "enabled": True,
        "inputDir": "/workspace/in",
        "outputDir": "/workspace/out",
        "limits": {
            "maxTotalBytes": models.DEFAULT_MAX_TOTAL_BYTES,
            "maxFiles": 5,
            "maxCompressionRatio": models.DEFAULT_MAX_COMPRESSION_RATIO,
        },
    }
    assert parse_spec(created["spec"]).artifacts.limits.max_files == 5
    refused = _rejection(
        kube_api, "overlapping", spec(artifacts={"inputDir": "/w", "outputDir": "/w/out"})
    )
    assert models.ARTIFACT_DIRS_MESSAGE in refused
