"""A kopf operator shaped like cpworker's Job tracking, for the fault and watch-gap tests (not a
test module): a kopf index of labelled Jobs and an `on.event` handler on them.

Observable through the API: a DELETED event for Job X creates ConfigMap `deleted-X`; a timer
writes the index's keys into the `data.indexed` of ConfigMaps labelled `role=report`.
"""

from __future__ import annotations

import os
from typing import Any

import kopf
import kubernetes

LABELS = {"app": "tracked"}


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = "test.io/kopf-finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="test.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="test.io")
    settings.watching.server_timeout = 60
    # short retries of failed API calls, so that injected 5xx cost the tests little time
    settings.networking.error_backoffs = [0.1] * 20


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    return kopf.login_with_kubeconfig(**kwargs)


@kopf.index("batch", "v1", "jobs", labels=LABELS)
def tracked_jobs(name: str, **_: Any) -> dict[str, bool]:
    return {name: True}


@kopf.on.event("batch", "v1", "jobs", labels=LABELS)
def job_event(type: str, name: str, namespace: str | None, **_: Any) -> None:  # noqa: A002 - kopf's name
    if type != "DELETED":
        return
    load: Any = kubernetes.config.new_client_from_config
    core: Any = kubernetes.client.CoreV1Api(load(config_file=os.environ["KUBECONFIG"]))
    try:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": f"deleted-{name}"}})
    except kubernetes.client.ApiException as exc:
        if exc.status != 409:
            raise


@kopf.timer("", "v1", "configmaps", labels={"role": "report"}, interval=0.2)
def report(patch: kopf.Patch, **kwargs: Any) -> None:
    index: kopf.Index[str, bool] = kwargs["tracked_jobs"]
    patch["data"] = {"indexed": ",".join(sorted(index))}
