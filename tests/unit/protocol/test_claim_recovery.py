"""claimer.recover_claiming: every branch that resolves a Job left in phase `claiming`.

Each set-up is the state a real claim leaves when it stops at a stage boundary (the claim is
run with a crash hook), so the recovery sees what a restarted operator would see.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from cpworker import claimer, jobrecord, jobsecret, names, timestamps
from cpworker.claimer import ClaimOutcome
from cpworker.jobrecord import JobRecords
from tests.unit.protocol.fakes import throttled
from tests.unit.protocol.world import NAMESPACE, Crash, World, crash_at, decoded, job_name

AGE = 60.0  # older than any recovery age


async def left_claiming(world: World, stage: str = "before-ack") -> dict[str, Any]:
    """A polled job whose claim died at `stage`, and its Job aged past the recovery age."""
    raw = world.polled()
    with pytest.raises(Crash):
        await world.life(hook=crash_at(stage)).claim(raw)
    world.kube.age("jobs", NAMESPACE, job_name(raw["id"]), AGE)
    return raw


async def recover(world: World, job_id: str) -> ClaimOutcome | None:
    body = world.job(job_id)
    assert body is not None
    return await claimer.recover_claiming(
        JobRecords(world.kube),
        world.cp,
        body,
        min_age_seconds=world.settings.claim_recovery_age_seconds,
        now=timestamps.now(),
    )


async def test_a_young_claiming_job_is_left_alone(world: World) -> None:
    raw = world.polled()
    with pytest.raises(Crash):
        await world.life(hook=crash_at("before-ack")).claim(raw)
    calls, writes = len(world.cp.calls), len(world.kube.writes)
    assert await recover(world, raw["id"]) is None
    assert len(world.cp.calls) == calls
    assert len(world.kube.writes) == writes


async def test_the_recovery_age_is_measured_from_the_jobs_creation(world: World) -> None:
    raw = world.polled()
    with pytest.raises(Crash):
        await world.life(hook=crash_at("before-ack")).claim(raw)
    body = world.job(raw["id"])
    assert body is not None
    created = timestamps.parse(body["metadata"]["creationTimestamp"])
    assert created is not None

    async def at(seconds: float) -> ClaimOutcome | None:
        return await claimer.recover_claiming(
            JobRecords(world.kube),
            world.cp,
            body,
            min_age_seconds=30,
            now=created + dt.timedelta(seconds=seconds),
        )

    assert await at(29) is None
    assert await at(30) is ClaimOutcome.DISPATCHED


async def test_a_candidate_answering_in_progress_is_recorded_and_released(world: World) -> None:
    raw = await left_claiming(world, "before-ack")
    writes = len(world.kube.writes)
    assert await recover(world, raw["id"]) is ClaimOutcome.DISPATCHED
    job = world.job(raw["id"])
    assert job is not None
    assert job["spec"]["suspend"] is False
    assert jobrecord.phase_of(job) == "running"
    assert world.cp.jobs[raw["id"]].status == "InProgress"
    # The nonce was already the recorded one: no write for it; the Secret exists: no lookup.
    assert [(w.method, w.resource) for w in world.kube.writes[writes:]] == [("PATCH", "jobs")]
    assert world.cp.operations("GetJobDetails") == []


async def test_the_newest_candidate_is_tried_first_and_recorded_when_it_wins(
    world: World,
) -> None:
    raw = await left_claiming(world, "before-ack")
    # A redelivery reached another life of ours, which recorded its candidate and died too.
    again = world.cp.deliver(raw["id"])
    with pytest.raises(Crash):
        await world.life(hook=crash_at("before-ack")).claim(again)
    assert await recover(world, raw["id"]) is ClaimOutcome.DISPATCHED
    assert [c.nonce for c in world.cp.operations("AcknowledgeJob")] == [again["nonce"]]
    assert world.annotations(raw["id"])[names.ANNOTATION_NONCE] == again["nonce"]


async def test_an_older_candidate_that_won_is_found_after_the_newer_ones_failed(
    world: World,
) -> None:
    """The crash came after CodePipeline took the first nonce and before it was recorded as
    the winner; a later delivery's candidate (stale) is on record as well."""
    raw = world.polled()
    with pytest.raises(Crash):
        await world.life(hook=crash_at("after-ack")).claim(raw)
    world.annotate(raw["id"], {names.ANNOTATION_NONCE_CANDIDATES: f"{raw['nonce']},stale"})
    world.kube.age("jobs", NAMESPACE, job_name(raw["id"]), AGE)
    assert await recover(world, raw["id"]) is ClaimOutcome.DISPATCHED
    assert [c.nonce for c in world.cp.operations("AcknowledgeJob")][-2:] == [
        "stale",
        raw["nonce"],
    ]


async def test_a_secret_a_crash_never_wrote_is_restored_from_get_job_details(
    world: World,
) -> None:
    raw = await left_claiming(world, "before-secret")
    assert world.secret(raw["id"]) is None
    assert await recover(world, raw["id"]) is ClaimOutcome.DISPATCHED
    secret = world.secret(raw["id"])
    assert secret is not None
    job = world.job(raw["id"])
    assert job is not None
    assert secret["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    assert [c.operation for c in world.cp.calls][-3:] == [
        "AcknowledgeJob",
        "GetJobDetails",
        "ListActionTypes",
    ]
    # Fresh credentials from GetJobDetails, not the poll's.
    creds = decoded(secret)[jobsecret.CREDENTIALS_KEY]
    assert raw["data"]["artifactCredentials"]["sessionToken"] not in creds
    assert "fake-session-token" in creds
    # The Secret was written before the Job was let run (a pod never starts without it).
    kinds = [(w.method, w.resource) for w in world.kube.writes[-2:]]
    assert kinds == [("POST", "secrets"), ("PATCH", "jobs")]


@pytest.mark.parametrize("status", ["Failed", "TimedOut", "Succeeded"])
async def test_a_terminal_status_deletes_the_job(world: World, status: str) -> None:
    raw = await left_claiming(world, "before-ack")
    world.cp.end(raw["id"], status)
    assert await recover(world, raw["id"]) is ClaimOutcome.NOT_IN_PROGRESS
    assert world.job(raw["id"]) is None
    assert world.secret(raw["id"]) is None


async def test_all_nonces_invalid_deletes_the_job(world: World) -> None:
    raw = await left_claiming(world, "before-ack")
    world.cp.deliver(raw["id"])  # a newer delivery this Job does not know of
    assert await recover(world, raw["id"]) is ClaimOutcome.LOST_RACE
    assert world.job(raw["id"]) is None
    assert world.secret(raw["id"]) is None


async def test_all_nonces_invalid_leaves_a_job_someone_started_claiming_meanwhile(
    world: World,
) -> None:
    raw = await left_claiming(world, "before-ack")
    stale_view = world.job(raw["id"])
    assert stale_view is not None
    newer = world.cp.deliver(raw["id"])
    # Another replica found the Job and recorded its candidate after our index saw it.
    await JobRecords(world.kube).add_nonce_candidate(stale_view, newer["nonce"])
    assert await claimer.recover_claiming(
        JobRecords(world.kube),
        world.cp,
        stale_view,
        min_age_seconds=30,
        now=timestamps.now(),
    ) is (ClaimOutcome.LOST_RACE)
    assert world.job(raw["id"]) is not None


async def test_recovery_deletes_a_claiming_job_codepipeline_no_longer_knows(
    world: World,
) -> None:
    """AcknowledgeJob answers JobNotFoundException (the cancellation probe treats it as "not
    ours anymore"). Recovery lets the error escape instead: the suspended Job is never
    resolved, is retried every round, and counts against maxInFlight for ever."""
    raw = await left_claiming(world, "before-ack")
    world.cp.forget(raw["id"])
    life = world.life()
    for _ in range(2):
        await life.supervise()
    assert world.job(raw["id"]) is None, "the claiming Job stays for ever"


async def test_the_supervisor_recovers_old_claiming_jobs_not_being_claimed_here(
    world: World,
) -> None:
    old = await left_claiming(world, "before-ack")
    young = world.polled()
    with pytest.raises(Crash):
        await world.life(hook=crash_at("before-ack")).claim(young)
    busy = await left_claiming(world, "before-ack")
    life = world.life()
    life.supervisor.claiming_now.add(job_name(busy["id"]))
    await life.supervise()
    phases = {
        key: jobrecord.phase_of(world.job(raw["id"]) or {})
        for key, raw in (("old", old), ("young", young), ("busy", busy))
    }
    assert phases == {"old": "running", "young": "claiming", "busy": "claiming"}
    acked = {c.job_id for c in world.cp.operations("AcknowledgeJob")}
    assert young["id"] not in acked
    assert busy["id"] not in acked


async def test_a_round_counts_the_claims_it_recovered(world: World) -> None:
    """Found by the faults e2e: a claim whose Secret create was refused was recovered, but
    the worker's condition kept the refusal (only a claim batch cleared it) for minutes."""
    raw = await left_claiming(world, "before-secret")
    life = world.life()
    world.cp.fail_next_details(throttled("GetJobDetails"))
    await life.supervise()
    assert life.supervisor.claims_recovered == 0  # the retry is not a recovery yet
    await life.supervise()
    assert jobrecord.phase_of(world.job(raw["id"]) or {}) == "running"
    assert life.supervisor.claims_recovered == 1
    await life.supervise()
    assert life.supervisor.claims_recovered == 0  # per round


async def test_a_recovery_error_is_retried_next_round(world: World) -> None:
    raw = await left_claiming(world, "before-secret")
    life = world.life()
    world.cp.fail_next_details(throttled("GetJobDetails"))
    await life.supervise()
    assert jobrecord.phase_of(world.job(raw["id"]) or {}) == "claiming"  # never without Secret
    await life.supervise()
    assert jobrecord.phase_of(world.job(raw["id"]) or {}) == "running"
    assert world.secret(raw["id"]) is not None


async def test_a_claim_the_index_has_not_seen_released_yet_is_not_recovered_again(
    world: World,
) -> None:
    """Found by the metrics e2e under load: the supervisor's index still showed `claiming`
    for a Job its claim had just released, recovery acknowledged and released it a second
    time, and the dispatch histogram counted the job twice."""
    raw = await left_claiming(world, "before-release")
    stale_view = world.job(raw["id"])
    assert stale_view is not None
    await JobRecords(world.kube).release(stale_view)  # the claim's release, not yet indexed
    calls, writes = len(world.cp.calls), len(world.kube.writes)
    outcome = await claimer.recover_claiming(
        JobRecords(world.kube),
        world.cp,
        stale_view,
        min_age_seconds=world.settings.claim_recovery_age_seconds,
        now=timestamps.now(),
    )
    assert outcome is None
    assert len(world.cp.calls) == calls  # no second AcknowledgeJob
    assert len(world.kube.writes) == writes  # no second release
