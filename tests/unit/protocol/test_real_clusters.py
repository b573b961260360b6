"""What real clusters do that the e2e stand-in models only in part (issue 13), at the protocol
level: watch gaps (Jobs that vanish without a DELETED event), pod creation refused by quota
and admission (the Job's FailedCreate events), a Secret refused by quota, two-step terminal
conditions, classic sidecars and pods ended from outside."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest

from cpworker import claimer, jobindex, models, names, timestamps, workerloop
from cpworker.claimer import ClaimOutcome
from cpworker.kube import KubeError
from tests.unit.operator import samples
from tests.unit.protocol.world import NAMESPACE, WORKER, Clock, Life, World, job_name

RELIST = 300.0  # the default CPWORKER_JOB_RELIST_SECONDS


def failure_of(world: World, job_id: str) -> dict[str, str]:
    [call] = world.cp.accepted_for(job_id)
    assert not call.succeeded, call.params
    return dict(call.params["failureDetails"])


def requests_to(world: World, method: str, resource: str) -> int:
    return sum(1 for r in world.kube.requests if (r.method, r.resource) == (method, resource))


# ---- 3. watch gaps: a Job that vanished without a DELETED event ---------------------------


async def test_a_running_job_deleted_in_a_watch_gap_is_reported_by_the_relist(
    world: World,
) -> None:
    """kopf relists after 410 Gone but never emits DELETED for what vanished in the gap, and
    its index keeps the entry: without the relist the ghost counts against maxInFlight and
    is never reported."""
    clock = Clock()
    life = world.life(clock=clock)
    job_id = await world.dispatched(life)
    index = world.index()  # what kopf keeps
    world.kube.external_delete("jobs", NAMESPACE, job_name(job_id))
    await life.supervisor.supervise(index, world.pods_of)
    assert world.cp.accepted == []  # the relist is not due yet
    clock.advance(RELIST)
    await life.supervisor.supervise(index, world.pods_of)
    failure = failure_of(world, job_id)
    assert failure["type"] == "JobFailed"
    assert "was deleted before it finished" in failure["message"]
    assert life.runtime.vanished.hide(index) == []  # no longer counted, nor supervised
    acks = len(world.cp.operations("AcknowledgeJob"))
    clock.advance(RELIST)
    await life.supervisor.supervise(index, world.pods_of)
    assert len(world.cp.operations("AcknowledgeJob")) == acks
    assert len(world.cp.puts) == 1


async def test_a_job_missing_from_a_cached_list_is_kept_when_a_get_finds_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relist may be served from the API server's watch cache (resourceVersion=0), a
    moment old: a Job it lacks is only gone when a GET cannot find it either."""
    clock = Clock()
    life = world.life(clock=clock)
    job_id = await world.dispatched(life)
    index = world.index()

    async def cached_list(_namespace: str, _worker: str) -> set[str]:
        return set()  # from before the Job was created

    monkeypatch.setattr(life.records, "listed_uids", cached_list)
    clock.advance(RELIST)
    await life.supervisor.supervise(index, world.pods_of)
    assert life.runtime.vanished.hide(index) == index
    assert world.cp.accepted == []
    assert world.job(job_id) is not None


async def test_a_relist_lists_this_workers_jobs_once_an_interval_while_any_are_in_flight(
    world: World,
) -> None:
    clock = Clock()
    life = world.life(clock=clock)

    def lists() -> list[str]:
        return [
            r.namespace
            for r in world.kube.requests
            if (r.method, r.resource, r.name) == ("GET", "jobs", "")
        ]

    await life.supervisor.supervise([], world.pods_of)
    clock.advance(RELIST)
    await life.supervisor.supervise([], world.pods_of)
    assert lists() == []  # nothing in flight: no list
    await world.dispatched(life)
    await life.supervisor.supervise(world.index(), world.pods_of)
    await life.supervisor.supervise(world.index(), world.pods_of)
    assert lists() == [NAMESPACE]
    clock.advance(RELIST)
    await life.supervisor.supervise(world.index(), world.pods_of)
    assert lists() == [NAMESPACE, NAMESPACE]


async def test_a_ghost_without_pods_is_reported_as_vanished_not_as_never_started(
    world: World,
) -> None:
    """Its pods left the pod index with their DELETED events; the Job's was lost. Past the
    never-started grace and before the relist, the Job is looked up before it is failed."""
    life = world.life()
    job_id = await world.dispatched(life)
    long_ago = timestamps.now() - dt.timedelta(seconds=world.settings.never_started_grace_seconds)
    world.kube.external_patch(
        "jobs",
        NAMESPACE,
        job_name(job_id),
        {"status": {"startTime": timestamps.rfc3339(long_ago - dt.timedelta(seconds=1))}},
    )
    index = world.index()
    for pod in world.kube.objects("pods"):
        world.kube.external_delete("pods", NAMESPACE, pod["metadata"]["name"])
    world.kube.external_delete("jobs", NAMESPACE, job_name(job_id))
    await life.supervisor.supervise(index, world.pods_of)
    failure = failure_of(world, job_id)
    assert "was deleted before it finished" in failure["message"]
    assert life.runtime.vanished.hide(index) == []


async def test_a_404_on_a_job_being_acted_on_means_it_vanished(world: World) -> None:
    """The credential refresh patches the Secret (left behind: garbage collection is slow),
    then the Job, which is gone: reported as vanished at once, not retried every round."""
    life = world.life()
    job_id = await world.dispatched(life)
    issued = timestamps.rfc3339(timestamps.now() - dt.timedelta(hours=1))
    world.annotate(job_id, {names.ANNOTATION_CREDENTIALS_ISSUED_AT: issued})
    index = world.index()
    world.kube.external_delete("jobs", NAMESPACE, job_name(job_id))
    await life.supervisor.supervise(index, world.pods_of)
    assert "was deleted before it finished" in failure_of(world, job_id)["message"]
    assert life.runtime.vanished.hide(index) == []


async def test_a_404_on_the_secret_alone_is_not_a_vanished_job(world: World) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    issued = timestamps.rfc3339(timestamps.now() - dt.timedelta(hours=1))
    world.annotate(job_id, {names.ANNOTATION_CREDENTIALS_ISSUED_AT: issued})
    world.kube.external_delete("secrets", NAMESPACE, job_name(job_id))
    await life.supervise()
    assert world.cp.accepted == []
    assert life.runtime.vanished.hide(world.index()) == world.index()


def test_vanished_jobs_forget_ghosts_the_index_dropped(world: World) -> None:
    vanished = jobindex.VanishedJobs()
    ghost = jobindex.summarize_job(
        {"metadata": {"name": "a", "namespace": NAMESPACE, "uid": "u1", "annotations": {}}}
    )
    vanished.add(ghost)
    assert vanished.hide([ghost]) == []
    vanished.keep_only(NAMESPACE, "", [ghost])
    assert vanished.uids
    vanished.keep_only(NAMESPACE, "", [])
    assert vanished.uids == {}


async def test_a_drain_is_not_held_by_a_ghost(world: World) -> None:
    clock = Clock()
    life = world.life(clock=clock)
    await world.dispatched(life)
    ghost = world.index()[0]
    life.runtime.vanished.add(ghost)
    worker = world.kube.get_object("customactionworkers", NAMESPACE, WORKER)
    assert worker is not None
    index_jobs = {(NAMESPACE, names.worker_label_value(WORKER)): [ghost]}
    # No live Job left: the finalizer lets the worker go (no TemporaryError).
    await workerloop.drain_or_cancel(
        life.runtime,
        spec=worker["spec"],
        namespace=NAMESPACE,
        name=WORKER,
        uid=worker["metadata"]["uid"],
        body=worker,
        index_jobs=index_jobs,
        index_pods={},
    )


# ---- 4. pod creation refused --------------------------------------------------------------


def released_ago(world: World, job_id: str, seconds: float) -> None:
    when = timestamps.rfc3339(timestamps.now() - dt.timedelta(seconds=seconds))
    world.annotate(job_id, {names.ANNOTATION_RELEASED_AT: when})


def failed_create(world: World, job_id: str, message: str, *, seconds_ago: float = 1) -> None:
    """The Job controller's Warning event: it could not create the Job's pod."""
    job = world.job(job_id)
    assert job is not None
    stamp = timestamps.rfc3339(timestamps.now() - dt.timedelta(seconds=seconds_ago))
    world.kube.external_create(
        "events",
        {
            "metadata": {"name": f"{job_name(job_id)}.{seconds_ago}", "namespace": NAMESPACE},
            "involvedObject": {
                "kind": "Job",
                "name": job_name(job_id),
                "namespace": NAMESPACE,
                "uid": job["metadata"]["uid"],
            },
            "reason": "FailedCreate",
            "type": "Warning",
            "message": f'Error creating: pods "{job_name(job_id)}-x" is forbidden: {message}',
            "lastTimestamp": stamp,
        },
    )


async def released(world: World, life: Life) -> str:
    raw = world.polled()
    assert await life.claim(raw) is ClaimOutcome.DISPATCHED
    return str(raw["id"])


@pytest.mark.parametrize(
    "refusal",
    [
        'violates PodSecurity "restricted:latest": privileged (container "build")',
        "maximum cpu usage per Container is 1, but limit is 2",
        'admission webhook "policy.example.com" denied the request: no latest tags',
        "failed quota: compute: must specify requests.cpu for: build",
    ],
    ids=["pod-security", "limit-range", "webhook", "quota-needs-requests"],
)
async def test_a_refusal_only_the_template_can_fix_fails_at_once_with_the_reason(
    world: World, refusal: str
) -> None:
    life = world.life()
    job_id = await released(world, life)
    released_ago(world, job_id, 2)  # long enough without a pod to look at its events
    failed_create(world, job_id, refusal)
    await life.supervise()
    failure = failure_of(world, job_id)
    assert failure["type"] == "ConfigurationError"
    assert refusal in failure["message"]
    assert "FailedCreate" in failure["message"]
    assert world.job(job_id) is None  # deleted: it would only retry


async def test_a_quota_shortage_waits_for_the_quota_then_fails_with_the_reason(
    world: World,
) -> None:
    world.settings = world.settings.model_copy(
        update={"never_started_grace_seconds": 60.0, "quota_wait_seconds": 600.0}
    )
    life = world.life()
    job_id = await released(world, life)
    refusal = "exceeded quota: pods, requested: count/pods=1, used: count/pods=1"
    failed_create(world, job_id, refusal)
    released_ago(world, job_id, 120)  # past the never-started grace
    await life.supervise()
    assert world.cp.accepted == []  # a shortage is waited out
    released_ago(world, job_id, 601)
    await life.supervise()
    failure = failure_of(world, job_id)
    assert failure["type"] == "SystemUnavailable"
    assert refusal in failure["message"]
    assert "CPWORKER_QUOTA_WAIT_SECONDS" in failure["message"]


async def test_a_fresh_job_without_a_pod_yet_costs_no_event_lookup(world: World) -> None:
    life = world.life()
    await released(world, life)
    await life.supervise()
    assert requests_to(world, "GET", "events") == 0


async def test_a_pod_created_after_refusals_runs_on(world: World) -> None:
    """The quota freed up: the pod exists now, older FailedCreate events no longer count."""
    life = world.life()
    job_id = await released(world, life)
    failed_create(world, job_id, "exceeded quota: pods", seconds_ago=30)
    released_ago(world, job_id, 3600)
    world.start_pod(job_id)
    await life.supervise()
    assert world.cp.accepted == []


async def test_a_never_started_pod_is_checked_on_fresh_pods_before_it_is_failed(
    world: World,
) -> None:
    """The pod index still shows a pod deleted in a watch gap, stuck on its image; the pod
    that runs now is not in the index yet. The fresh list decides: nothing is failed."""
    life = world.life()
    job_id = await world.dispatched(life)
    world.cannot_pull(job_id, minutes_ago=60)
    stale_pods = world.pods_of(job_name(job_id))
    stuck = world.kube.objects("pods")[0]
    world.kube.external_delete("pods", NAMESPACE, stuck["metadata"]["name"])
    running = dict(stuck)
    running["metadata"] = {**stuck["metadata"], "name": f"{job_name(job_id)}-r2"}
    running["status"] = {
        "phase": "Running",
        "containerStatuses": [{"name": "build", "state": {"running": {}}}],
    }
    world.kube.external_create("pods", running)
    await life.supervisor.supervise(world.index(), lambda _name: stale_pods)
    assert world.cp.accepted == []


# ---- 4. a Secret refused by quota ---------------------------------------------------------


def refuse_secrets(world: World, status: int, message: str) -> None:
    def refuse() -> None:
        raise KubeError("POST", "/api/v1/namespaces/ci/secrets", status, "Forbidden", message)

    world.kube.intercept("POST", "secrets", refuse)


async def test_a_secret_refused_by_quota_fails_the_job_once_with_the_reason(
    world: World,
) -> None:
    raw = world.polled()
    message = 'secrets "x" is forbidden: exceeded quota: secrets, requested: count/secrets=1'
    refuse_secrets(world, 403, message)
    clock = Clock()
    life = world.life(clock=clock)
    assert await life.claim(raw) is ClaimOutcome.REJECTED
    failure = failure_of(world, raw["id"])
    assert failure["type"] == "SystemUnavailable"
    assert "refused the job's Secret" in failure["message"]
    assert "exceeded quota: secrets" in failure["message"]
    assert world.job(raw["id"]) is None  # no claiming Job left for recovery to loop on
    acks = len(world.cp.operations("AcknowledgeJob"))
    assert acks == 1
    for _ in range(3):
        clock.advance(60)
        await life.supervise()
    assert len(world.cp.operations("AcknowledgeJob")) == acks


async def test_a_secret_forbidden_by_rbac_is_retried_not_failed(world: World) -> None:
    """A 403 of RBAC is the operator's problem, not the job's: left for recovery."""
    raw = world.polled()
    refuse_secrets(world, 403, 'secrets is forbidden: User "x" cannot create resource "secrets"')
    outcomes = await claimer.process_polled_jobs(world.life().ctx, [raw])
    assert outcomes == [ClaimOutcome.SKIPPED]
    assert world.cp.accepted == []
    assert world.cp.operations("AcknowledgeJob") == []


async def test_recovery_whose_secret_is_refused_fails_the_job_once(world: World) -> None:
    """A claim interrupted before its Secret; recovery acknowledges (InProgress) and finds the
    Secret refused by quota: it fails the job with the reason and removes the Job, instead of
    acknowledging it again every round."""
    raw = world.polled()
    refuse_secrets(world, 503, "try later")
    await claimer.process_polled_jobs(world.life().ctx, [raw])
    assert world.job(raw["id"]) is not None  # claiming, no Secret
    world.kube.age("jobs", NAMESPACE, job_name(raw["id"]), 120)
    refuse_secrets(world, 403, 'secrets "x" is forbidden: exceeded quota: secrets')
    clock = Clock()
    life = world.life(clock=clock)
    await life.supervise()
    failure = failure_of(world, raw["id"])
    assert "exceeded quota: secrets" in failure["message"]
    assert world.job(raw["id"]) is None
    acks = len(world.cp.operations("AcknowledgeJob"))
    clock.advance(60)
    await life.supervise()
    assert len(world.cp.operations("AcknowledgeJob")) == acks


async def test_a_job_a_webhook_refuses_fails_at_once(world: World) -> None:
    raw = world.polled()

    def refuse() -> None:
        raise KubeError(
            "POST",
            "/apis/batch/v1/namespaces/ci/jobs",
            403,
            "",
            'admission webhook "jobs.policy.example.com" denied the request: no root',
        )

    world.kube.intercept("POST", "jobs", refuse)
    assert await world.life().claim(raw) is ClaimOutcome.REJECTED
    failure = failure_of(world, raw["id"])
    assert failure["type"] == "ConfigurationError"
    assert "denied the request: no root" in failure["message"]


# ---- 8. two-step terminal conditions ------------------------------------------------------


def criteria_met(world: World, job_id: str) -> dict[str, Any]:
    """The pod succeeded; the Job says SuccessCriteriaMet, not yet Complete."""
    world.succeed(job_id)
    world.kube.external_patch(
        "jobs",
        NAMESPACE,
        job_name(job_id),
        {"status": {"conditions": [{"type": "SuccessCriteriaMet", "status": "True"}]}},
    )
    job = world.job(job_id)
    assert job is not None
    return job


async def test_the_first_terminal_condition_reports_the_job(world: World) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    body = criteria_met(world, job_id)
    await workerloop.job_changed(life.runtime, "MODIFIED", body)
    await asyncio.gather(*life.runtime.background)  # the report runs beside the handler
    assert world.cp.accepted_for(job_id)[0].succeeded


async def test_a_job_deleted_between_the_two_terminal_conditions_is_reported_by_outcome(
    world: World,
) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    body = criteria_met(world, job_id)
    world.kube.external_delete("jobs", NAMESPACE, job_name(job_id))
    await workerloop.job_changed(life.runtime, "DELETED", body)
    [call] = world.cp.accepted_for(job_id)
    assert call.succeeded, call.params


async def test_a_job_with_failure_target_is_not_cancelled_by_the_probe(world: World) -> None:
    """The index has not seen FailureTarget yet; CodePipeline says Failed (another replica
    reported it). The probe re-reads the Job: decided, so not a cancellation to delete."""
    life = world.life()
    job_id = await world.dispatched(life)
    stale = world.summary(job_id)
    world.kube.external_patch(
        "jobs",
        NAMESPACE,
        job_name(job_id),
        {"status": {"conditions": [{"type": "FailureTarget", "status": "True"}]}},
    )
    world.cp.end(job_id, "Failed")
    await life.supervisor.supervise([stale], lambda _name: [])
    assert "JobCancelled" not in world.kube.event_reasons()
    assert world.job(job_id) is not None


# ---- 5, 7. pods ended from outside, sidecars ----------------------------------------------


def evicted_pod(world: World, job_id: str) -> str:
    """The Eviction API marked the Job's pod: DisruptionTarget, then it is deleted."""
    pod = world.start_pod(job_id)
    patched = world.kube.external_patch(
        "pods",
        NAMESPACE,
        pod["metadata"]["name"],
        {
            "status": {
                "conditions": [
                    {
                        "type": "DisruptionTarget",
                        "status": "True",
                        "reason": "EvictionByEvictionAPI",
                        "message": "Eviction API: evicting",
                    }
                ]
            }
        },
    )
    return str(patched["metadata"]["name"])


async def test_an_evicted_pods_reason_is_recorded_on_its_job_and_reported_once_it_is_gone(
    world: World,
) -> None:
    life = world.life()
    job_id = await released(world, life)
    pod = evicted_pod(world, job_id)
    body = world.kube.get_object("pods", NAMESPACE, pod)
    assert body is not None
    await workerloop.pod_changed(life.runtime, "MODIFIED", body)
    await workerloop.pod_changed(life.runtime, "MODIFIED", body)  # written once
    recorded = json.loads(world.annotations(job_id)[names.ANNOTATION_POD_ENDED])
    assert recorded["reason"] == "DisruptionTarget (EvictionByEvictionAPI)"
    recordings = [
        w
        for w in world.kube.writes_to("jobs")
        if names.ANNOTATION_POD_ENDED in json.dumps(w.body or {})
    ]
    assert len(recordings) == 1
    world.kube.external_delete("pods", NAMESPACE, pod)  # counted, then gone
    await workerloop.pod_changed(life.runtime, "DELETED", body)
    assert life.runtime.recorded_pod_ends == set()
    world.kube.external_patch(
        "jobs",
        NAMESPACE,
        job_name(job_id),
        {
            "status": {
                "conditions": [
                    {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"}
                ]
            }
        },
    )
    await life.supervise()
    failure = failure_of(world, job_id)
    assert failure["type"] == "SystemUnavailable"
    assert "EvictionByEvictionAPI" in failure["message"]


def only_sidecars_left(world: World, job_id: str) -> str:
    """The Job's pod: build succeeded, a classic sidecar (istio-proxy) runs on."""
    pod = world.start_pod(job_id)
    name = str(pod["metadata"]["name"])
    containers = [*pod["spec"]["containers"], {"name": "istio-proxy"}]
    world.kube.external_patch(
        "pods",
        NAMESPACE,
        name,
        {
            "spec": {"containers": containers},
            "status": {
                "containerStatuses": [
                    {
                        "name": "build",
                        "state": {"terminated": {"exitCode": 0, "message": '{"summary": "built"}'}},
                    },
                    {"name": "istio-proxy", "state": {"running": {}}},
                ]
            },
        },
    )
    return name


async def test_a_classic_sidecar_left_running_ends_the_job_and_its_job_is_deleted() -> None:
    world = World.create()
    world.spec = models.parse_spec(samples.spec(artifacts={"enabled": False}))
    life = world.life()
    job_id = await released(world, life)
    only_sidecars_left(world, job_id)
    await life.supervise()
    [call] = world.cp.accepted_for(job_id)
    assert call.succeeded
    assert call.params["executionDetails"]["summary"] == "built"
    assert world.job(job_id) is None  # nothing else would stop the sidecar


@pytest.mark.parametrize(("push", "succeeded"), [(0, True), (1, False)])
async def test_with_outputs_to_upload_the_pod_is_stopped_and_the_upload_decides(
    world: World, push: int, succeeded: bool
) -> None:
    """The push sidecar uploads only when the kubelet stops it, after every regular container
    exited: a success reported while the classic sidecar runs would have no outputs. The
    operator suspends the Job (the pod is deleted gracefully, no other starts), records the
    push verdict of the pod being deleted, and reports by it once the pod is gone."""
    life = world.life()
    job_id = await released(world, life)
    pod = only_sidecars_left(world, job_id)
    await life.supervise()
    assert world.cp.accepted == []
    job = world.job(job_id)
    assert job is not None
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["annotations"][names.ANNOTATION_SIDECARS_STOPPED] == pod
    await life.supervise()  # the upload is pending: nothing is reported, nothing repeated
    assert world.cp.accepted == []
    # The Job controller deletes the pod; the kubelet stops istio-proxy, then push uploads.
    report = '{"failure": {"type": "PermissionError", "message": "s3:PutObject denied"}}'
    stopping = world.kube.external_patch(
        "pods",
        NAMESPACE,
        pod,
        {
            "metadata": {"deletionTimestamp": timestamps.rfc3339(timestamps.now())},
            "status": {
                "initContainerStatuses": [
                    {"name": c["name"], "state": {"terminated": {"exitCode": 0}}}
                    for c in job["spec"]["template"]["spec"]["initContainers"]
                    if c["name"] != names.PUSH_CONTAINER
                ]
                + [
                    {
                        "name": names.PUSH_CONTAINER,
                        "state": {
                            "terminated": {"exitCode": push, "message": report if push else ""}
                        },
                    }
                ]
            },
        },
    )
    await workerloop.pod_changed(life.runtime, "MODIFIED", stopping)
    world.kube.external_delete("pods", NAMESPACE, pod)
    await workerloop.pod_changed(life.runtime, "DELETED", stopping)
    await life.supervise()
    [call] = world.cp.accepted_for(job_id)
    assert call.succeeded is succeeded
    if succeeded:
        assert call.params["executionDetails"]["summary"] == "built"
    else:
        assert call.failure_type == "PermissionError"
    assert world.job(job_id) is None
