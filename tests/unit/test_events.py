"""CodePipeline's action events, as the consumer reads them, and what they decide."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cpworker import events, wakeups
from cpworker.wakeups import Wakeups


def event(**changes: Any) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "pipeline": "acme-main",
        "execution-id": "e-1",
        "stage": "Build",
        "action": "GpuBuild",
        "state": "STARTED",
        "region": "eu-west-1",
        "type": {
            "owner": "Custom",
            "category": "Build",
            "provider": "AcmeGpuBuild",
            "version": "1",
        },
        "version": 3.0,
    }
    detail.update(changes.pop("detail", {}))
    document: dict[str, Any] = {
        "version": "0",
        "detail-type": events.DETAIL_TYPE,
        "source": events.SOURCE,
        "account": "111122223333",
        "region": "eu-west-1",
        "detail": detail,
    }
    document.update(changes)
    return document


def test_an_action_event_is_read() -> None:
    parsed = events.parse_event(json.dumps(event()))
    assert parsed == events.ActionEvent(
        state="STARTED",
        action_type=("Build", "Custom", "AcmeGpuBuild", "1"),
        pipeline="acme-main",
        execution_id="e-1",
        stage="Build",
        action="GpuBuild",
        pipeline_version=3,
        region="eu-west-1",
        account="111122223333",
    )


@pytest.mark.parametrize("version", [1, 1.0, "1"])
def test_the_version_compares_as_a_string_whatever_its_json_type(version: object) -> None:
    # AWS's own examples show `version` both as a number and as a string.
    body = event(
        detail={
            "type": {"owner": "Custom", "category": "Build", "provider": "P", "version": version}
        }
    )
    parsed = events.parse_event(json.dumps(body))
    assert parsed is not None
    assert parsed.action_type == ("Build", "Custom", "P", "1")


def test_an_event_delivered_through_sns_is_unwrapped() -> None:
    wrapped = {"Type": "Notification", "Message": json.dumps(event())}
    parsed = events.parse_event(json.dumps(wrapped))
    assert parsed is not None
    assert parsed.pipeline == "acme-main"


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not json",
        "[]",
        json.dumps({"detail-type": "CodePipeline Pipeline Execution State Change"}),
        json.dumps(event(source="aws.codebuild")),
        json.dumps(event(**{"detail-type": "Something Else"})),
        json.dumps(event(detail={"type": "Build"})),
        json.dumps(event(detail={"pipeline": ""})),
        json.dumps(event(detail={"state": None})),
        json.dumps({"Message": "not json"}),
    ],
)
def test_foreign_and_malformed_messages_are_not_events(body: str) -> None:
    assert events.parse_event(body) is None


@given(st.text(max_size=300))
def test_any_message_body_parses_or_is_ignored(body: str) -> None:
    parsed = events.parse_event(body)
    assert parsed is None or all(parsed.action_type)


@pytest.mark.parametrize(
    ("url", "default", "expected"),
    [
        ("https://sqs.eu-west-1.amazonaws.com/111122223333/cpworker-jobs", None, "eu-west-1"),
        ("https://sqs.us-gov-west-1.amazonaws.com/111122223333/q", "x", "us-gov-west-1"),
        ("http://127.0.0.1:5000/123456789012/q", "us-east-1", "us-east-1"),
        ("http://127.0.0.1:5000/123456789012/q", None, None),
    ],
)
def test_the_queue_region_comes_from_its_url(
    url: str, default: str | None, expected: str | None
) -> None:
    assert events.queue_region(url, default) == expected


def decide(**kwargs: Any) -> Wakeups:
    values: dict[str, Any] = {
        "queue_configured": True,
        "queue_healthy": True,
        "missed_event_at": None,
        "now": 1000.0,
        "fallback_seconds": 1800.0,
    }
    values.update(kwargs)
    return wakeups.wakeups(**values)


def test_what_wakes_a_worker() -> None:
    assert decide(queue_configured=False) is Wakeups.NONE
    assert decide() is Wakeups.EVENTS
    assert decide(queue_healthy=False) is Wakeups.LOST
    # A job arrived without its event: the policy again, for a while.
    assert decide(missed_event_at=900.0) is Wakeups.SILENT
    assert decide(missed_event_at=1000.0 - 1800.0) is Wakeups.EVENTS


def test_events_raise_the_idle_ceiling_only_while_they_work() -> None:
    assert wakeups.idle_ceiling(60, Wakeups.EVENTS, 600) == 600
    assert wakeups.idle_ceiling(1200, Wakeups.EVENTS, 600) == 1200  # the worker's own is larger
    for mode in (Wakeups.NONE, Wakeups.LOST, Wakeups.SILENT):
        assert wakeups.idle_ceiling(60, mode, 600) == 60
