"""The CustomActionWorker spec/status models: validation, messages and condition helpers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpworker import models
from cpworker.models import (
    CustomActionWorkerStatus,
    InvalidSpecError,
    Reason,
    parse_spec,
    ready_condition,
    set_condition,
    spec_warnings,
)
from tests.unit.operator.samples import NOW, spec

PROVIDER_CHARS = st.sampled_from("abcXYZ019_-")


def test_sample_spec_parses_with_defaults() -> None:
    parsed = parse_spec(spec())
    assert parsed.action_type_id.provider == "AcmeGpuBuild"
    assert parsed.max_in_flight == 20
    assert parsed.max_batch_size is None
    assert parsed.polling.min_interval_seconds == 1
    assert parsed.polling.max_interval_seconds == 60
    assert parsed.paused is False
    assert parsed.deletion_policy == "Drain"
    assert parsed.region is None


def test_owner_defaults_to_custom() -> None:
    raw = spec(actionTypeId={"category": "Test", "provider": "P", "version": "1"})
    assert parse_spec(raw).action_type_id.owner == "Custom"


@pytest.mark.parametrize("owner", ["AWS", "ThirdParty"])
def test_non_custom_owner_is_rejected_with_the_reason(owner: str) -> None:
    raw = spec(actionTypeId={"category": "Build", "owner": owner, "provider": "P", "version": "1"})
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec(raw)
    assert "spec.actionTypeId.owner" in caught.value.message
    assert "PollForJobs only serves custom action types" in caught.value.message


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"queryParam": {"A": "x", "B": "y"}}, "at most one entry"),
        ({"queryParam": {"Pool": "bad value"}}, "spec.queryParam.Pool"),
        ({"queryParam": {"K" * 51: "v"}}, "spec.queryParam"),
        ({"maxInFlight": 0}, "spec.maxInFlight"),
        ({"maxInFlight": 1001}, "spec.maxInFlight"),
        ({"maxInFlight": 5, "maxBatchSize": 6}, "maxBatchSize must not exceed maxInFlight"),
        ({"maxBatchSize": 101}, "spec.maxBatchSize"),
        (
            {"polling": {"minIntervalSeconds": 30, "maxIntervalSeconds": 10}},
            "minIntervalSeconds must not exceed",
        ),
        ({"polling": {"minIntervalSeconds": 0}}, "spec.polling.minIntervalSeconds"),
        ({"region": "Mars"}, "spec.region"),
        ({"roleArn": "arn:aws:iam::123:role/x"}, "spec.roleArn"),
        ({"deletionPolicy": "Orphan"}, "spec.deletionPolicy"),
        ({"unknownField": 1}, "spec.unknownField"),
        ({"jobTemplate": None}, "spec.jobTemplate"),
    ],
)
def test_invalid_specs_name_the_field(changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec(spec(**changes))
    assert expected in caught.value.message


def test_error_messages_do_not_echo_values() -> None:
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec(spec(region="secret-looking-value-XYZ"))
    assert "secret-looking-value-XYZ" not in caught.value.message


def test_missing_action_type_is_reported() -> None:
    raw = spec()
    del raw["actionTypeId"]
    with pytest.raises(InvalidSpecError, match=r"spec\.actionTypeId"):
        parse_spec(raw)


def test_valid_role_arn_and_regions() -> None:
    for region in ("us-east-1", "eu-central-1", "us-gov-west-1", "cn-north-1", "ap-southeast-2"):
        assert parse_spec(spec(region=region)).region == region
    arn = "arn:aws:iam::123456789012:role/team/cpworker-worker"
    assert parse_spec(spec(roleArn=arn)).role_arn == arn
    assert parse_spec(spec(roleArn="arn:aws-cn:iam::123456789012:role/x")).role_arn


def test_spec_is_frozen() -> None:
    parsed = parse_spec(spec())
    with pytest.raises(ValueError, match="frozen"):
        parsed.paused = True  # type: ignore[misc]


def test_long_query_values_are_legal_but_warned() -> None:
    value = "p" * 21
    parsed = parse_spec(spec(queryParam={"Pool": value}))
    (warning,) = spec_warnings(parsed)
    assert "at most 20 characters" in warning
    assert spec_warnings(parse_spec(spec(queryParam={"Pool": "p" * 20}))) == []


@pytest.mark.parametrize(
    ("max_in_flight", "max_batch", "in_flight", "expected"),
    [
        (10, None, 0, 10),
        (20, None, 0, 10),
        (20, None, 15, 5),
        (20, 3, 0, 3),
        (5, 5, 5, 0),
        (5, 2, 9, 0),
    ],
)
def test_batch_size_never_exceeds_free_capacity(
    max_in_flight: int, max_batch: int | None, in_flight: int, expected: int
) -> None:
    parsed = parse_spec(spec(maxInFlight=max_in_flight, maxBatchSize=max_batch))
    assert parsed.batch_size(in_flight) == expected


def test_effective_region() -> None:
    assert parse_spec(spec()).effective_region("eu-west-1") == "eu-west-1"
    assert parse_spec(spec(region="us-west-2")).effective_region("eu-west-1") == "us-west-2"
    assert parse_spec(spec()).effective_region(None) is None


# --- Fuzzing: the model accepts exactly what the documented rules allow ---------------------

valid_provider = st.text(PROVIDER_CHARS, min_size=1, max_size=35)
valid_version = st.text(PROVIDER_CHARS, min_size=1, max_size=9)
categories = st.sampled_from(["Source", "Build", "Deploy", "Test", "Invoke", "Approval", "Compute"])


@st.composite
def valid_specs(draw: st.DrawFn) -> dict[str, Any]:
    max_in_flight = draw(st.integers(1, 1000))
    low = draw(st.integers(1, 3600))
    raw: dict[str, Any] = {
        "actionTypeId": {
            "category": draw(categories),
            "owner": "Custom",
            "provider": draw(valid_provider),
            "version": draw(valid_version),
        },
        "maxInFlight": max_in_flight,
        "polling": {"minIntervalSeconds": low, "maxIntervalSeconds": draw(st.integers(low, 3600))},
        "paused": draw(st.booleans()),
        "deletionPolicy": draw(st.sampled_from(["Drain", "Cancel"])),
        "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}},
    }
    if draw(st.booleans()):
        raw["maxBatchSize"] = draw(st.integers(1, min(100, max_in_flight)))
    if draw(st.booleans()):
        key = draw(st.text(min_size=1, max_size=50))
        raw["queryParam"] = {key: draw(st.text(PROVIDER_CHARS, min_size=1, max_size=50))}
    return raw


@settings(max_examples=200)
@given(valid_specs())
def test_fuzzed_valid_specs_parse_and_round_trip(raw: dict[str, Any]) -> None:
    parsed = parse_spec(raw)
    dumped = parsed.model_dump(by_alias=True, exclude_none=True)
    assert parse_spec(dumped) == parsed
    assert parsed.batch_size(0) <= parsed.max_in_flight


@settings(max_examples=200)
@given(valid_specs(), st.data())
def test_fuzzed_single_mutations_are_rejected(raw: dict[str, Any], data: st.DataObject) -> None:
    mutation = data.draw(
        st.sampled_from(
            [
                ("actionTypeId", "provider", ""),
                ("actionTypeId", "provider", "x" * 36),
                ("actionTypeId", "provider", "bad/char"),
                ("actionTypeId", "version", "1234567890"),
                ("actionTypeId", "owner", "AWS"),
                ("actionTypeId", "category", "Build "),
                (None, "maxInFlight", 1001),
                (None, "maxInFlight", -1),
                (None, "maxBatchSize", 0),
                (None, "queryParam", {"a": "1", "b": "2"}),
                (None, "queryParam", {"a": ""}),
                (None, "queryParam", {"": "x"}),
                (None, "deletionPolicy", "drain"),
                (None, "paused", "maybe"),
                ("polling", "maxIntervalSeconds", 3601),
            ]
        )
    )
    parent, key, value = mutation
    target = raw[parent] if parent else raw
    target[key] = value
    with pytest.raises(InvalidSpecError):
        parse_spec(raw)


# --- Status and conditions -------------------------------------------------------------------


def test_set_condition_keeps_transition_time_when_status_is_unchanged() -> None:
    first = ready_condition(
        ready=True, reason=Reason.POLLING, message="polling", now=NOW, observed_generation=1
    )
    conditions = set_condition([], first, NOW)
    later = NOW + timedelta(minutes=5)
    same = ready_condition(
        ready=True, reason=Reason.POLLING, message="still polling", now=later, observed_generation=2
    )
    updated = set_condition(conditions, same, later)
    assert len(updated) == 1
    assert updated[0].last_transition_time == NOW
    assert updated[0].message == "still polling"
    assert updated[0].observed_generation == 2


def test_set_condition_moves_transition_time_on_change() -> None:
    conditions = set_condition(
        [], ready_condition(ready=True, reason=Reason.POLLING, message="", now=NOW), NOW
    )
    later = NOW + timedelta(seconds=90, microseconds=5)
    throttled = ready_condition(
        ready=False, reason=Reason.THROTTLED, message="slow down", now=later
    )
    updated = set_condition(conditions, throttled, later)
    assert updated[0].status == "False"
    assert updated[0].reason == "Throttled"
    assert updated[0].last_transition_time == (NOW + timedelta(seconds=90))


def test_set_condition_keeps_other_types_and_order() -> None:
    other = models.make_condition("Degraded", status=False, reason="Fine", message="", now=NOW)
    ready = ready_condition(ready=True, reason=Reason.POLLING, message="", now=NOW)
    result = set_condition([other], ready, NOW)
    assert [c.type for c in result] == ["Degraded", "Ready"]
    assert set_condition(result, ready, NOW)[0] is other


def test_conditions_need_aware_times() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ready_condition(ready=True, reason=Reason.POLLING, message="", now=NOW.replace(tzinfo=None))


def test_condition_messages_are_bounded() -> None:
    long = ready_condition(ready=False, reason=Reason.ACCESS_DENIED, message="x" * 40000, now=NOW)
    assert len(long.message) == models.CONDITION_MESSAGE_MAX


def test_all_reasons_are_valid_condition_reasons() -> None:
    expected = {
        "Polling",
        "PollingOnly",
        "PollingBudgetLimited",
        "ActionTypeNotFound",
        "AccessDenied",
        "Throttled",
        "ServiceUnavailable",
        "InvalidSpec",
        "Paused",
        "Deleting",
        "CredentialsExpired",
        "CredentialsInvalid",
        "RoleNotAssumable",
        "KubernetesUnavailable",
        "KubernetesForbidden",
    }
    assert {reason.value for reason in Reason} == expected
    for reason in Reason:
        ready_condition(ready=False, reason=reason, message="", now=NOW)


def test_status_patch_uses_camel_case_and_rfc3339() -> None:
    status = CustomActionWorkerStatus(
        conditions=[
            ready_condition(
                ready=True, reason=Reason.POLLING, message="ok", now=NOW, observed_generation=3
            )
        ],
        observed_generation=3,
        in_flight=2,
        succeeded=5,
        failed=1,
        lost_races=4,
        last_poll_time=NOW,
        last_error=models.last_error(Reason.THROTTLED, "slow down", now=NOW),
    )
    patch = models.status_patch(status)
    assert patch["inFlight"] == 2
    assert patch["lostRaces"] == 4
    assert patch["lastPollTime"] == "2026-11-29T10:00:00Z"
    assert patch["conditions"][0]["lastTransitionTime"] == "2026-11-29T10:00:00Z"
    assert patch["conditions"][0]["observedGeneration"] == 3
    assert patch["lastError"] == {
        "time": "2026-11-29T10:00:00Z",
        "reason": "Throttled",
        "message": "slow down",
    }
    assert CustomActionWorkerStatus.model_validate(patch) == status


def test_status_ignores_fields_it_does_not_know() -> None:
    # kopf keeps its own bookkeeping in status; parsing must not choke on it.
    status = CustomActionWorkerStatus.model_validate({"inFlight": 1, "kopf": {"progress": {}}})
    assert status.in_flight == 1
