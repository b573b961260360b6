"""Workload controllers, simulated: a Deployment, StatefulSet or DaemonSet is reported as
rolled out (all replicas ready) as soon as its generation changes. No ReplicaSets or Pods are
made; this is what `kubectl rollout status` and Helm's `--wait` look at."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from cpworker.sandbox.kube.api import Api
from cpworker.sandbox.kube.errors import ApiError
from cpworker.sandbox.kube.store import Change, StorageKey, now_rfc3339

Obj = dict[str, Any]
WORKLOADS: frozenset[StorageKey] = frozenset(
    {("apps", "deployments"), ("apps", "statefulsets"), ("apps", "daemonsets")}
)


def rolled_out_status(plural: str, obj: Obj) -> Obj:
    generation = obj["metadata"].get("generation", 1)
    if plural == "daemonsets":
        return {
            "observedGeneration": generation,
            "currentNumberScheduled": 1,
            "desiredNumberScheduled": 1,
            "numberAvailable": 1,
            "numberReady": 1,
            "updatedNumberScheduled": 1,
            "numberMisscheduled": 0,
        }
    replicas = int((obj.get("spec") or {}).get("replicas", 1))
    status: Obj = {
        "observedGeneration": generation,
        "replicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        "updatedReplicas": replicas,
    }
    if plural == "statefulsets":
        revision = f"{obj['metadata']['name']}-{generation}"
        status.update(
            {"currentReplicas": replicas, "currentRevision": revision, "updateRevision": revision}
        )
        return status
    stamp = now_rfc3339()
    status["conditions"] = [
        {
            "type": "Available",
            "status": "True",
            "reason": "MinimumReplicasAvailable",
            "message": "Deployment has minimum availability.",
            "lastUpdateTime": stamp,
            "lastTransitionTime": stamp,
        },
        {
            "type": "Progressing",
            "status": "True",
            "reason": "NewReplicaSetAvailable",
            "message": "ReplicaSet has successfully progressed.",
            "lastUpdateTime": stamp,
            "lastTransitionTime": stamp,
        },
    ]
    return status


class WorkloadController:
    def __init__(self, api: Api) -> None:
        self.api = api
        api.store.subscribe(self._on_change)

    def _on_change(self, key: StorageKey, change: Change) -> None:
        if key not in WORKLOADS or change.type == "DELETED":
            return
        obj = change.obj
        observed = (obj.get("status") or {}).get("observedGeneration")
        if observed == obj["metadata"].get("generation") or obj["metadata"].get(
            "deletionTimestamp"
        ):
            return
        meta = obj["metadata"]
        asyncio.get_running_loop().call_soon(self._roll_out, key, meta["namespace"], meta["name"])

    def _roll_out(self, key: StorageKey, namespace: str, name: str) -> None:
        current = self.api.store.get(key, namespace, name)
        rtype = self.api.storage_type(key)
        if current is None or rtype is None:
            return
        status = rolled_out_status(key[1], current)
        with contextlib.suppress(ApiError):
            self.api.update(
                rtype, namespace, name, {**current, "status": status}, subresource="status"
            )
