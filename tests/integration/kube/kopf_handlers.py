"""A tiny kopf operator used to prove the stand-in carries kopf (not a test module).

Everything it does is observable through the API: status patches on Widgets, ConfigMaps it
creates, Events it posts.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf
import kubernetes

GROUP, VERSION, PLURAL = "test.io", "v1", "widgets"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = "test.io/kopf-finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="test.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="test.io")
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 30


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # The kubernetes client reads $KUBECONFIG once, at import; kopf's reads it now.
    return kopf.login_with_kubeconfig(**kwargs)


def _core() -> Any:
    load: Any = kubernetes.config.new_client_from_config
    return kubernetes.client.CoreV1Api(load(config_file=os.environ["KUBECONFIG"]))


def _configmap(namespace: str | None, name: str, data: dict[str, str]) -> None:
    body = {"metadata": {"name": name}, "data": data}
    try:
        _core().create_namespaced_config_map(namespace, body)
    except kubernetes.client.ApiException as exc:
        if exc.status != 409:
            raise


@kopf.on.create(GROUP, VERSION, PLURAL)
def created(spec: Any, patch: kopf.Patch, **_: Any) -> None:
    patch.status["created"] = spec.get("size")


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec.size")
def resized(new: Any, patch: kopf.Patch, **_: Any) -> None:
    patch.status["updated"] = new


@kopf.on.delete(GROUP, VERSION, PLURAL)
def deleted(name: str, namespace: str | None, **_: Any) -> None:
    _configmap(namespace, f"deleted-{name}", {"by": "kopf"})


@kopf.timer(GROUP, VERSION, PLURAL, interval=0.3)
def tick(status: Any, patch: kopf.Patch, **_: Any) -> None:
    patch.status["ticks"] = int(status.get("ticks", 0)) + 1


@kopf.daemon(GROUP, VERSION, PLURAL)
async def watchful(name: str, namespace: str | None, stopped: kopf.DaemonStopped, **_: Any) -> None:
    _configmap(namespace, f"daemon-{name}", {"started": "yes"})
    await stopped.wait()


@kopf.index("batch", "v1", "jobs", labels={"app": "demo"})
def demo_jobs(name: str, status: Any, **_: Any) -> dict[str, int]:
    return {name: int(status.get("succeeded") or 0)}


@kopf.on.event("batch", "v1", "jobs", labels={"app": "demo"})
def job_seen(body: Any, name: str, namespace: str | None, status: Any, **kwargs: Any) -> None:
    demo_jobs: kopf.Index[str, int] = kwargs["demo_jobs"]
    finished = any(
        c.get("type") == "Complete" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    if finished and list(demo_jobs.get(name, [])) == [1]:
        kopf.info(body, reason="Seen", message=f"job {name} completed")
        _configmap(namespace, f"seen-{name}", {"job": name})
