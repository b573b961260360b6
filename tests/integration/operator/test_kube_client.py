"""cpworker.kube against the Kubernetes stand-in: aiohttp over loopback HTTPS, a real token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cpworker import kube as k8s
from cpworker import kubeconn

NAMESPACE = "default"


def job_manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "cpworker"}},
        "spec": {
            "suspend": True,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "example.com/x:1"}],
                }
            },
        },
    }


@pytest.fixture
async def client(kubeconfig: Path) -> AsyncIterator[k8s.KubeClient]:
    client = k8s.KubeClient(kubeconn.load(str(kubeconfig)))
    yield client
    await client.close()


async def test_job_lifecycle_and_error_mapping(client: k8s.KubeClient) -> None:
    created = await client.create_job(NAMESPACE, job_manifest("cpw-a"))
    assert created["metadata"]["uid"]
    with pytest.raises(k8s.AlreadyExistsError):
        await client.create_job(NAMESPACE, job_manifest("cpw-a"))
    patched = await client.patch_job(
        NAMESPACE, "cpw-a", {"metadata": {"annotations": {"cpworker.io/phase": "running"}}}
    )
    assert patched["metadata"]["annotations"]["cpworker.io/phase"] == "running"
    listed = await client.list_jobs(NAMESPACE, "app.kubernetes.io/managed-by=cpworker")
    assert [j["metadata"]["name"] for j in listed] == ["cpw-a"]
    # A conditional delete with a stale resourceVersion is refused.
    with pytest.raises(k8s.ConflictError):
        await client.delete_job(
            NAMESPACE, "cpw-a", resource_version=created["metadata"]["resourceVersion"]
        )
    await client.delete_job(NAMESPACE, "cpw-a")
    await client.delete_job(NAMESPACE, "cpw-a")  # gone is fine
    with pytest.raises(k8s.NotFoundError):
        await client.get_job(NAMESPACE, "cpw-a")


async def test_secret_owned_by_a_job(client: k8s.KubeClient) -> None:
    job = await client.create_job(NAMESPACE, job_manifest("cpw-b"))
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "cpw-b",
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": "cpw-b",
                    "uid": job["metadata"]["uid"],
                }
            ],
        },
        "stringData": {"credentials": "[default]\n"},
    }
    await client.create_secret(NAMESPACE, secret)
    with pytest.raises(k8s.AlreadyExistsError):
        await client.create_secret(NAMESPACE, secret)
    await client.patch_secret(NAMESPACE, "cpw-b", {"stringData": {"credentials": "new"}})
    stored = await client.get_secret(NAMESPACE, "cpw-b")
    assert stored["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    await client.delete_secret(NAMESPACE, "cpw-b")
    await client.delete_secret(NAMESPACE, "cpw-b")


async def test_events_and_worker_status(client: k8s.KubeClient) -> None:
    worker = await client.request(
        "POST",
        f"/apis/cpworker.io/v1alpha1/namespaces/{NAMESPACE}/customactionworkers",
        {
            "apiVersion": "cpworker.io/v1alpha1",
            "kind": "CustomActionWorker",
            "metadata": {"name": "w"},
            "spec": {
                "actionTypeId": {
                    "category": "Build",
                    "owner": "Custom",
                    "provider": "Acme",
                    "version": "1",
                },
                "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}},
            },
        },
    )
    await client.patch_worker_status(NAMESPACE, "w", {"inFlight": 3})
    assert (await client.get_worker(NAMESPACE, "w"))["status"]["inFlight"] == 3
    await client.post_event(worker, "JobDispatched", "job x dispatched")
    events = (await client.request("GET", f"/api/v1/namespaces/{NAMESPACE}/events"))["items"]
    assert [(e["reason"], e["involvedObject"]["name"]) for e in events] == [("JobDispatched", "w")]
