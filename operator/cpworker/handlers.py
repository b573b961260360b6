"""kopf wiring only: every handler registers and delegates (workerloop, reporter, jobindex).

Handlers are registered on a registry built per operator (`build_registry`), and all state
lives in the `Runtime` passed in kopf's `memo`, so that two operators can run in one process
(tests) without sharing anything.

- Jobs and Pods: `kopf.index` + `kopf.on.event` with label filters (a pod event records a
  pod-level end, such as an eviction, on its Job). Never on.create/on.update
  on Jobs: kopf would write its annotations and finalizers onto them.
- CustomActionWorker: create/resume/update validate the spec (event + wake the loop); one
  daemon per worker runs its loop (workerloop.Worker); delete honours deletionPolicy behind
  our finalizer `cpworker.io/finalizer`. With CPWORKER_WORKER_SELECTOR the worker watch is
  selected server-side (a shard), and Job events of other shards' workers are left alone.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from cpworker import diffbase, jobindex, jsoncodec, models, names, workerloop
from cpworker.runtime import Runtime
from cpworker.settings import OperatorSettings

WORKERS = (names.GROUP, names.VERSION, names.PLURAL)
MANAGED = {names.LABEL_MANAGED_BY: names.MANAGED_BY_VALUE}
# Objects kopf processes at once per watched resource, and how long each waits for its next
# event before it gives its slot up (kopf's defaults: no limit, 5 s).
KOPF_OBJECT_WORKERS = 32
KOPF_OBJECT_IDLE_SECONDS = 0.5


def kopf_settings(settings: kopf.OperatorSettings, ours: OperatorSettings) -> None:
    """Our own finalizer and annotation prefix, quiet event posting, peering."""
    settings.persistence.finalizer = names.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=names.KOPF_ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = diffbase.WorkerDiffBaseStorage(
        prefix=names.KOPF_ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    # kopf turns handler log lines into Events; ours are posted explicitly.
    settings.posting.level = logging.WARNING
    # kopf's watch streams decode with orjson (a quarter of a burst's CPU was json.loads).
    jsoncodec.use_in_kopf()
    settings.peering.priority = ours.peering_priority
    # Server-side selection: the operator never receives (or keeps) other people's Jobs and
    # Pods, which bounds memory in busy clusters (the handlers' label filters stay as well).
    settings.watching.label_selectors["batch", "v1", "jobs"] = names.managed_selector()
    settings.watching.label_selectors["v1", "pods"] = names.managed_selector()
    if ours.worker_selector is not None:
        # A shard (docs/scaling.md): the API server sends only the workers it selects, so
        # this operator never starts a daemon for, nor writes to, another shard's workers.
        settings.watching.label_selectors[names.GROUP, names.PLURAL] = ours.worker_selector
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # kopf runs a task per object with events, unbounded by default, and its API client's
    # connection pool has no limit: at start-up, 1,000 workers' first patches ran together on
    # about 800 connections, and the process peaked at 407 MiB (`cpworker bench --quick
    # --idle-workers 1000`). Bounded, it held 64 and peaked at 165 MiB. A short idle timeout
    # frees each slot soon after its object's last event: with kopf's 5 s, 32 slots would
    # start 1,000 workers in minutes.
    settings.queueing.worker_limit = KOPF_OBJECT_WORKERS
    settings.queueing.idle_timeout = KOPF_OBJECT_IDLE_SECONDS


def build_registry() -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(id="login", registry=registry)
    def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
        """kopf talks to the API with the same kubeconfig / in-cluster identity as we do."""
        rt: Runtime = memo["runtime"]
        return rt.kube.connection.kopf_info()

    # The indexers are async although they only compute: kopf runs a sync handler in its
    # thread pool, a hand-over per watch event that cost more than the summary itself.
    @kopf.index("batch", "v1", "jobs", id="cpw_jobs", labels=MANAGED, registry=registry)
    async def cpw_jobs(body: kopf.Body, **_: Any) -> dict[tuple[str, str], jobindex.JobSummary]:
        return {jobindex.job_index_key(body): jobindex.summarize_job(body)}

    @kopf.index("", "v1", "pods", id="cpw_pods", labels=MANAGED, registry=registry)
    async def cpw_pods(body: kopf.Body, **_: Any) -> dict[tuple[str, str], jobindex.PodSummary]:
        job = jobindex.owning_job(body)
        if job is None:
            return {}
        return {(str(body.metadata.namespace), job): jobindex.summarize_pod(body)}

    @kopf.on.event("batch", "v1", "jobs", id="job_event", labels=MANAGED, registry=registry)
    async def job_event(
        type: str | None,  # noqa: A002 - kopf's name
        body: kopf.Body,
        memo: kopf.Memo,
        **indexes: Any,
    ) -> None:
        namespace, name = str(body.metadata.namespace), str(body.metadata.name)
        pods = jobindex.job_pods(indexes["cpw_pods"], namespace, name)
        await workerloop.job_changed(memo["runtime"], type, body, pods)

    @kopf.on.event("", "v1", "pods", id="pod_event", labels=MANAGED, registry=registry)
    async def pod_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:  # noqa: A002
        await workerloop.pod_changed(memo["runtime"], type, body)

    @kopf.on.resume(*WORKERS, id="validate", registry=registry)
    @kopf.on.create(*WORKERS, id="validate", registry=registry)
    @kopf.on.update(*WORKERS, id="validate", registry=registry)
    async def worker_changed(
        *,
        spec: kopf.Spec,
        namespace: str | None,
        name: str,
        body: kopf.Body,
        memo: kopf.Memo,
        **_: Any,
    ) -> None:
        rt: Runtime = memo["runtime"]
        view = workerloop.view_worker(spec, rt.settings)
        worker = rt.workers.get((namespace or "", name))
        if worker is not None:
            worker.loop.poll_now()
        if view.problem is not None:
            await rt.kube.post_event(body, "InvalidSpec", view.problem[:1024], type_="Warning")
            # Permanent: retrying cannot fix a spec; the next edit triggers this again.
            raise kopf.PermanentError(f"invalid spec: {view.problem[:500]}")
        if view.spec is not None:
            for warning in models.spec_warnings(view.spec):
                await rt.kube.post_event(body, "SpecWarning", warning[:1024], type_="Warning")

    @kopf.daemon(
        *WORKERS,
        id="poll",
        registry=registry,
        # The loop checks `stopped` at least every second: let it finish its step.
        cancellation_backoff=2.0,
        cancellation_timeout=10.0,
    )
    async def worker_daemon(
        *,
        stopped: kopf.DaemonStopped,
        spec: kopf.Spec,
        meta: kopf.Meta,
        status: kopf.Status,
        namespace: str | None,
        name: str,
        uid: str,
        memo: kopf.Memo,
        **indexes: Any,
    ) -> None:
        worker = workerloop.Worker(
            memo["runtime"],
            spec=spec,
            meta=meta,
            status=status,
            namespace=namespace or "",
            name=name,
            uid=uid,
            index_jobs=indexes["cpw_jobs"],
            index_pods=indexes["cpw_pods"],
        )
        await worker.run(stopped)

    @kopf.on.delete(*WORKERS, id="finalize", registry=registry)
    async def worker_deleted(
        *,
        spec: kopf.Spec,
        namespace: str | None,
        name: str,
        uid: str,
        body: kopf.Body,
        memo: kopf.Memo,
        **indexes: Any,
    ) -> None:
        await workerloop.drain_or_cancel(
            memo["runtime"],
            spec=spec,
            namespace=namespace or "",
            name=name,
            uid=uid,
            body=body,
            index_jobs=indexes["cpw_jobs"],
            index_pods=indexes["cpw_pods"],
        )

    @kopf.on.cleanup(id="cleanup", registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        rt: Runtime = memo["runtime"]
        await rt.stop_background()
        await rt.kube.close()
        rt.close()

    return registry
