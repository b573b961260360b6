"""Termination messages as a real kubelet reports them (pure).

Two cuts, in two places of the kubelet, and they keep opposite ends:
- the container runtime manager reads the *last* 4096 bytes of the termination message file
  (`pkg/kubelet/kuberuntime/kuberuntime_container.go` getTerminationMessage, `tail.ReadAtMost`
  with `MaxContainerTerminationMessageLength`); with `FallbackToLogsOnError`, an empty file
  and a non-zero exit code, the last 80 log lines, at most their last 2048 bytes
  (readLastStringFromContainerLogs, `MaxContainerTerminationMessageLogLines/LogLength`);
- the status manager then keeps the *first* 12 KiB divided by the number of containers, init
  (and ephemeral) containers included, of every terminated state's message
  (`pkg/kubelet/status/status_manager.go` normalizeStatus, `MaxPodTerminationMessageLogLength`).
Go slices bytes; its JSON encoder then replaces a cut UTF-8 sequence with U+FFFD, as
`errors="replace"` does here.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]
FILE_LIMIT = 4096  # kubecontainer.MaxContainerTerminationMessageLength
LOG_LINES = 80  # kubecontainer.MaxContainerTerminationMessageLogLines
LOG_LIMIT = 2048  # kubecontainer.MaxContainerTerminationMessageLogLength
POD_LIMIT = 12 * 1024  # kubecontainer.MaxPodTerminationMessageLogLength


def from_file(content: bytes) -> str:
    """What the kubelet keeps of a termination message file: its last 4096 bytes."""
    return content[-FILE_LIMIT:].decode(errors="replace")


def from_log(log: bytes) -> str:
    """The FallbackToLogsOnError message: the last 80 lines, at most their last 2048 bytes."""
    lines = log.splitlines(keepends=True)[-LOG_LINES:]
    return b"".join(lines)[-LOG_LIMIT:].decode(errors="replace")


def message(container: Obj, exit_code: int, file_content: bytes | None, log: bytes) -> str:
    """The container's terminated.message, before the status manager's per-pod cut."""
    text = from_file(file_content) if file_content else ""
    fallback = container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
    if not text and fallback and exit_code != 0:
        return from_log(log)
    return text


def per_container_budget(pod: Obj) -> int:
    spec = pod.get("spec") or {}
    count = sum(
        len(spec.get(group) or [])
        for group in ("containers", "initContainers", "ephemeralContainers")
    )
    return POD_LIMIT // count if count else POD_LIMIT


def normalize(pod: Obj, status: Obj) -> Obj:
    """The status manager's cut of every terminated message (first bytes kept), in place."""
    budget = per_container_budget(pod)
    for group in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        for container in status.get(group) or []:
            for state_key in ("state", "lastState"):
                terminated = (container.get(state_key) or {}).get("terminated")
                if terminated and terminated.get("message"):
                    raw = str(terminated["message"]).encode()
                    if len(raw) > budget:
                        terminated["message"] = raw[:budget].decode(errors="replace")
    return status
