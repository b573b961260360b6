"""What a pod's status says, given its containers' states, as the kubelet computes it (pure).

The phase follows `getPhase` in `pkg/kubelet/kubelet_pods.go`: native sidecars (init
containers with `restartPolicy: Always`) count as *running* while they run but their exit
codes never count; the pod is Running while any container (sidecar included) runs, and
Succeeded/Failed only once every regular container and every sidecar has stopped — Succeeded
when all regular containers exited 0.
"""

from __future__ import annotations

import uuid
from typing import Any

from cpworker.sandbox.kube.store import now_rfc3339

Obj = dict[str, Any]


def is_sidecar(container: Obj) -> bool:
    """A native sidecar: an init container with restartPolicy Always (1.29+)."""
    return container.get("restartPolicy") == "Always"


def condition(kind: str, status: str, reason: str = "", message: str = "") -> Obj:
    stamp = now_rfc3339()
    found: Obj = {
        "type": kind,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": stamp,
    }
    if reason:
        found["reason"] = reason
    if message:
        found["message"] = message
    return found


def container_status(container: Obj, state: Obj, *, ready: bool = False) -> Obj:
    return {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "ready": ready,
        "restartCount": 0,
        "started": "running" in state,
        "state": state,
    }


def terminated(code: int, message: str, started: str, *, reason: str = "") -> Obj:
    state: Obj = {
        "exitCode": code,
        "reason": reason or ("Completed" if code == 0 else "Error"),
        "startedAt": started,
        "finishedAt": now_rfc3339(),
        "containerID": f"sandbox://{uuid.uuid4().hex}",
    }
    if message:
        state["message"] = message
    return {"terminated": state}


def phase(pod: Obj, states: dict[str, Obj], *, terminal: bool = False) -> str:  # noqa: PLR0911,PLR0912 - getPhase, case by case
    """getPhase over container name -> state ({"running": ...} / {"terminated": ...} /
    {"waiting": ...}); `terminal`: the kubelet is done with the pod (it was killed)."""
    spec = pod["spec"]
    pending_init = failed_init = 0
    running = waiting = stopped = succeeded = unknown = 0
    for container in spec.get("initContainers") or []:
        state = states.get(container["name"])
        if is_sidecar(container):
            if state is None:
                unknown += 1
            elif "running" in state:
                running += 1
            elif "waiting" in state:
                pending_init += 1
                waiting += 1
            continue
        if state is None or "running" in state or "waiting" in state:
            pending_init += 1
        elif state["terminated"]["exitCode"] != 0:
            failed_init += 1
    for container in spec["containers"]:
        state = states.get(container["name"])
        if state is None:
            unknown += 1
        elif "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            succeeded += state["terminated"]["exitCode"] == 0
        else:
            waiting += 1
    restart = spec.get("restartPolicy", "Always")
    regular_started = any(
        "waiting" not in (states.get(c["name"]) or {"waiting": {}}) for c in spec["containers"]
    )
    if failed_init and restart == "Never":
        return "Failed"
    if (pending_init and not regular_started) or waiting:
        return "Pending"
    if running and not unknown:
        return "Running"
    if not running and stopped and not unknown:
        if terminal:
            return "Succeeded" if stopped == succeeded else "Failed"
        if restart == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if restart == "Never" else "Running"
    return "Pending"


def conditions(pod: Obj, states: dict[str, Obj], pod_phase: str, kept: list[Obj]) -> list[Obj]:
    """Kubelet-owned conditions (`pkg/kubelet/status/generate.go`), after the ones it does
    not own (DisruptionTarget) that `kept` carries over."""
    spec = pod["spec"]
    init_done = all(
        "terminated" in (states.get(c["name"]) or {})
        or (is_sidecar(c) and "running" in (states.get(c["name"]) or {}))
        for c in spec.get("initContainers") or []
    )
    terminal = pod_phase in {"Succeeded", "Failed"}
    all_running = all(
        "running" in (states.get(c["name"]) or {})
        for c in [*spec["containers"], *filter(is_sidecar, spec.get("initContainers") or [])]
    )
    if terminal:
        ready = condition("ContainersReady", "False", "PodCompleted")
        pod_ready = condition("Ready", "False", "PodCompleted")
    elif all_running:
        ready, pod_ready = condition("ContainersReady", "True"), condition("Ready", "True")
    else:
        not_ready = [
            c["name"] for c in spec["containers"] if "running" not in (states.get(c["name"]) or {})
        ]
        message = f"containers with unready status: [{' '.join(not_ready)}]"
        ready = condition("ContainersReady", "False", "ContainersNotReady", message)
        pod_ready = condition("Ready", "False", "ContainersNotReady", message)
    initialized = (
        condition("Initialized", "True", "PodCompleted" if terminal else "")
        if init_done or terminal
        else condition("Initialized", "False", "ContainersNotInitialized")
    )
    return [
        *kept,
        condition("PodReadyToStartContainers", "False" if terminal else "True"),
        initialized,
        pod_ready,
        ready,
        condition("PodScheduled", "True"),
    ]
