"""The fakes behave like the real API server and CodePipeline where the protocol depends on it.

A fake that is kinder than the real service would let a protocol bug through; these pin the
behaviour the other tests rely on (see fakes.py for the upstream sources).
"""

from __future__ import annotations

import pytest

from cpworker import codepipeline, results
from cpworker.kube import AlreadyExistsError, ConflictError, KubeError, NotFoundError
from tests.unit.protocol.fakes import FakeCodePipeline, FakeKube

NS = "ci"


def job_manifest(name: str = "cpw-a", **annotations: str) -> dict[str, object]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"app": "x"}, "annotations": annotations},
        "spec": {"suspend": True, "template": {"spec": {"containers": [{"name": "c"}]}}},
        "status": {"active": 5},
    }


async def test_create_stamps_the_object_drops_its_status_and_refuses_a_taken_name() -> None:
    kube = FakeKube()
    created = await kube.create_job(NS, job_manifest())
    assert created["metadata"]["uid"]
    assert created["metadata"]["resourceVersion"]
    assert created["metadata"]["creationTimestamp"]
    assert "status" not in created
    with pytest.raises(AlreadyExistsError):
        await kube.create_job(NS, job_manifest())


async def test_answers_are_copies_as_over_the_wire() -> None:
    kube = FakeKube()
    manifest = job_manifest()
    created = await kube.create_job(NS, manifest)
    created["metadata"]["annotations"]["changed"] = "locally"
    manifest["spec"] = {}
    stored = await kube.get_job(NS, "cpw-a")
    assert "changed" not in stored["metadata"]["annotations"]
    assert stored["spec"]["suspend"] is True


async def test_merge_patch_merges_maps_and_null_deletes_a_key() -> None:
    kube = FakeKube()
    await kube.create_job(NS, job_manifest(keep="1", drop="2"))
    patched = await kube.patch_job(
        NS, "cpw-a", {"metadata": {"annotations": {"drop": None, "new": "3"}}}
    )
    assert patched["metadata"]["annotations"] == {"keep": "1", "new": "3"}


async def test_a_resource_version_in_a_patch_is_a_precondition() -> None:
    kube = FakeKube()
    created = await kube.create_job(NS, job_manifest())
    version = created["metadata"]["resourceVersion"]
    changed = await kube.patch_job(
        NS, "cpw-a", {"metadata": {"resourceVersion": version, "annotations": {"a": "1"}}}
    )
    assert changed["metadata"]["resourceVersion"] != version
    with pytest.raises(ConflictError):
        await kube.patch_job(
            NS, "cpw-a", {"metadata": {"resourceVersion": version, "annotations": {"a": "2"}}}
        )
    assert kube.store[("jobs", NS, "cpw-a")]["metadata"]["annotations"]["a"] == "1"


async def test_a_patch_that_changes_nothing_keeps_the_resource_version() -> None:
    kube = FakeKube()
    created = await kube.create_job(NS, job_manifest(a="1"))
    same = await kube.patch_job(NS, "cpw-a", {"metadata": {"annotations": {"a": "1"}}})
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_the_main_resource_cannot_change_status_and_status_cannot_change_the_rest() -> None:
    kube = FakeKube()
    await kube.create_job(NS, job_manifest())
    kube.external_patch("jobs", NS, "cpw-a", {"status": {"active": 1}})
    patched = await kube.patch_job(
        NS, "cpw-a", {"status": {"active": 9}, "spec": {"suspend": False}}
    )
    assert patched["status"] == {"active": 1}
    assert patched["spec"]["suspend"] is False


async def test_worker_status_patches_honour_their_resource_version() -> None:
    kube = FakeKube()
    kube.external_create(
        "customactionworkers",
        {"metadata": {"name": "w", "namespace": NS}, "spec": {"x": 1}, "status": {"n": 1}},
    )
    worker = await kube.get_worker(NS, "w")
    version = worker["metadata"]["resourceVersion"]
    await kube.patch_worker_status(NS, "w", {"n": 2}, resource_version=version)
    with pytest.raises(ConflictError):
        await kube.patch_worker_status(NS, "w", {"n": 3}, resource_version=version)
    stored = await kube.get_worker(NS, "w")
    assert stored["status"] == {"n": 2}
    assert stored["spec"] == {"x": 1}


async def test_delete_preconditions_missing_objects_and_what_the_client_swallows() -> None:
    kube = FakeKube()
    created = await kube.create_job(NS, job_manifest())
    kube.external_patch("jobs", NS, "cpw-a", {"metadata": {"annotations": {"b": "1"}}})
    with pytest.raises(ConflictError):
        await kube.delete_job(NS, "cpw-a", resource_version=created["metadata"]["resourceVersion"])
    assert kube.get_object("jobs", NS, "cpw-a") is not None
    await kube.delete_job(NS, "cpw-a")
    await kube.delete_job(NS, "cpw-a")  # gone is fine (the client swallows 404)
    await kube.delete_secret(NS, "cpw-a")
    with pytest.raises(NotFoundError):
        await kube.get_job(NS, "cpw-a")
    with pytest.raises(NotFoundError):
        await kube.patch_job(NS, "cpw-a", {"metadata": {"annotations": {"c": "1"}}})


async def test_invalid_label_values_annotations_and_secret_data_are_refused() -> None:
    kube = FakeKube()
    await kube.create_job(NS, job_manifest())
    with pytest.raises(KubeError) as label:
        await kube.patch_job(NS, "cpw-a", {"metadata": {"labels": {"app": "x" * 64}}})
    assert label.value.status == 422
    with pytest.raises(KubeError) as annotation:
        await kube.patch_job(NS, "cpw-a", {"metadata": {"annotations": {"n": 3}}})
    assert annotation.value.status == 400
    with pytest.raises(KubeError) as data:
        await kube.create_secret(NS, {"metadata": {"name": "s"}, "data": {"k": "not base64!"}})
    assert data.value.status == 400


async def test_a_job_template_is_immutable() -> None:
    kube = FakeKube()
    await kube.create_job(NS, job_manifest())
    with pytest.raises(KubeError) as refused:
        await kube.patch_job(NS, "cpw-a", {"spec": {"template": {"spec": {"containers": []}}}})
    assert refused.value.status == 422


async def test_pods_are_listed_by_label_selector_and_dependents_wait_for_the_gc() -> None:
    kube = FakeKube()
    job = await kube.create_job(NS, job_manifest())
    owner = [{"kind": "Job", "name": "cpw-a", "uid": job["metadata"]["uid"]}]
    for name, worker in (("p1", "w1"), ("p2", "w2")):
        kube.external_create(
            "pods",
            {
                "metadata": {
                    "name": name,
                    "namespace": NS,
                    "labels": {"cpworker.io/worker": worker},
                    "ownerReferences": owner,
                }
            },
        )
    pods = await kube.list_pods(NS, "cpworker.io/worker=w1")
    assert [p["metadata"]["name"] for p in pods] == ["p1"]
    await kube.delete_job(NS, "cpw-a")
    assert len(kube.objects("pods")) == 2
    kube.collect_garbage()
    assert kube.objects("pods") == []


async def test_every_request_is_recorded_with_its_answer() -> None:
    kube = FakeKube()
    await kube.create_job(NS, job_manifest())
    with pytest.raises(AlreadyExistsError):
        await kube.create_job(NS, job_manifest())
    await kube.get_job(NS, "cpw-a")
    assert [(r.method, r.status) for r in kube.requests] == [
        ("POST", 200),
        ("POST", 409),
        ("GET", 200),
    ]
    assert len(kube.writes) == 2


async def test_codepipeline_accepts_only_the_latest_nonce_and_answers_the_current_status() -> None:
    cp = FakeCodePipeline()
    job_id = cp.queue({"id": "j1", "accountId": "111122223333", "data": {}})
    first = cp.deliver(job_id)["nonce"]
    second = cp.deliver(job_id)["nonce"]
    with pytest.raises(codepipeline.InvalidNonceError):
        await cp.acknowledge_job(job_id, first)
    assert await cp.acknowledge_job(job_id, second) == "InProgress"
    assert await cp.acknowledge_job(job_id, second) == "InProgress"
    cp.end(job_id, "Failed")
    assert await cp.acknowledge_job(job_id, second) == "Failed"
    with pytest.raises(codepipeline.JobNotFoundError):
        await cp.acknowledge_job("unknown", second)


async def test_codepipeline_takes_one_result_per_job_and_queues_a_continuation() -> None:
    cp = FakeCodePipeline()
    job_id = cp.queue({"id": "j1", "accountId": "111122223333", "data": {"a": 1}})
    unclaimed = results.failure_result(job_id=job_id, failure_type="JobFailed", message="x")
    with pytest.raises(codepipeline.InvalidJobStateError):
        await cp.put_result(unclaimed)  # never acknowledged: not InProgress
    await cp.acknowledge_job(job_id, cp.deliver(job_id)["nonce"])
    handed_over = results.success_result(
        job_id=job_id, external_execution_id="ci/cpw-j1", continuation_token="tok"
    )
    await cp.put_result(handed_over)
    with pytest.raises(codepipeline.InvalidJobStateError):
        await cp.put_result(handed_over)
    assert cp.accepted == [handed_over]
    follow_up = cp.jobs[cp.continuations[job_id]]
    assert follow_up.data == {"a": 1, "continuationToken": "tok"}
    assert follow_up.status == "Queued"
