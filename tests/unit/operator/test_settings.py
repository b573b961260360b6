"""OperatorSettings: environment parsing, defaults, and readable start-up errors."""

from __future__ import annotations

import pytest

from cpworker.settings import (
    DEFAULT_ACTIVE_DEADLINE_SECONDS,
    DEFAULT_CREDENTIALS_REFRESH_SECONDS,
    OperatorSettings,
    SettingsError,
    load_settings,
)

ENV_NAMES = (
    "CPWORKER_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "CPWORKER_NAMESPACES",
    "CPWORKER_LOG_FORMAT",
    "CPWORKER_HEALTH_PORT",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.default_region is None
    assert settings.namespaces == ()
    assert settings.credentials_refresh_seconds == DEFAULT_CREDENTIALS_REFRESH_SECONDS == 600
    assert settings.never_started_grace_seconds == 300
    assert settings.continuation_after_seconds == 0
    assert settings.default_active_deadline_seconds == DEFAULT_ACTIVE_DEADLINE_SECONDS
    assert settings.log_format == "json"


def test_environment_with_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CPWORKER_NAMESPACES", "ci, builds ,")
    monkeypatch.setenv("CPWORKER_LOG_FORMAT", "text")
    monkeypatch.setenv("CPWORKER_HEALTH_PORT", "0")
    monkeypatch.setenv("CPWORKER_NEVER_STARTED_GRACE_SECONDS", "0.5")
    settings = load_settings()
    assert settings.namespaces == ("ci", "builds")
    assert settings.log_format == "text"
    assert settings.health_port == 0
    assert settings.never_started_grace_seconds == 0.5


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"AWS_DEFAULT_REGION": "eu-west-1"}, "eu-west-1"),
        ({"AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-north-1"}, "eu-north-1"),
        ({"AWS_REGION": "eu-north-1", "CPWORKER_DEFAULT_REGION": "us-west-2"}, "us-west-2"),
    ],
)
def test_region_falls_back_to_the_aws_variables(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], expected: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert load_settings().default_region == expected


def test_overrides_by_field_name() -> None:
    settings = load_settings({"default_region": "us-east-1", "rate_burst": 3})
    assert settings.default_region == "us-east-1"
    assert settings.rate_burst == 3
    assert OperatorSettings(default_region="us-east-2").default_region == "us-east-2"


def test_every_problem_is_listed_with_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CPWORKER_LOG_FORMAT", "xml")
    monkeypatch.setenv("CPWORKER_HEALTH_PORT", "99999")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "CPWORKER_LOG_FORMAT" in message
    assert "CPWORKER_HEALTH_PORT" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("credentials_refresh_seconds", 0),
        ("credentials_refresh_seconds", 4000),
        ("rate_per_second", 0),
        ("executor_threads", 0),
        ("default_region", "Moon-1"),
        ("default_active_deadline_seconds", 90000),
        ("log_level", "LOUD"),
        ("namespaces", "ci,Not_A_Namespace"),
    ],
)
def test_out_of_range_values_are_rejected(field: str, value: object) -> None:
    with pytest.raises(SettingsError, match=field.upper()):
        load_settings({field: value})


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.rate_burst = 1  # type: ignore[misc]


def test_every_field_is_documented() -> None:
    for name, info in OperatorSettings.model_fields.items():
        assert info.description, f"{name} has no description"


@pytest.mark.parametrize(
    "selector", ["shard=a", "shard in (a, b),!legacy", "example.com/pool!=gpu", "team"]
)
def test_worker_selector_takes_kubernetes_label_selectors(selector: str) -> None:
    assert load_settings({"worker_selector": selector}).worker_selector == selector


def test_an_empty_worker_selector_serves_every_worker() -> None:
    assert load_settings({"worker_selector": "  "}).worker_selector is None
    assert load_settings().worker_selector is None


@pytest.mark.parametrize("selector", ["shard in (a", "bad key=1", "a,,b", "shard=a b"])
def test_a_malformed_worker_selector_is_refused_naming_the_variable(selector: str) -> None:
    with pytest.raises(SettingsError, match=r"CPWORKER_WORKER_SELECTOR: .* label selector"):
        load_settings({"worker_selector": selector})
