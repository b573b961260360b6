"""jobrecord: each verb's writes, its preconditions, and the bookkeeping the protocol relies on."""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

import pytest

from cpworker import jobdata, jobrecord, jobsecret, logging_setup, names, timestamps
from cpworker.jobrecord import JobRecords
from cpworker.kube import Body, ConflictError
from tests.unit.operator import samples
from tests.unit.protocol.world import NAMESPACE, World, decoded, job_name

SECRETS = samples.SECRET_PROPERTIES


async def claiming(world: World, raw: dict[str, Any] | None = None) -> tuple[jobdata.Job, Body]:
    """A Job just created suspended for a polled job (and nothing else)."""
    job = jobdata.parse_job(raw or world.polled())
    body, created = await JobRecords(world.kube).create_suspended(
        world.manifest(job, SECRETS), job.nonce, available_at=timestamps.now()
    )
    assert created
    return job, body


def annotation_patch(request_body: Any) -> dict[str, Any]:
    return dict(request_body["metadata"]["annotations"])


# ---- create_suspended -----------------------------------------------------------------------


async def test_create_suspended_writes_one_suspended_claiming_job_with_its_nonce(
    world: World,
) -> None:
    job = jobdata.parse_job(world.polled())
    manifest = world.manifest(job, SECRETS)
    manifest["spec"]["suspend"] = False  # whatever the builder produced
    body, created = await JobRecords(world.kube).create_suspended(
        manifest, job.nonce, available_at=samples.NOW
    )
    assert created
    assert [(w.method, w.resource) for w in world.kube.writes] == [("POST", "jobs")]
    assert body["spec"]["suspend"] is True
    annotations = body["metadata"]["annotations"]
    assert annotations[names.ANNOTATION_PHASE] == "claiming"
    assert annotations[names.ANNOTATION_NONCE] == job.nonce
    assert annotations[names.ANNOTATION_NONCE_CANDIDATES] == job.nonce
    assert annotations[names.ANNOTATION_AVAILABLE_AT] == "2026-11-29T10:00:00.000Z"


async def test_create_suspended_returns_an_existing_job_untouched(world: World) -> None:
    job, first = await claiming(world)
    before = len(world.kube.writes)
    again = jobdata.parse_job(world.cp.deliver(job.id))
    body, created = await JobRecords(world.kube).create_suspended(
        world.manifest(again, SECRETS), again.nonce, available_at=timestamps.now()
    )
    assert not created
    assert body == world.job(job.id) == first
    assert [w.status for w in world.kube.writes[before:]] == [409]  # only the refused create


# ---- nonces -----------------------------------------------------------------------------------


async def test_a_candidate_is_added_with_one_patch_of_the_candidates_only(world: World) -> None:
    job, body = await claiming(world)
    updated = await JobRecords(world.kube).add_nonce_candidate(body, "n2")
    write = world.kube.writes[-1]
    assert (write.method, write.resource) == ("PATCH", "jobs")
    # Conditional on the Job as read: a candidate written meanwhile is never overwritten.
    assert write.body == {
        "metadata": {
            "resourceVersion": body["metadata"]["resourceVersion"],
            "annotations": {names.ANNOTATION_NONCE_CANDIDATES: f"{job.nonce},n2"},
        }
    }
    assert jobrecord.nonce_candidates(updated) == [job.nonce, "n2"]
    assert updated["metadata"]["annotations"][names.ANNOTATION_NONCE] == job.nonce


async def test_candidates_keep_the_newest_four_without_repeats_and_the_recorded_nonce_stays_known(
    world: World,
) -> None:
    job, body = await claiming(world)
    records = JobRecords(world.kube)
    for nonce in ["n2", "n3", "n2", "n4", "n5", "n6"]:
        body = await records.add_nonce_candidate(body, nonce)
    assert jobrecord.MAX_NONCE_CANDIDATES == 4
    assert jobrecord.nonce_candidates(body) == ["n2", "n4", "n5", "n6"]
    # Recovery tries the newest first; the recorded nonce (dropped from the candidates) too.
    assert jobrecord.known_nonces(body) == ["n6", "n5", "n4", "n2", job.nonce]


async def test_a_candidate_added_concurrently_by_another_replica_is_kept(world: World) -> None:
    """Two replicas that found the same Job (AlreadyExists) each record the nonce they are about
    to acknowledge. Each read the Job before the other wrote: neither candidate may be lost,
    or recovery (after the winner crashed between its acknowledgement and `record_nonce`)
    would not know the winning nonce and would delete an acknowledged job's Job."""
    job, body = await claiming(world)
    name = job_name(job.id)

    def other_replica_records_its_nonce() -> None:
        world.kube.external_patch(
            "jobs",
            NAMESPACE,
            name,
            {"metadata": {"annotations": {names.ANNOTATION_NONCE_CANDIDATES: f"{job.nonce},n3"}}},
        )

    world.kube.intercept("PATCH", "jobs", other_replica_records_its_nonce)
    # Refusing the stale write (Conflict) would be fine too, as long as nothing is lost.
    with contextlib.suppress(ConflictError):
        await JobRecords(world.kube).add_nonce_candidate(body, "n2")
    stored = world.job(job.id)
    assert stored is not None
    assert "n3" in jobrecord.known_nonces(stored), "the other replica's candidate was lost"


async def test_record_nonce_writes_only_a_new_nonce(world: World) -> None:
    job, body = await claiming(world)
    records = JobRecords(world.kube)
    before = len(world.kube.writes)
    await records.record_nonce(body, job.nonce)
    assert len(world.kube.writes) == before
    await records.record_nonce(body, "n2")
    assert world.kube.writes[-1].body == {
        "metadata": {"annotations": {names.ANNOTATION_NONCE: "n2"}}
    }
    assert world.annotations(job.id)[names.ANNOTATION_NONCE] == "n2"


# ---- release, abandon ------------------------------------------------------------------------


async def test_release_unsuspends_the_job_and_records_when(world: World) -> None:
    _, body = await claiming(world)
    released = await JobRecords(world.kube).release(body)
    assert released["spec"]["suspend"] is False
    annotations = released["metadata"]["annotations"]
    assert annotations[names.ANNOTATION_PHASE] == "running"
    released_at = timestamps.parse(annotations[names.ANNOTATION_RELEASED_AT])
    assert released_at is not None
    assert abs((timestamps.now() - released_at).total_seconds()) < 5


async def test_abandon_deletes_the_job_and_its_secret_and_tolerates_them_gone(
    world: World,
) -> None:
    job, body = await claiming(world)
    records = JobRecords(world.kube)
    await records.ensure_secret(body, job, SECRETS)
    await records.abandon(body)
    assert world.job(job.id) is None
    assert world.secret(job.id) is None
    await records.abandon(body)  # both already gone: no error


async def test_abandon_unless_contested_deletes_an_uncontested_job_under_a_precondition(
    world: World,
) -> None:
    job, body = await claiming(world)
    version = body["metadata"]["resourceVersion"]
    assert await JobRecords(world.kube).abandon_unless_contested(body, {job.nonce})
    assert world.job(job.id) is None
    delete = next(w for w in world.kube.writes if w.method == "DELETE" and w.resource == "jobs")
    assert delete.body["preconditions"] == {"resourceVersion": version}


async def test_abandon_unless_contested_leaves_a_job_with_a_foreign_candidate(world: World) -> None:
    job, body = await claiming(world)
    records = JobRecords(world.kube)
    await records.add_nonce_candidate(body, "other-replica")
    writes = len(world.kube.writes)
    # `body` is the stale read from before the other replica's candidate: it is re-read.
    assert not await records.abandon_unless_contested(body, {job.nonce})
    assert world.job(job.id) is not None
    assert len(world.kube.writes) == writes


async def test_abandon_unless_contested_leaves_a_job_changed_between_read_and_delete(
    world: World,
) -> None:
    job, body = await claiming(world)
    world.kube.intercept(
        "DELETE",
        "jobs",
        lambda: world.annotate(job.id, {"x": "changed"}),
    )
    assert not await JobRecords(world.kube).abandon_unless_contested(body, {job.nonce})
    assert world.job(job.id) is not None
    assert world.kube.writes[-1].status == 409


async def test_abandon_unless_contested_of_a_vanished_job_is_done(world: World) -> None:
    job, body = await claiming(world)
    world.kube.external_delete("jobs", NAMESPACE, job_name(job.id))
    assert await JobRecords(world.kube).abandon_unless_contested(body, {job.nonce})
    assert not [w for w in world.kube.writes if w.method == "DELETE"]


# ---- continuation ----------------------------------------------------------------------------


async def test_hand_over_records_intent_then_result_and_a_continuation_adopts_the_job(
    world: World,
) -> None:
    job, body = await claiming(world)
    records = JobRecords(world.kube)
    await records.record_handover_intent(body, job.id)
    assert world.annotations(job.id)[names.ANNOTATION_HANDOVER_OF] == job.id
    await records.mark_continued(body)
    assert world.annotations(job.id)[names.ANNOTATION_RESULT] == "continued"
    follow_up = jobdata.parse_job(samples.raw_job(id=str(uuid.uuid4()), nonce="c1"))
    adopted = await records.adopt_continuation(body, follow_up, previous_job_id=job.id)
    annotations = adopted["metadata"]["annotations"]
    assert adopted["metadata"]["name"] == job_name(job.id)  # named after the first job
    assert adopted["metadata"]["labels"][names.LABEL_JOB_ID] == follow_up.id
    assert annotations[names.ANNOTATION_JOB_ID] == follow_up.id
    assert annotations[names.ANNOTATION_NONCE] == "c1"
    assert annotations[names.ANNOTATION_CONTINUATION_OF] == job.id
    assert annotations[names.ANNOTATION_PHASE] == "running"
    assert names.ANNOTATION_RESULT not in annotations  # null deletes it


# ---- cancellation ----------------------------------------------------------------------------


async def test_mark_cancelled_records_then_deletes_under_the_read_resource_version(
    world: World,
) -> None:
    job, body = await claiming(world)
    records = JobRecords(world.kube)
    await records.ensure_secret(body, job, SECRETS)
    fresh = world.job(job.id)
    assert fresh is not None
    assert await records.mark_cancelled(fresh)
    patch = next(w for w in world.kube.writes if w.method == "PATCH" and w.resource == "jobs")
    assert patch.body["metadata"]["resourceVersion"] == fresh["metadata"]["resourceVersion"]
    assert annotation_patch(patch.body) == {names.ANNOTATION_PHASE: "cancelled"}
    assert world.job(job.id) is None
    assert world.secret(job.id) is None


async def test_mark_cancelled_of_a_job_changed_since_it_was_read_does_nothing(
    world: World,
) -> None:
    job, body = await claiming(world)
    world.kube.external_patch("jobs", NAMESPACE, job_name(job.id), {"status": {"active": 1}})
    assert not await JobRecords(world.kube).mark_cancelled(body)
    assert world.annotations(job.id)[names.ANNOTATION_PHASE] == "claiming"


async def test_mark_cancelled_by_worker_deletes_unconditionally(world: World) -> None:
    job, body = await claiming(world)
    world.kube.external_patch("jobs", NAMESPACE, job_name(job.id), {"status": {"active": 1}})
    await JobRecords(world.kube).mark_cancelled_by_worker(body)  # stale body: no precondition
    assert world.job(job.id) is None


# ---- the report lease ------------------------------------------------------------------------


async def running(world: World) -> tuple[jobdata.Job, Body]:
    job, body = await claiming(world)
    return job, await JobRecords(world.kube).release(body)


async def test_a_free_report_lease_is_taken_with_a_conditional_patch(world: World) -> None:
    job, body = await running(world)
    assert await JobRecords(world.kube).claim_report(
        body, job.id, reporter_id="me", lease_seconds=30
    )
    patch = world.kube.writes[-1]
    assert patch.body["metadata"]["resourceVersion"] == body["metadata"]["resourceVersion"]
    holder, since = world.annotations(job.id)[names.ANNOTATION_REPORTER].split(" ")
    assert holder == "me"
    assert abs(float(since) - time.time()) < 5


@pytest.mark.parametrize(
    ("holder", "age", "taken"),
    [
        ("other", 5, False),  # held by another reporter
        ("other", 31, True),  # expired: its reporter crashed before mark_reported
        ("me", 5, True),  # ours (a retry after a failed Put)
        ("other", "garbage", True),  # unreadable: counts as expired
    ],
)
async def test_a_held_report_lease_is_respected_until_it_expires(
    world: World, holder: str, age: float | str, taken: bool
) -> None:
    job, _ = await running(world)
    since = f"{time.time() - age:.0f}" if isinstance(age, int) else age
    held = world.annotate(job.id, {names.ANNOTATION_REPORTER: f"{holder} {since}"})
    writes = len(world.kube.writes)
    assert (
        await JobRecords(world.kube).claim_report(held, job.id, reporter_id="me", lease_seconds=30)
        is taken
    )
    if taken:
        assert world.annotations(job.id)[names.ANNOTATION_REPORTER].startswith("me ")
    else:
        assert len(world.kube.writes) == writes


@pytest.mark.parametrize(
    "change",
    [
        {names.ANNOTATION_PHASE: "reported"},
        {names.ANNOTATION_PHASE: "cancelled"},
        {names.ANNOTATION_JOB_ID: "another-job"},  # adopted by a continuation meanwhile
    ],
)
async def test_no_report_lease_on_a_job_no_longer_running_this_job(
    world: World, change: dict[str, str]
) -> None:
    job, body = await running(world)
    world.kube.external_patch(
        "jobs", NAMESPACE, job_name(job.id), {"metadata": {"annotations": change}}
    )
    writes = len(world.kube.writes)
    assert not await JobRecords(world.kube).claim_report(
        body, job.id, reporter_id="me", lease_seconds=30
    )
    assert len(world.kube.writes) == writes


async def test_a_report_lease_race_is_lost_to_the_replica_that_wrote_first(world: World) -> None:
    job, body = await running(world)
    world.kube.intercept(
        "PATCH",
        "jobs",
        lambda: world.annotate(job.id, {names.ANNOTATION_REPORTER: f"other {time.time():.0f}"}),
    )
    assert not await JobRecords(world.kube).claim_report(
        body, job.id, reporter_id="me", lease_seconds=30
    )
    assert world.annotations(job.id)[names.ANNOTATION_REPORTER].startswith("other ")


async def test_the_lease_of_a_vanished_job_is_ours_the_result_must_still_be_sent(
    world: World,
) -> None:
    job, body = await running(world)
    world.kube.external_delete("jobs", NAMESPACE, job_name(job.id))
    assert await JobRecords(world.kube).claim_report(
        body, job.id, reporter_id="me", lease_seconds=30
    )


# ---- reported --------------------------------------------------------------------------------


async def test_mark_reported_sets_phase_result_time_and_only_now_the_ttl(world: World) -> None:
    job, body = await running(world)
    assert "ttlSecondsAfterFinished" not in body["spec"]
    await JobRecords(world.kube).mark_reported(body, names.Result.FAILED, 600)
    stored = world.job(job.id)
    assert stored is not None
    annotations = stored["metadata"]["annotations"]
    assert annotations[names.ANNOTATION_PHASE] == "reported"
    assert annotations[names.ANNOTATION_RESULT] == "failed"
    assert timestamps.parse(annotations[names.ANNOTATION_REPORTED_AT]) is not None
    assert stored["spec"]["ttlSecondsAfterFinished"] == 600


async def test_mark_reported_on_a_vanished_job_is_fine(world: World) -> None:
    job, body = await running(world)
    world.kube.external_delete("jobs", NAMESPACE, job_name(job.id))
    await JobRecords(world.kube).mark_reported(body, names.Result.SUCCEEDED, 600)
    assert world.kube.writes[-1].status == 404
    assert world.job(job.id) is None


# ---- the Secret ------------------------------------------------------------------------------


def with_canaries() -> tuple[dict[str, Any], str, str]:
    """Polled job data whose secret values no other test registered (so a test can fail)."""
    config_value = f"canary-config-{uuid.uuid4().hex}"
    session_token = f"canary-token-{uuid.uuid4().hex}"
    raw = samples.raw_job(id=str(uuid.uuid4()), nonce="n1")
    raw["data"]["actionConfiguration"]["configuration"]["ApiToken"] = config_value
    raw["data"]["artifactCredentials"]["sessionToken"] = session_token
    return raw, config_value, session_token


async def test_ensure_secret_creates_the_secret_owned_by_the_job_and_registers_its_values(
    world: World,
) -> None:
    raw, config_value, session_token = with_canaries()
    world.cp.queue(raw)
    job, body = await claiming(world, raw)
    assert logging_setup.redact(f"a {config_value} b {session_token}") != "a *** b ***"
    await JobRecords(world.kube).ensure_secret(body, job, SECRETS)
    secret = world.secret(job.id)
    assert secret is not None
    assert secret["metadata"]["ownerReferences"] == [
        names.controller_reference("batch/v1", "Job", job_name(job.id), body["metadata"]["uid"])
    ]
    assert secret["metadata"]["labels"][names.LABEL_WORKER] == samples.WORKER.name
    files = decoded(secret)
    assert config_value in files[jobsecret.SECRET_CONFIG_KEY]
    assert session_token in files[jobsecret.CREDENTIALS_KEY]
    assert config_value not in files[jobsecret.JOB_KEY]
    assert logging_setup.redact(f"a {config_value} b {session_token}") == "a *** b ***"


async def test_ensure_secret_refreshes_an_existing_secret_in_place(world: World) -> None:
    job, body = await claiming(world)
    records = JobRecords(world.kube)
    await records.ensure_secret(body, job, SECRETS)
    again = jobdata.parse_job(world.cp.deliver(job.id))  # fresh credentials
    await records.ensure_secret(body, again, SECRETS)
    assert [(w.method, w.status) for w in world.kube.writes_to("secrets")] == [
        ("POST", 200),
        ("POST", 409),
        ("PATCH", 200),
    ]
    creds = decoded(world.secret(job.id))[jobsecret.CREDENTIALS_KEY]
    assert again.data.artifact_credentials is not None
    assert again.data.artifact_credentials.session_token.get_secret_value() in creds


async def test_ensure_secret_makes_the_current_job_own_a_leftover_secret(world: World) -> None:
    """A Secret left by an earlier Job of the same name (deleted, its Secret not yet) is owned
    by that Job's uid: refreshed in place, it keeps that owner, and the garbage collector then
    deletes the new Job's Secret under its running pod."""
    job, old = await claiming(world)
    records = JobRecords(world.kube)
    await records.ensure_secret(old, job, SECRETS)
    world.kube.external_delete("jobs", NAMESPACE, job_name(job.id))  # its Secret not yet
    again = jobdata.parse_job(world.cp.deliver(job.id))
    new, created = await records.create_suspended(
        world.manifest(again, SECRETS), again.nonce, available_at=timestamps.now()
    )
    assert created
    await records.ensure_secret(new, again, SECRETS)
    world.kube.collect_garbage()
    secret = world.secret(job.id)
    assert secret is not None, "the garbage collector deleted the new Job's Secret"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == new["metadata"]["uid"]


async def test_refresh_credentials_rewrites_the_secret_registers_and_records_the_time(
    world: World,
) -> None:
    raw, _, _ = with_canaries()
    world.cp.queue(raw)
    job, body = await claiming(world, raw)
    records = JobRecords(world.kube)
    await records.ensure_secret(body, job, SECRETS)
    details = jobdata.parse_job_details(await world.cp.get_job_details(job.id))
    assert details.data.artifact_credentials is not None
    fresh_token = details.data.artifact_credentials.session_token.get_secret_value()
    await records.refresh_credentials(
        body,
        job_id=details.id,
        account_id=details.account_id,
        data=details.data,
        secret_property_names=SECRETS,
        now=samples.NOW,
    )
    assert fresh_token in decoded(world.secret(job.id))[jobsecret.CREDENTIALS_KEY]
    assert world.annotations(job.id)[names.ANNOTATION_CREDENTIALS_ISSUED_AT] == (
        "2026-11-29T10:00:00Z"
    )
    assert fresh_token not in logging_setup.redact(f"token {fresh_token}")


async def test_the_secret_configuration_is_read_back_for_redaction(world: World) -> None:
    job, body = await claiming(world)
    records = JobRecords(world.kube)
    assert await records.secret_configuration(body) == []  # no Secret yet
    await records.ensure_secret(body, job, SECRETS)
    assert samples.CANARY_CONFIG_VALUE in await records.secret_configuration(body)
    assert await records.has_secret(body)
    await records.delete_secret(body)
    assert not await records.has_secret(body)


async def test_a_job_deleted_just_before_the_lease_patch_is_still_reported(world: World) -> None:
    job, body = await running(world)
    world.kube.intercept(
        "PATCH", "jobs", lambda: world.kube.external_delete("jobs", NAMESPACE, job_name(job.id))
    )
    assert await JobRecords(world.kube).claim_report(
        body, job.id, reporter_id="me", lease_seconds=30
    )
