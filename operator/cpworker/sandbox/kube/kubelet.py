"""A simulated kubelet (kwok-like) — clearly a simulation: unless a pod asks for local-exec
mode, no process runs. A pod goes Pending -> Running -> Succeeded/Failed with container
statuses, as scripted by its annotations (`sandbox.cpworker.io/...`):

  duration              how long containers run (`2s`, `500ms`; default RunnerConfig)
  exit-code             exit code of every container (`exit-code.<container>` for one)
  termination-message   the termination message (`termination-message.<container>`)
  fail-reason           ErrImagePull | ImagePullBackOff (container waiting, pod Pending)
                        | Unschedulable (PodScheduled False)
  log                   text served by the pods/log endpoint
  exec: local           run the commands locally instead (see localexec.py)

Pods owned by a Job are run by the job controller (jobrunner.py); bare pods are run here, and
with restartPolicy Always they keep running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any

from cpworker.sandbox.kube import localexec
from cpworker.sandbox.kube.api import Api
from cpworker.sandbox.kube.errors import ApiError
from cpworker.sandbox.kube.store import Change, StorageKey, now_rfc3339

logger = logging.getLogger(__name__)
Obj = dict[str, Any]
PREFIX = "sandbox.cpworker.io/"
PODS: StorageKey = ("", "pods")
SECRETS: StorageKey = ("", "secrets")


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    default_duration: float = 1.0  # seconds an unscripted container runs
    start_delay: float = 0.05  # Pending -> Running
    retry_delay: float = 0.1  # between failed attempts (the real controller backs off 10 s+)
    create_retry: float = 0.5  # re-check a missing service account or Secret volume
    local_exec: bool = False  # run every pod's commands locally (see localexec.py)


def parse_duration(text: str | None, default: float) -> float:
    if not text:
        return default
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*", text)
    if not match:
        return default
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value / 1000 if unit == "ms" else value * 60 if unit == "m" else value


def condition(kind: str, status: str, reason: str, message: str) -> Obj:
    stamp = now_rfc3339()
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastProbeTime": stamp,
        "lastTransitionTime": stamp,
    }


class Kubelet:
    def __init__(self, api: Api, config: RunnerConfig) -> None:
        self.api = api
        self.config = config
        self._bare: dict[str, asyncio.Task[bool | None]] = {}
        self._closing = False
        api.store.subscribe(self._on_change)

    async def close(self) -> None:
        self._closing = True
        tasks = list(self._bare.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _on_change(self, key: StorageKey, change: Change) -> None:
        if key != PODS or self._closing:
            return
        meta = change.obj["metadata"]
        uid = meta["uid"]
        if change.type == "DELETED":
            self.api.pod_logs.pop((meta["namespace"], meta["name"]), None)
            task = self._bare.pop(uid, None)
            if task:
                task.cancel()
        elif change.type == "ADDED" and not job_owned(change.obj):
            task = asyncio.get_running_loop().create_task(
                self.run_pod(meta["namespace"], meta["name"], uid)
            )
            self._bare[uid] = task
            task.add_done_callback(lambda _: self._bare.pop(uid, None))

    def _get(
        self, key: StorageKey, namespace: str, name: str, uid: str | None = None
    ) -> Obj | None:
        obj = self.api.store.get(key, namespace, name)
        if obj is None or (uid and obj["metadata"]["uid"] != uid):
            return None
        return obj

    async def run_pod(self, namespace: str, name: str, uid: str) -> bool | None:  # noqa: PLR0915 - the pod lifecycle, top to bottom
        """Simulate the pod; answers True (succeeded), False (failed), None (never ends)."""
        pod = self._get(PODS, namespace, name, uid)
        if pod is None:
            return None
        annotations = pod["metadata"].get("annotations") or {}
        containers = pod["spec"]["containers"]
        await asyncio.sleep(self.config.start_delay)
        fail_reason = annotations.get(PREFIX + "fail-reason", "")
        if fail_reason == "Unschedulable":
            self._set_pod_status(
                pod,
                {
                    "phase": "Pending",
                    "qosClass": "BestEffort",
                    "conditions": [
                        condition(
                            "PodScheduled",
                            "False",
                            "Unschedulable",
                            "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 "
                            "nodes are available: 1 No preemption victims found for incoming "
                            "pod.",
                        )
                    ],
                },
            )
            await asyncio.Event().wait()
        scheduled = condition("PodScheduled", "True", "", "")
        if fail_reason in {"ErrImagePull", "ImagePullBackOff"}:
            self._set_pod_status(
                pod,
                {
                    "phase": "Pending",
                    "qosClass": "BestEffort",
                    "hostIP": "10.0.0.1",
                    "conditions": [scheduled],
                    "containerStatuses": [
                        _container(
                            c,
                            {
                                "waiting": {
                                    "reason": fail_reason,
                                    "message": (
                                        f'Back-off pulling image "{c.get("image")}"'
                                        if fail_reason == "ImagePullBackOff"
                                        else "failed to pull and unpack image "
                                        f'"{c.get("image")}": not found'
                                    ),
                                }
                            },
                        )
                        for c in containers
                    ],
                },
            )
            await asyncio.Event().wait()
        while (missing := self._missing_secret(pod)) is not None:
            self._set_pod_status(
                pod,
                {
                    "phase": "Pending",
                    "qosClass": "BestEffort",
                    "conditions": [scheduled],
                    "containerStatuses": [
                        _container(c, {"waiting": {"reason": "ContainerCreating"}})
                        for c in containers
                    ],
                },
            )
            await asyncio.sleep(self.config.create_retry)
            pod = self._get(PODS, namespace, name, uid) or pod
            del missing
        started = now_rfc3339()
        running = {"running": {"startedAt": started}}
        latest = self._set_pod_status(
            pod,
            {
                "phase": "Running",
                "qosClass": "BestEffort",
                "hostIP": "10.0.0.1",
                "podIP": "10.244.0.10",
                "startTime": started,
                "conditions": [
                    scheduled,
                    condition("Initialized", "True", "", ""),
                    condition("ContainersReady", "True", "", ""),
                    condition("Ready", "True", "", ""),
                ],
                "initContainerStatuses": [
                    _container(
                        c,
                        {
                            "terminated": {
                                "exitCode": 0,
                                "reason": "Completed",
                                "startedAt": started,
                                "finishedAt": started,
                            }
                        },
                    )
                    for c in pod["spec"].get("initContainers") or []
                ],
                "containerStatuses": [_container(c, running, ready=True) for c in containers],
            },
        )
        if latest is None:
            return None
        restart_policy = pod["spec"].get("restartPolicy", "Always")
        if restart_policy == "Always" and not job_owned(pod):
            await asyncio.Event().wait()
        if self.config.local_exec or annotations.get(PREFIX + "exec") == "local":
            init, main = await localexec.run_pod(pod, self._lookup(namespace))
            self.api.pod_logs[(namespace, name)] = {o.name: o.log for o in init + main}
            outcomes = {o.name: (o.exit_code, o.message) for o in init + main}
            failed_init = next((o for o in init if o.exit_code != 0), None)
        else:
            await asyncio.sleep(
                parse_duration(annotations.get(PREFIX + "duration"), self.config.default_duration)
            )
            outcomes = {c["name"]: _scripted(annotations, c["name"]) for c in containers}
            failed_init = None
        finished = now_rfc3339()
        statuses, all_zero = [], failed_init is None
        for container in containers:
            if failed_init is not None:
                statuses.append(_container(container, {"waiting": {"reason": "PodInitializing"}}))
                continue
            code, message = outcomes[container["name"]]
            terminated: Obj = {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": started,
                "finishedAt": finished,
                "containerID": f"sandbox://{uuid.uuid4().hex}",
            }
            if message:
                terminated["message"] = message
            all_zero = all_zero and code == 0
            statuses.append(_container(container, {"terminated": terminated}))
        init_statuses = [
            _container(
                c,
                {
                    "terminated": {
                        "exitCode": outcomes.get(c["name"], (0, ""))[0],
                        "reason": "Completed"
                        if outcomes.get(c["name"], (0, ""))[0] == 0
                        else "Error",
                        "startedAt": started,
                        "finishedAt": finished,
                        **(
                            {"message": outcomes[c["name"]][1]}
                            if outcomes.get(c["name"], (0, ""))[1]
                            else {}
                        ),
                    }
                },
            )
            for c in pod["spec"].get("initContainers") or []
        ]
        current = self._get(PODS, namespace, name, uid)
        if current is None:
            return None
        status = dict(current.get("status") or {})
        status.update(
            {
                "phase": "Succeeded" if all_zero else "Failed",
                "conditions": [
                    scheduled,
                    condition("Initialized", "True", "", ""),
                    condition("ContainersReady", "False", "PodCompleted", ""),
                    condition("Ready", "False", "PodCompleted", ""),
                ],
                "containerStatuses": statuses,
                "initContainerStatuses": init_statuses,
            }
        )
        self._set_pod_status(current, status)
        return all_zero

    def _lookup(self, namespace: str) -> localexec.Lookup:
        def find(plural: str, name: str) -> Obj | None:
            return self.api.store.get(("", plural), namespace, name)

        return find

    def _set_pod_status(self, pod: Obj, status: Obj) -> Obj | None:
        meta = pod["metadata"]
        current = self.api.store.get(PODS, meta["namespace"], meta["name"])
        pods = self.api.storage_type(PODS)
        if current is None or pods is None:
            return None
        try:
            return self.api.update(
                pods,
                meta["namespace"],
                meta["name"],
                {**current, "status": status},
                subresource="status",
            )
        except ApiError:
            return None

    def _missing_secret(self, pod: Obj) -> str | None:
        namespace = pod["metadata"]["namespace"]
        for volume in pod["spec"].get("volumes") or []:
            secret = volume.get("secret")
            if (
                secret
                and not secret.get("optional")
                and self._get(SECRETS, namespace, secret.get("secretName", "")) is None
            ):
                return str(secret.get("secretName"))
        return None


def _scripted(annotations: dict[str, str], container: str) -> tuple[int, str]:
    """(exit code, termination message) a container's annotations script."""
    code = int(
        annotations.get(
            f"{PREFIX}exit-code.{container}", annotations.get(PREFIX + "exit-code", "0")
        )
    )
    message = annotations.get(
        f"{PREFIX}termination-message.{container}",
        annotations.get(PREFIX + "termination-message", ""),
    )
    return code, message


def _container(container: Obj, state: Obj, *, ready: bool = False) -> Obj:
    return {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "ready": ready,
        "restartCount": 0,
        "started": "running" in state,
        "state": state,
    }


def job_owned(pod: Obj) -> bool:
    return any(
        ref.get("kind") == "Job" and ref.get("controller")
        for ref in pod["metadata"].get("ownerReferences") or []
    )
