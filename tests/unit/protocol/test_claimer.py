"""claimer: a polled job through the claim protocol, and continuation jobs."""

from __future__ import annotations

from typing import Any

import pytest

from cpworker import claimer, continuation, jobrecord, models, names, workerloop
from cpworker.claimer import ClaimOutcome
from cpworker.jobsecret import SECRET_CONFIG_KEY
from cpworker.kube import KubeError
from tests.unit.operator import samples
from tests.unit.protocol.fakes import invalid_nonce, throttled
from tests.unit.protocol.world import NAMESPACE, World, crash_at, decoded, job_name


def failures(world: World) -> list[dict[str, Any]]:
    return [
        dict(call.params["failureDetails"])
        for call in world.cp.accepted
        if call.operation == "PutJobFailureResult"
    ]


# ---- a fresh claim ---------------------------------------------------------------------------


async def test_a_fresh_claim_creates_the_job_and_secret_acknowledges_then_releases(
    world: World,
) -> None:
    life = world.life()
    raw = world.polled()
    assert await life.claim(raw) is ClaimOutcome.DISPATCHED
    assert [(w.method, w.resource) for w in world.kube.writes] == [
        ("POST", "jobs"),
        ("POST", "secrets"),
        ("PATCH", "jobs"),  # release
        ("POST", "events"),
    ]
    assert [(c.operation, c.nonce) for c in world.cp.operations("AcknowledgeJob")] == [
        ("AcknowledgeJob", raw["nonce"])
    ]
    job = world.job(raw["id"])
    assert job is not None
    assert job["spec"]["suspend"] is False
    annotations = job["metadata"]["annotations"]
    assert annotations[names.ANNOTATION_PHASE] == "running"
    assert annotations[names.ANNOTATION_NONCE] == raw["nonce"]
    secret = world.secret(raw["id"])
    assert secret is not None
    assert secret["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    assert world.kube.event_reasons() == ["JobDispatched"]
    assert world.cp.jobs[raw["id"]].status == "InProgress"
    assert life.ctx.claiming_now == set()


async def test_a_cluster_without_native_sidecars_fails_the_job_at_once(world: World) -> None:
    """The API server dropped the push sidecar's restartPolicy: it would block as an ordinary
    init container until the deadline. The job fails now, saying why, and nothing runs."""
    world.kube.native_sidecars = False
    life = world.life()
    raw = world.polled()
    assert await life.claim(raw) is ClaimOutcome.REJECTED
    (failure,) = failures(world)
    assert failure["type"] == "ConfigurationError"
    assert "cpworker-push" in failure["message"]
    assert "1.29" in failure["message"]
    assert "spec.artifacts.enabled: false" in failure["message"]
    assert world.kube.objects("jobs") == []
    assert world.kube.objects("secrets") == []
    assert world.cp.jobs[raw["id"]].status == "Failed"
    assert world.kube.event_reasons() == ["JobRejected"]


async def test_without_artifacts_a_cluster_without_native_sidecars_is_fine(world: World) -> None:
    world.kube.native_sidecars = False
    world.spec = models.parse_spec(samples.spec(artifacts={"enabled": False}))
    assert await world.life().claim(world.polled()) is ClaimOutcome.DISPATCHED


async def test_the_job_is_marked_as_being_claimed_while_the_claim_runs(world: World) -> None:
    life = world.life()
    raw = world.polled()
    seen: list[set[str]] = []
    world.kube.intercept("POST", "secrets", lambda: seen.append(set(life.ctx.claiming_now)))
    await life.claim(raw)
    assert seen == [{job_name(raw["id"])}]
    assert life.ctx.claiming_now == set()


async def test_a_job_found_from_an_earlier_life_gets_the_new_nonce_as_candidate_then_runs(
    world: World,
) -> None:
    raw = world.polled()
    with pytest.raises(BaseException, match="before-ack"):
        await world.life(hook=crash_at("before-ack")).claim(raw)
    redelivered = world.cp.deliver(raw["id"])
    writes = len(world.kube.writes)

    assert await world.life().claim(redelivered) is ClaimOutcome.DISPATCHED

    ours = [(w.method, w.resource, w.status) for w in world.kube.writes[writes:]]
    assert ours == [
        ("POST", "jobs", 409),
        ("PATCH", "jobs", 200),  # the candidate, before the acknowledgement
        ("POST", "secrets", 409),
        ("PATCH", "secrets", 200),  # fresh data from the new delivery
        ("PATCH", "jobs", 200),  # the nonce that won
        ("PATCH", "jobs", 200),  # release
        ("POST", "events", 200),
    ]
    candidate_patch = world.kube.writes[writes + 1].body
    assert candidate_patch["metadata"]["annotations"][names.ANNOTATION_NONCE_CANDIDATES] == (
        f"{raw['nonce']},{redelivered['nonce']}"
    )
    annotations = world.annotations(raw["id"])
    assert annotations[names.ANNOTATION_NONCE] == redelivered["nonce"]
    assert annotations[names.ANNOTATION_PHASE] == "running"
    assert len(world.kube.objects("jobs")) == 1


@pytest.mark.parametrize("phase", ["reported", "cancelled"])
async def test_a_redelivered_job_whose_job_was_settled_is_skipped(world: World, phase: str) -> None:
    raw = world.polled()
    await world.life().claim(raw)
    world.annotate(raw["id"], {names.ANNOTATION_PHASE: phase})
    world.cp.jobs[raw["id"]].status = "Dispatched"  # say it was handed out again
    acks = len(world.cp.operations("AcknowledgeJob"))
    assert await world.life().claim(world.cp.deliver(raw["id"])) is ClaimOutcome.SKIPPED
    assert len(world.cp.operations("AcknowledgeJob")) == acks


# ---- lost races and jobs that must not run ---------------------------------------------------


async def test_a_lost_race_on_our_fresh_job_deletes_it(world: World) -> None:
    raw = world.polled()
    world.cp.deliver(raw["id"])  # handed to another worker meanwhile: our nonce is stale
    assert await world.life().claim(raw) is ClaimOutcome.LOST_RACE
    assert world.job(raw["id"]) is None
    assert world.secret(raw["id"]) is None
    delete = next(w for w in world.kube.writes if w.method == "DELETE" and w.resource == "jobs")
    assert delete.body["preconditions"]["resourceVersion"]
    assert world.kube.event_reasons() == ["LostRace"]


async def test_a_lost_race_leaves_a_job_another_replica_is_claiming(world: World) -> None:
    raw = world.polled()
    theirs = world.cp.deliver(raw["id"])["nonce"]
    name = job_name(raw["id"])

    def other_replica_records_its_candidate() -> None:
        job = world.kube.get_object("jobs", NAMESPACE, name)
        assert job is not None
        world.kube.external_patch(
            "jobs",
            NAMESPACE,
            name,
            {
                "metadata": {
                    "annotations": {
                        names.ANNOTATION_NONCE_CANDIDATES: f"{raw['nonce']},{theirs}",
                    }
                }
            },
        )

    world.kube.intercept("POST", "secrets", other_replica_records_its_candidate)
    assert await world.life().claim(raw) is ClaimOutcome.LOST_RACE
    job = world.job(raw["id"])
    assert job is not None, "a job the other replica may have acknowledged was deleted"
    assert jobrecord.phase_of(job) == "claiming"


async def test_a_lost_race_on_a_job_found_existing_deletes_nothing(world: World) -> None:
    raw = world.polled()
    with pytest.raises(BaseException, match="before-ack"):
        await world.life(hook=crash_at("before-ack")).claim(raw)
    stale = world.cp.deliver(raw["id"])
    world.cp.deliver(raw["id"])  # and again, to someone else
    assert await world.life().claim(stale) is ClaimOutcome.LOST_RACE
    assert world.job(raw["id"]) is not None
    assert not [w for w in world.kube.writes if w.method == "DELETE"]


@pytest.mark.parametrize("status", ["Failed", "TimedOut", "Succeeded"])
async def test_a_job_that_is_not_in_progress_is_deleted_and_not_run(
    world: World, status: str
) -> None:
    raw = world.polled()
    world.cp.end(raw["id"], status)
    assert await world.life().claim(raw) is ClaimOutcome.NOT_IN_PROGRESS
    assert world.job(raw["id"]) is None
    assert world.secret(raw["id"]) is None
    assert world.cp.puts == []


# ---- jobs that cannot run: failed at once, never left to time out -------------------------


@pytest.mark.parametrize(("status", "reason"), [(400, "BadRequest"), (422, "Invalid")])
async def test_a_job_the_api_server_refuses_fails_as_configuration_error(
    world: World, status: int, reason: str
) -> None:
    raw = world.polled()

    def refuse() -> None:
        raise KubeError("POST", "/apis/batch/v1/namespaces/ci/jobs", status, reason, "bad pod")

    world.kube.intercept("POST", "jobs", refuse)
    assert await world.life().claim(raw) is ClaimOutcome.REJECTED
    assert world.job(raw["id"]) is None
    assert [(c.operation, c.nonce) for c in world.cp.operations("AcknowledgeJob")] == [
        ("AcknowledgeJob", raw["nonce"])
    ]
    [failure] = failures(world)
    assert failure["type"] == "ConfigurationError"
    assert "refused the Job" in failure["message"]
    assert "bad pod" in failure["message"]
    assert world.kube.event_reasons() == ["JobRejected"]


async def test_a_transient_api_error_leaves_the_job_to_be_polled_again(world: World) -> None:
    raw = world.polled()

    def unavailable() -> None:
        raise KubeError("POST", "/apis/batch/v1/namespaces/ci/jobs", 503, "", "try later")

    world.kube.intercept("POST", "jobs", unavailable)
    assert await claimer.process_polled_jobs(world.life().ctx, [raw]) == [ClaimOutcome.SKIPPED]
    assert world.cp.calls[-1].operation == "ListActionTypes"  # never acknowledged
    assert world.cp.jobs[raw["id"]].status == "Dispatched"


async def test_an_unusable_template_fails_the_job_as_configuration_error() -> None:
    world = World.create(default_region=None)  # and the spec names no region
    raw = world.polled()
    assert await world.life().claim(raw) is ClaimOutcome.REJECTED
    [failure] = failures(world)
    assert failure["type"] == "ConfigurationError"
    assert "no region" in failure["message"]
    assert world.kube.objects("jobs") == []


async def test_malformed_job_data_is_acknowledged_and_failed_without_echoing_values(
    world: World,
) -> None:
    bad_key = "not/an*artifact-name"
    raw = world.polled()
    raw["data"]["outputArtifacts"][0]["name"] = bad_key
    assert await world.life().claim(raw) is ClaimOutcome.REJECTED
    [failure] = failures(world)
    assert failure["type"] == "ConfigurationError"
    assert "outputArtifacts" in failure["message"]
    assert bad_key not in failure["message"]
    assert world.kube.objects("jobs") == []
    assert world.kube.event_reasons() == ["JobRejected"]


async def test_malformed_job_data_held_by_another_worker_is_not_failed(world: World) -> None:
    raw = world.polled()
    raw["accountId"] = "not-an-account"
    world.cp.deliver(raw["id"])  # our nonce is stale
    assert await world.life().claim(raw) is ClaimOutcome.REJECTED
    assert world.cp.puts == []


@pytest.mark.parametrize("missing", ["id", "nonce"])
async def test_malformed_job_data_without_id_or_nonce_is_dropped(
    world: World, missing: str
) -> None:
    raw = world.polled()
    del raw[missing]
    assert await world.life().claim(raw) is ClaimOutcome.REJECTED
    assert world.cp.calls == []
    assert world.kube.requests == []


async def test_one_failing_claim_does_not_stop_the_rest_of_the_batch(world: World) -> None:
    batch = [world.polled() for _ in range(3)]
    world.cp.script_ack(batch[1]["id"], batch[1]["nonce"], throttled("AcknowledgeJob"))
    outcomes = await claimer.process_polled_jobs(world.life().ctx, batch)
    assert outcomes == [ClaimOutcome.DISPATCHED, ClaimOutcome.SKIPPED, ClaimOutcome.DISPATCHED]
    # The throttled one is left claiming, for recovery.
    assert jobrecord.phase_of(world.job(batch[1]["id"]) or {}) == "claiming"


# ---- continuation jobs -----------------------------------------------------------------------


async def handed_over(world: World) -> tuple[str, str]:
    """A running Job whose job was handed over: (first job id, continuation job id)."""
    life = world.life()
    raw = world.polled()
    await life.claim(raw)
    world.start_pod(raw["id"])
    assert await life.reporter.hand_over(world.summary(raw["id"]))
    return raw["id"], world.cp.continuations[raw["id"]]


async def test_a_continuation_resumes_tracking_the_same_job(world: World) -> None:
    first, follow_up = await handed_over(world)
    uid = (world.job(first) or {})["metadata"]["uid"]
    raw = world.cp.deliver(follow_up)
    assert await world.life().claim(raw) is ClaimOutcome.CONTINUED
    [job] = world.kube.objects("jobs")
    assert job["metadata"]["uid"] == uid
    annotations = job["metadata"]["annotations"]
    assert annotations[names.ANNOTATION_JOB_ID] == follow_up
    assert annotations[names.ANNOTATION_NONCE] == raw["nonce"]
    assert annotations[names.ANNOTATION_CONTINUATION_OF] == first
    assert annotations[names.ANNOTATION_PHASE] == "running"
    assert names.ANNOTATION_RESULT not in annotations
    assert raw["nonce"] in jobrecord.nonce_candidates(job)
    assert job["metadata"]["labels"][names.LABEL_JOB_ID] == follow_up
    assert follow_up in str(world.secret(first))  # the Secret carries the new job's data
    assert world.kube.event_reasons()[-1] == "JobContinued"
    assert world.cp.jobs[follow_up].status == "InProgress"


async def test_a_continuation_naming_a_job_that_is_gone_fails_the_job(world: World) -> None:
    first, follow_up = await handed_over(world)
    world.kube.external_delete("jobs", NAMESPACE, job_name(first))
    assert await world.life().claim(world.cp.deliver(follow_up)) is (
        ClaimOutcome.CONTINUATION_MISSING
    )
    [failure] = failures(world)
    assert failure["type"] == "JobFailed"
    assert f"Kubernetes Job {job_name(first)} in namespace {NAMESPACE}" in failure["message"]
    assert "run the action again" in failure["message"]
    assert world.kube.event_reasons()[-1] == "ContinuationLost"


async def test_a_continuation_naming_a_job_of_the_same_name_but_another_uid_fails_the_job(
    world: World,
) -> None:
    first, follow_up = await handed_over(world)
    body = world.job(first)
    assert body is not None
    world.kube.external_delete("jobs", NAMESPACE, job_name(first))
    world.kube.external_create("jobs", {**body, "metadata": {**body["metadata"], "uid": ""}})
    assert await world.life().claim(world.cp.deliver(follow_up)) is (
        ClaimOutcome.CONTINUATION_MISSING
    )
    assert failures(world)[0]["type"] == "JobFailed"
    assert world.annotations(first)[names.ANNOTATION_JOB_ID] == first  # not adopted


@pytest.mark.parametrize(
    "token",
    [
        "someone-elses-token",
        continuation.continuation_token("cpw-x", "0b6d6a7e-0000", "another-namespace"),
    ],
)
async def test_a_continuation_token_that_is_not_ours_here_fails_the_job(
    world: World, token: str
) -> None:
    raw = world.polled()
    raw["data"]["continuationToken"] = token
    assert await world.life().claim(raw) is ClaimOutcome.CONTINUATION_MISSING
    [failure] = failures(world)
    assert "no cpworker Job" in failure["message"]
    assert world.kube.objects("jobs") == []


async def test_a_continuation_lost_to_another_worker_is_not_adopted(world: World) -> None:
    first, follow_up = await handed_over(world)
    raw = world.cp.deliver(follow_up)
    world.cp.script_ack(follow_up, raw["nonce"], invalid_nonce(follow_up))
    assert await world.life().claim(raw) is ClaimOutcome.LOST_RACE
    annotations = world.annotations(first)
    assert annotations[names.ANNOTATION_JOB_ID] == first
    assert annotations[names.ANNOTATION_RESULT] == "continued"


async def test_a_continuation_that_is_not_in_progress_is_not_adopted(world: World) -> None:
    first, follow_up = await handed_over(world)
    raw = world.cp.deliver(follow_up)
    world.cp.end(follow_up, "Failed")
    assert await world.life().claim(raw) is ClaimOutcome.NOT_IN_PROGRESS
    assert world.annotations(first)[names.ANNOTATION_JOB_ID] == first


async def test_a_continuation_whose_secret_cannot_be_refreshed_still_continues(
    world: World,
) -> None:
    first, follow_up = await handed_over(world)

    def unavailable() -> None:
        raise KubeError("PATCH", "/api/v1/namespaces/ci/secrets/x", 503, "", "try later")

    world.kube.intercept("POST", "secrets", unavailable)
    assert await world.life().claim(world.cp.deliver(follow_up)) is ClaimOutcome.CONTINUED
    assert world.annotations(first)[names.ANNOTATION_JOB_ID] == follow_up


async def test_a_continuation_acknowledged_but_not_adopted_is_not_lost(world: World) -> None:
    """The continuation's AcknowledgeJob answered InProgress, then the patch that moves the
    Job to the new job id failed (or the operator died right there). CodePipeline will not
    deliver the job again, and the Job still says "continued": nothing ever reports the new
    job. When the Job finishes, its result must still reach CodePipeline."""
    first, follow_up = await handed_over(world)

    def unavailable() -> None:
        raise KubeError("PATCH", "/apis/batch/v1/namespaces/ci/jobs/x", 503, "", "try later")

    raw = world.cp.deliver(follow_up)
    life = world.life()
    world.kube.intercept("PATCH", "jobs", lambda: None)  # the nonce candidate goes through
    world.kube.intercept("PATCH", "jobs", unavailable)  # the adoption does not
    assert await claimer.process_polled_jobs(life.ctx, [raw]) == [ClaimOutcome.SKIPPED]
    assert world.cp.jobs[follow_up].status == "InProgress"

    world.succeed(first)
    await workerloop.job_changed(life.runtime, "MODIFIED", world.job(first) or {})
    for _ in range(3):
        await life.supervise()
    assert world.cp.accepted_for(follow_up), "the continuation job was never reported"


async def test_secret_properties_are_looked_up_for_the_jobs_action_type(world: World) -> None:
    raw = world.polled()
    await world.life().claim(raw)
    [lookup] = world.cp.operations("ListActionTypes")
    assert lookup.job_id == samples.RAW_JOB["data"]["actionTypeId"]["provider"]
    # The secret property's value lives only in the Secret, never in the Job.
    assert samples.CANARY_CONFIG_VALUE not in str(world.job(raw["id"]))
    assert samples.CANARY_CONFIG_VALUE in decoded(world.secret(raw["id"]))[SECRET_CONFIG_KEY]


async def test_a_job_without_an_action_type_keeps_every_property_secret(world: World) -> None:
    raw = world.polled()
    del raw["data"]["actionTypeId"]
    assert await world.life().claim(raw) is ClaimOutcome.DISPATCHED
    assert world.cp.operations("ListActionTypes") == []
    job = world.job(raw["id"])
    assert job is not None
    [container] = job["spec"]["template"]["spec"]["containers"]
    # Not even the harmless properties reach the pod's environment.
    assert not [e for e in container["env"] if e["name"].startswith("CPWORKER_CONFIG_")]
    assert "gpu-a100" in decoded(world.secret(raw["id"]))[SECRET_CONFIG_KEY]


async def redelivered_while_running(world: World) -> dict[str, Any]:
    raw = world.polled()
    await world.life().claim(raw)
    world.cp.jobs[raw["id"]].status = "Dispatched"  # say CodePipeline handed it out again
    return world.cp.deliver(raw["id"])


async def test_a_redelivery_of_a_running_job_changes_nothing_but_the_nonce(world: World) -> None:
    again = await redelivered_while_running(world)
    events = len(world.kube.events)
    assert await world.life().claim(again) is ClaimOutcome.ALREADY_DISPATCHED
    assert len(world.kube.events) == events  # no second JobDispatched
    assert world.annotations(again["id"])[names.ANNOTATION_NONCE] == again["nonce"]
    assert len(world.kube.objects("jobs")) == 1


async def test_a_running_job_is_left_to_the_reporter_when_a_redelivery_is_not_in_progress(
    world: World,
) -> None:
    again = await redelivered_while_running(world)
    world.cp.end(again["id"], "Failed")
    assert await world.life().claim(again) is ClaimOutcome.NOT_IN_PROGRESS
    assert jobrecord.phase_of(world.job(again["id"]) or {}) == "running"
