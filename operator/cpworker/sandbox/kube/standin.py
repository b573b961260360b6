"""`KubeStandIn`: the local Kubernetes API in a daemon thread with its own event loop."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import secrets
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import yaml
from aiohttp import web

from cpworker.sandbox.kube.admission import AdmissionConfig
from cpworker.sandbox.kube.faults import KubeFaults, ResourcePattern
from cpworker.sandbox.kube.jobrunner import JobRunner, RunnerConfig
from cpworker.sandbox.kube.rbac import Identity
from cpworker.sandbox.kube.server import AuditRecord, KubeServer
from cpworker.sandbox.kube.tls import ServingCertificate
from cpworker.sandbox.kube.tls import issue as tls_issue
from cpworker.sandbox.kube.workloads import WorkloadController

T = TypeVar("T")
PROJECT_CRDS = Path(__file__).resolve().parents[4] / "crds"


class KubeStandIn:
    """A loopback Kubernetes API server for kopf, the kubernetes client, kubectl and Helm.

    >>> with KubeStandIn() as kube:
    ...     kube.write_kubeconfig(tmp / "kubeconfig")
    """

    def __init__(
        self,
        token: str | None = None,
        job_runner: bool = True,
        runner_config: RunnerConfig | None = None,
        *,
        history_size: int = 10_000,
        audit_size: int = 20_000,
        bookmark_interval: float = 5.0,
        tls: bool = True,
        admission: AdmissionConfig | None = None,
        gc_delay: float = 0.1,
        compaction_interval: float | None = None,
    ) -> None:
        """`tls=False` serves plain HTTP: fine for the Python client and kopf, but kubectl
        and Helm then send no credentials (client-go sends tokens only over TLS).
        `admission`: opt-in admission plugins (owner-reference enforcement, webhooks);
        `gc_delay`: seconds the garbage collector takes to act on a deleted owner;
        `compaction_interval` compacts the watch history every so many seconds (see
        `compact`); None never does."""
        self.token = token or secrets.token_urlsafe(24)
        self.server = KubeServer(
            self.token,
            history_size=history_size,
            audit_size=audit_size,
            bookmark_interval=bookmark_interval,
            admission=admission,
            gc_delay=gc_delay,
        )
        self.server.compactor.set_interval(compaction_interval)
        self._runner_config = runner_config or RunnerConfig()
        self._job_runner_enabled = job_runner
        self.job_runner: JobRunner | None = None
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._web_runner: web.AppRunner | None = None
        self._compaction: asyncio.Task[None] | None = None
        self.certificate: ServingCertificate | None = tls_issue() if tls else None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> KubeStandIn:
        ready: concurrent.futures.Future[str] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._serve, args=(ready,), name="kube-stand-in", daemon=True
        )
        self._thread.start()
        port = ready.result(timeout=30)
        scheme = "https" if self.certificate else "http"
        self.url = f"{scheme}://127.0.0.1:{port}"
        return self

    def _serve(self, ready: concurrent.futures.Future[str]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            port = loop.run_until_complete(self._startup())
        except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
            ready.set_exception(exc)
            loop.close()
            return
        ready.set_result(port)
        loop.run_forever()
        loop.run_until_complete(self._shutdown())
        loop.close()

    async def _startup(self) -> str:
        self._web_runner = web.AppRunner(self.server.app(), access_log=None, handle_signals=False)
        await self._web_runner.setup()
        context = self.certificate.server_context() if self.certificate else None
        site = web.TCPSite(self._web_runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        # aiohttp exposes the bound port only through the underlying asyncio server.
        server: Any = site._server
        port = str(server.sockets[0].getsockname()[1])
        self.server.address = f"127.0.0.1:{port}"
        self.server.api.bootstrap()
        self._compaction = asyncio.get_running_loop().create_task(self.server.compactor.run())
        if self._job_runner_enabled:
            self.job_runner = JobRunner(self.server.api, self._runner_config)
            WorkloadController(self.server.api)
        return port

    async def _shutdown(self) -> None:
        if self._compaction is not None:
            self._compaction.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._compaction
        self.server.stop_watches()
        if self.job_runner is not None:
            await self.job_runner.close()
        if self._web_runner is not None:
            await self._web_runner.cleanup()

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        if not self._loop.is_closed():  # a start that failed has closed it already
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop = None
        self._thread = None

    def __enter__(self) -> KubeStandIn:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- helpers for tests and the sandbox ------------------------------------------------
    def call(self, function: Callable[[], T]) -> T:
        """Run `function` on the server's loop (where all state lives) and return its result."""
        if self._loop is None:
            raise RuntimeError("the stand-in is not running")

        async def run() -> T:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    def configure_admission(self, config: AdmissionConfig) -> None:
        """Switch admission plugins on or off while serving (say, a webhook that starts
        refusing pods, then stops)."""

        def apply() -> None:
            assert self.server.api.admission is not None
            self.server.api.admission.config = config

        self.call(apply)

    def evict_pod(self, namespace: str, name: str, resource: str = "memory") -> None:
        """Evict a running pod as the kubelet does under node pressure: killed at once,
        phase Failed, reason Evicted, a DisruptionTarget condition; the pod stays."""
        if self.job_runner is None:
            raise RuntimeError("the stand-in runs no kubelet (job_runner=False)")
        kubelet = self.job_runner.kubelet
        self.call(lambda: kubelet.evict(namespace, name, resource))

    def service_account_token(self, namespace: str, name: str) -> str:
        """A bearer token for `system:serviceaccount:<namespace>:<name>`, whose requests are
        authorized by the stored RBAC objects (403 when no binding allows them)."""
        token = secrets.token_urlsafe(24)
        self.server.identities[token] = Identity.service_account(namespace, name)
        return token

    def write_kubeconfig(
        self, path: str | Path, *, namespace: str = "default", token: str | None = None
    ) -> Path:
        """A kubeconfig for the admin (unrestricted), or for the identity of `token`."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "sandbox", "cluster": self.cluster_entry()}],
            "users": [{"name": "sandbox-admin", "user": {"token": token or self.token}}],
            "contexts": [
                {
                    "name": "sandbox",
                    "context": {
                        "cluster": "sandbox",
                        "user": "sandbox-admin",
                        "namespace": namespace,
                    },
                }
            ],
            "current-context": "sandbox",
        }
        target.write_text(yaml.safe_dump(config))
        target.chmod(0o600)
        return target

    def cluster_entry(self) -> dict[str, str]:
        """The kubeconfig `cluster` entry: server URL and, with TLS, the CA."""
        entry = {"server": self.url}
        if self.certificate:
            entry["certificate-authority-data"] = base64.b64encode(self.certificate.ca_pem).decode()
        return entry

    @property
    def ca_file(self) -> Path | None:
        """PEM file of the CA that signed the serving certificate (None without TLS)."""
        return self.certificate.ca_file if self.certificate else None

    # -- faults and watch gaps (faults.py, control.py) ----------------------------------
    @property
    def faults(self) -> KubeFaults:
        """The fault plan: `kube.faults.set("create:jobs", status=500, next=1)`."""
        return self.server.faults

    def compact(self, resource_version: int | None = None) -> int:
        """Compact the watch history up to `resource_version` (default: now): a watch that
        resumes from an older one gets the 410 Gone a real server sends after etcd compaction.
        Answers the compacted resourceVersion."""
        return self.call(lambda: self.server.store.compact(resource_version))

    def close_watches(self, resource: str | None = None, *, compact: bool = False) -> int:
        """End the open watch streams (of `resource`, e.g. "jobs" or "jobs.batch", or all)
        at once, as an API server restart or rollout does; with `compact`, also compact the
        history in the same step, so that the clients' resumes get 410 Gone (what a restarted
        server's fresh watch cache answers). Answers how many streams were ended."""
        pattern = ResourcePattern.parse(resource) if resource else None

        def close() -> int:
            closed = self.server.store.drop_watches(
                None if pattern is None else lambda key: pattern.matches(key[0], key[1], None)
            )
            if compact:
                self.server.store.compact()
            return closed

        return self.call(close)

    def set_compaction_interval(self, seconds: float | None) -> None:
        """Compact the watch history every `seconds` from now on (None: stop)."""
        if self._loop is None:
            self.server.compactor.set_interval(seconds)
        else:  # the compactor's event belongs to the server's loop
            self.call(lambda: self.server.compactor.set_interval(seconds))

    def audit(self) -> list[AuditRecord]:
        return self.server.audit()

    def clear_audit(self) -> None:
        self.server.clear_audit()

    def apply_manifests(self, documents: Iterable[dict[str, Any]]) -> None:
        """Create (or replace) objects directly, e.g. CRDs before a test starts."""

        def create_all() -> None:
            api = self.server.api
            for document in documents:
                group, _, version = document["apiVersion"].rpartition("/")
                rtype = self.server.registry.by_kind(document["apiVersion"], document["kind"])
                if rtype is None:
                    raise ValueError(
                        f"unknown kind {document['apiVersion']}/{document['kind']}"
                        f" (group {group!r}, version {version!r})"
                    )
                namespace = document.get("metadata", {}).get("namespace")
                name = document["metadata"]["name"]
                if api.store.get(rtype.storage_key, namespace or "", name) is None:
                    api.create(rtype, namespace, document)
                else:
                    api.update(rtype, namespace, name, document)

        self.call(create_all)

    def load_crds(self, *paths: Path) -> list[str]:
        """Load CRD YAML files (default: the project's `crds/*.yaml`); answers their names."""
        files = list(paths) or sorted(PROJECT_CRDS.glob("*.yaml"))
        documents = [
            document
            for file in files
            for document in yaml.safe_load_all(file.read_text())
            if document and document.get("kind") == "CustomResourceDefinition"
        ]
        self.apply_manifests(documents)
        return [document["metadata"]["name"] for document in documents]
