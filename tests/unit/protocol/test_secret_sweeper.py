"""secretsweeper.SecretSweeper: no cpworker Secret outlives its Job, or the job's end.

The operator may not list Secrets, so the sweeper works from the Job index (Secrets are named
like their Jobs). FakeKube's garbage collector only runs when a test calls it, which is the
"GC lags" of a busy cluster.
"""

from __future__ import annotations

import pytest

from cpworker import kube, names
from cpworker.kube import Body
from tests.unit.protocol.world import NAMESPACE, Crash, Life, World, crash_at, job_name


async def deleted_behind_gc(world: World) -> tuple[Life, str, Body]:
    """A running Job someone deleted; the garbage collector has not run (FakeKube's runs only
    when called): (the operator's life, the job id, the Job as its DELETED event carries it)."""
    life = world.life()
    job_id = await world.dispatched(life)
    body = world.job(job_id)
    assert body is not None
    world.kube.external_delete("jobs", NAMESPACE, job_name(job_id))
    return life, job_id, body


async def test_a_crash_between_the_record_and_the_secrets_deletion_leaves_no_secret(
    world: World,
) -> None:
    """Before: the Secret (credentials) stayed until the Job's TTL deleted the Job (1 h)."""
    life = world.life(hook=crash_at("after-record"))
    job_id = await world.dispatched(life)
    world.succeed(job_id)
    with pytest.raises(Crash):
        await life.supervise()
    assert world.annotations(job_id)[names.ANNOTATION_PHASE] == "reported"
    assert world.secret(job_id) is not None  # what the crash left

    restarted = world.life()
    await restarted.supervise()  # a reported Job is not reported again...
    assert world.secret(job_id) is not None
    await restarted.runtime.sweeper.sweep(world.index())  # ...but its Secret goes
    assert world.secret(job_id) is None
    deletes = [r for r in world.kube.writes_to("secrets") if r.method == "DELETE"]
    await restarted.runtime.sweeper.sweep(world.index())  # once per life, not every round
    assert [r for r in world.kube.writes_to("secrets") if r.method == "DELETE"] == deletes


async def test_a_secret_the_reporter_deleted_is_not_deleted_again_by_the_sweeper(
    world: World,
) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    world.succeed(job_id)
    await life.supervise()
    assert world.annotations(job_id)[names.ANNOTATION_PHASE] == "reported"
    assert world.secret(job_id) is None
    deletes = [r for r in world.kube.writes_to("secrets") if r.method == "DELETE"]
    assert len(deletes) == 1
    await life.runtime.sweeper.sweep(world.index())
    assert [r for r in world.kube.writes_to("secrets") if r.method == "DELETE"] == deletes


async def test_a_job_deleted_while_gc_lags_takes_its_secret_along(world: World) -> None:
    life, job_id, body = await deleted_behind_gc(world)
    assert world.secret(job_id) is not None  # the garbage collector has not run
    await life.runtime.sweeper.job_gone(body)
    assert world.secret(job_id) is None


async def test_a_secret_orphaned_by_an_orphan_delete_goes_too(world: World) -> None:
    """`kubectl delete job --cascade=orphan` (or a client deleting a Job without a
    propagationPolicy) removes the Secret's owner reference: GC never deletes it."""
    life, job_id, body = await deleted_behind_gc(world)
    world.kube.external_patch(
        "secrets", NAMESPACE, job_name(job_id), {"metadata": {"ownerReferences": None}}
    )
    world.kube.collect_garbage()
    assert world.secret(job_id) is not None  # nothing owns it: GC leaves it alone
    await life.runtime.sweeper.job_gone(body)
    assert world.secret(job_id) is None


async def test_a_secret_a_newer_job_of_the_same_name_owns_stays(world: World) -> None:
    life, job_id, old = await deleted_behind_gc(world)
    name = job_name(job_id)
    newer = world.kube.external_create(
        "jobs", {**old, "metadata": {**old["metadata"], "uid": "", "resourceVersion": ""}}
    )
    reference = names.controller_reference("batch/v1", "Job", name, newer["metadata"]["uid"])
    world.kube.external_patch(
        "secrets", NAMESPACE, name, {"metadata": {"ownerReferences": [reference]}}
    )
    await life.runtime.sweeper.job_gone(old)  # the old Job's late DELETED event
    assert world.secret(job_id) is not None


async def test_a_sweep_that_cannot_reach_the_api_is_retried_next_round(world: World) -> None:
    life, job_id, body = await deleted_behind_gc(world)

    def unavailable() -> None:
        raise kube._error("GET", "/api/v1/namespaces/ci/secrets/x", 503, b"{}")

    world.kube.intercept("GET", "secrets", unavailable)
    await life.runtime.sweeper.job_gone(body)
    assert world.secret(job_id) is not None
    await life.runtime.sweeper.sweep(world.index())
    assert world.secret(job_id) is None


async def test_a_secret_changed_since_it_was_read_is_looked_at_again(world: World) -> None:
    life, job_id, body = await deleted_behind_gc(world)
    world.kube.intercept(
        "DELETE",
        "secrets",
        lambda: world.kube.external_patch(
            "secrets", NAMESPACE, job_name(job_id), {"metadata": {"labels": {"x": "y"}}}
        ),
    )
    await life.runtime.sweeper.job_gone(body)  # Conflict: someone wrote it in between
    assert world.secret(job_id) is not None
    await life.runtime.sweeper.sweep(world.index())
    assert world.secret(job_id) is None
