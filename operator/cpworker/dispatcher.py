"""Kubernetes side of the claim protocol: the suspended Job, its owned Secret, release.

The order (docs/architecture.md) is: create Job `cpw-<id>` suspended with phase `claiming`
and the nonce -> create the Secret owned by that Job -> (claimer acknowledges) -> release
(`suspend: false`, phase `running`). A suspended Job starts no pod, so the Secret is always
there before the pod, and the Job is the durable record that a claim was attempted: a crash
anywhere leaves a labelled Job whose phase says where it stopped.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
from typing import Any

from cpworker import manifests, names
from cpworker.kube import AlreadyExistsError, Body, ConflictError, KubeClient, NotFoundError

# Every nonce this cluster tried to claim a job with (see claimer.py for why).
ANNOTATION_NONCE_CANDIDATES = f"{names.GROUP}/nonce-candidates"

log = logging.getLogger(__name__)


def annotations_of(body: Body) -> dict[str, str]:
    return dict((body.get("metadata") or {}).get("annotations") or {})


def phase_of(body: Body) -> str:
    return annotations_of(body).get(names.ANNOTATION_PHASE, "")


def as_claiming(job_manifest: Body, nonce: str) -> Body:
    """The manifest forced into the claiming state (whatever the builder produced)."""
    manifest = copy.deepcopy(job_manifest)
    metadata = manifest.setdefault("metadata", {})
    annotations = metadata.setdefault("annotations", {})
    annotations[names.ANNOTATION_PHASE] = names.Phase.CLAIMING.value
    annotations[names.ANNOTATION_NONCE] = nonce
    manifest.setdefault("spec", {})["suspend"] = True
    return manifest


async def create_claiming_job(
    kube: KubeClient, namespace: str, job_manifest: Body, nonce: str
) -> tuple[Body, bool]:
    """Create the suspended Job; returns (the Job, whether we created it).

    `AlreadyExists` means this job was dispatched before (by us in an earlier life or by
    another replica): the existing Job is returned untouched; the claimer decides.
    """
    manifest = as_claiming(job_manifest, nonce)
    name = manifest["metadata"]["name"]
    try:
        return await kube.create_job(namespace, manifest), True
    except AlreadyExistsError:
        return await kube.get_job(namespace, name), False


def owner_reference(job: Body) -> dict[str, Any]:
    """An ownerReference to the Job: the Secret is garbage-collected with it."""
    metadata = job["metadata"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": metadata["name"],
        "uid": metadata["uid"],
        "blockOwnerDeletion": True,
    }


async def ensure_secret(kube: KubeClient, namespace: str, secret_manifest: Body, job: Body) -> None:
    """Create the Job's Secret (owned by the Job), or refresh its data if it exists."""
    manifest = copy.deepcopy(secret_manifest)
    manifest.setdefault("metadata", {})["ownerReferences"] = [owner_reference(job)]
    name = manifest["metadata"]["name"]
    try:
        await kube.create_secret(namespace, manifest)
    except AlreadyExistsError:
        patch: Body = {"metadata": {"annotations": manifest["metadata"].get("annotations", {})}}
        for key in ("data", "stringData"):
            if key in manifest:
                patch[key] = manifest[key]
        await kube.patch_secret(namespace, name, patch)


async def release(kube: KubeClient, namespace: str, name: str) -> Body:
    """Let the acknowledged Job run: `suspend: false`, phase `running`, release time."""
    return await kube.patch_job(namespace, name, manifests.release_patch(dt.datetime.now(dt.UTC)))


async def abandon(kube: KubeClient, namespace: str, name: str) -> None:
    """Delete a Job that must not run (lost race, job already ended); its Secret goes by GC."""
    await kube.delete_job(namespace, name)
    # Delete the Secret too: GC would, but a stand-in or a slow GC must not keep credentials.
    await kube.delete_secret(namespace, name)


async def abandon_unless_contested(
    kube: KubeClient, namespace: str, name: str, nonces: set[str]
) -> bool:
    """Delete a claiming Job whose claim failed, unless someone else is claiming it too.

    Another replica that found this Job (AlreadyExists) records its nonce as a candidate
    *before* acknowledging. So a candidate that is not ours means the Job may already be
    theirs: leave it to recovery, which re-acknowledges every candidate. The delete is
    conditional on the resourceVersion we read, closing the window between read and delete.
    """
    try:
        body = await kube.get_job(namespace, name)
    except NotFoundError:
        return True
    annotations = annotations_of(body)
    recorded = {n for n in annotations.get(ANNOTATION_NONCE_CANDIDATES, "").split(",") if n}
    recorded.add(annotations.get(names.ANNOTATION_NONCE, ""))
    recorded.discard("")
    if recorded - nonces:
        return False
    try:
        await kube.delete_job(
            namespace, name, resource_version=str(body["metadata"].get("resourceVersion") or "")
        )
    except ConflictError:
        return False
    await kube.delete_secret(namespace, name)
    return True


async def job_exists(kube: KubeClient, namespace: str, name: str) -> Body | None:
    try:
        return await kube.get_job(namespace, name)
    except NotFoundError:
        return None
