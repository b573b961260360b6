"""cpworker.timeline: the milestones of a job, read from its Job record and pods."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from cpworker import names, timestamps
from cpworker.timeline import (
    CLAIM_STAGES,
    REPORT_STAGES,
    JobTimeline,
    Stage,
    timeline_of,
)

T0 = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)


def at(seconds: float) -> str:
    return timestamps.rfc3339_ms(T0 + dt.timedelta(seconds=seconds))


def job(**annotations: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "cpw-1",
            "creationTimestamp": "2026-03-01T12:00:01Z",
            "annotations": {
                names.ANNOTATION_AVAILABLE_AT: at(0.25),
                names.ANNOTATION_RELEASED_AT: at(1.75),
                **annotations,
            },
        },
        "status": {
            "conditions": [
                {"type": "Suspended", "status": "False", "lastTransitionTime": at(2)},
                {"type": "Complete", "status": "True", "lastTransitionTime": at(70)},
            ]
        },
    }


def pod(*starts: tuple[str, str, float]) -> dict[str, Any]:
    """A pod whose containers (kind, state key, start second) started at those times."""
    statuses: dict[str, list[dict[str, Any]]] = {
        "initContainerStatuses": [],
        "containerStatuses": [],
    }
    for kind, state_key, second in starts:
        phase = "terminated" if state_key == "lastState" else "running"
        statuses[kind].append({"name": "c", state_key: {phase: {"startedAt": at(second)}}})
    return {"metadata": {"name": "p"}, "status": statuses}


def test_every_milestone_comes_from_the_record() -> None:
    timeline = timeline_of(
        job(**{names.ANNOTATION_REPORTED_AT: at(70.5)}),
        [pod(("containerStatuses", "state", 9)), pod(("initContainerStatuses", "lastState", 5))],
    )
    assert timeline == JobTimeline(
        available=T0 + dt.timedelta(seconds=0.25),
        created=T0 + dt.timedelta(seconds=1),
        claimed=T0 + dt.timedelta(seconds=1.75),
        started=T0 + dt.timedelta(seconds=5),  # the earliest container, init containers too
        finished=T0 + dt.timedelta(seconds=70),
        reported=T0 + dt.timedelta(seconds=70.5),
    )
    assert timeline.dispatch_seconds() == pytest.approx(1.5)
    assert timeline.stage_seconds(CLAIM_STAGES) == pytest.approx(
        {Stage.CREATE: 0.75, Stage.CLAIM: 0.75}
    )
    assert timeline.stage_seconds(REPORT_STAGES) == pytest.approx(
        {Stage.START: 3.25, Stage.RUN: 65.0, Stage.REPORT: 0.5}
    )


def test_unknown_milestones_leave_their_stages_out() -> None:
    body = job()
    del body["metadata"]["annotations"][names.ANNOTATION_AVAILABLE_AT]
    body["status"] = {}
    timeline = timeline_of(body)
    assert timeline.dispatch_seconds() is None
    assert set(timeline.stage_seconds()) == {Stage.CLAIM}


def test_a_stage_that_ends_before_it_starts_counts_as_zero() -> None:
    # available-at carries milliseconds; creationTimestamp is truncated to the second.
    timeline = timeline_of(job(**{names.ANNOTATION_AVAILABLE_AT: at(1.5)}))
    assert timeline.stage_seconds([Stage.CREATE]) == {Stage.CREATE: 0.0}


def test_failed_jobs_finish_at_their_failed_condition_and_completion_time_is_a_fallback() -> None:
    failed = job()
    failed["status"] = {
        "conditions": [{"type": "Failed", "status": "True", "lastTransitionTime": at(30)}]
    }
    assert timeline_of(failed).finished == T0 + dt.timedelta(seconds=30)
    done = job()
    done["status"] = {"completionTime": at(40)}
    assert timeline_of(done).finished == T0 + dt.timedelta(seconds=40)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T12:00:00Z", T0),
        ("2026-03-01T12:00:00.250Z", T0 + dt.timedelta(seconds=0.25)),
        ("2026-03-01T13:00:00+01:00", T0),
        ("2026-03-01T12:00:00", T0),
        ("yesterday", None),
        ("", None),
        (None, None),
    ],
)
def test_timestamps_parse(text: object, expected: dt.datetime | None) -> None:
    assert timestamps.parse(text) == expected


def test_milestones_round_trip_with_milliseconds() -> None:
    when = T0 + dt.timedelta(seconds=1.2345)
    assert timestamps.rfc3339_ms(when) == "2026-03-01T12:00:01.234Z"
    assert timestamps.parse(timestamps.rfc3339_ms(when)) == T0 + dt.timedelta(seconds=1.234)
