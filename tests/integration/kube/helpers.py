"""Small helpers shared by the stand-in's tests."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
from kubernetes.client import ApiException

from cpworker.sandbox.kube import KubeStandIn
from cpworker.sandbox.kube.pytest_plugin import FAST_RUNNER

new_client: Any = kubernetes.config.new_client_from_config  # untyped package, one typed door


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    """Poll until `check` answers something truthy (the deadline only guards a hang);
    404s count as 'not yet'."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
        except ApiException as exc:
            if exc.status != 404:
                raise
            result = None
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def is_gone(read: Callable[[], Any]) -> bool:
    try:
        read()
    except ApiException as exc:
        return bool(exc.status == 404)
    return False


@contextlib.contextmanager
def custom_kube(tmp_path: Path, *, runner: dict[str, Any] | None = None, **options: Any) -> Any:
    """A stand-in with the fast test timings changed by `runner` and KubeStandIn `options`;
    yields (stand-in, kubernetes ApiClient)."""
    config = dataclasses.replace(FAST_RUNNER, **(runner or {}))
    with KubeStandIn(runner_config=config, bookmark_interval=1.0, **options) as kube:
        path = kube.write_kubeconfig(tmp_path / "custom-kubeconfig")
        client: Any = new_client(str(path))
        try:
            yield kube, client
        finally:
            client.close()


def job_body(name: str, annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    """A Job of one `main` container; `pod=` merges into the pod spec."""
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [{"name": "main", "image": "busybox:1"}],
    }
    pod_spec.update(spec.pop("pod", {}))
    return {
        "metadata": {"name": name},
        "spec": {
            "template": {"metadata": {"annotations": annotations or {}}, "spec": pod_spec},
            **spec,
        },
    }


def conditions_of(job: Any) -> dict[str, str]:
    return {c.type: c.status for c in ((job.status and job.status.conditions) or [])}
