"""`cpworker run`: settings, logging, executor, kopf start. Also an in-process starter.

    cpworker run [--namespace NS ...| --all-namespaces] [--standalone | --peering NAME]
                 [--priority N] [--liveness] [--kubeconfig PATH]

Settings come from the environment (`CPWORKER_*`, see settings.py); an invalid environment
exits with status 2 and one message listing every problem. AWS settings (region,
credentials, `AWS_ENDPOINT_URL_*`) are boto3's usual environment.

With `--liveness`, `/healthz` (the liveness probes) and `/metrics` (Prometheus) are served on
CPWORKER_HEALTH_HOST:CPWORKER_HEALTH_PORT by `health.HealthServer`, on the operator's loop.

`OperatorThread` runs the same operator in a background thread with its own event loop, for
tests and `cpworker sandbox up --operator`; it always serves both (port 0 picks a free port;
`health_url` and `metrics_url` tell where).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import socket
import sys
import threading
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import kopf

from cpworker import handlers, health, heap, logging_setup
from cpworker.metrics import Metrics
from cpworker.runtime import Runtime
from cpworker.settings import OperatorSettings, SettingsError, load_settings

log = logging.getLogger(__name__)


def add_scope_arguments(parser: argparse.ArgumentParser) -> None:
    """What the operator serves and how: namespaces, peering, kubeconfig (also `cpworker
    check`'s, so that it checks with the arguments the operator runs with)."""
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        help="watch this namespace (repeatable; default: CPWORKER_NAMESPACES or all)",
    )
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace")
    peering = parser.add_mutually_exclusive_group()
    peering.add_argument("--standalone", action="store_true", help="no peering (a single replica)")
    peering.add_argument("--peering", metavar="NAME", help="kopf peering object for replicas")
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig (default: $KUBECONFIG)")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cpworker run", description=__doc__.split("\n")[0])
    add_scope_arguments(parser)
    parser.add_argument("--priority", type=int, default=None, help="peering priority")
    parser.add_argument(
        "--liveness",
        action="store_true",
        help="serve /healthz and /metrics on CPWORKER_HEALTH_HOST:CPWORKER_HEALTH_PORT",
    )
    return parser.parse_args(list(argv))


def effective_priority(
    explicit: int | None, configured: int, *, peering: bool, replica: str
) -> int:
    """The peering priority of this replica.

    kopf pauses every replica that shares the highest priority, and a Deployment cannot give
    its pods different arguments: so, with peering on and no priority chosen, each replica
    derives a stable one of its own from its pod name.
    """
    if explicit is not None:
        return explicit
    if not peering or configured != 0:
        return configured
    digest = hashlib.sha256(replica.encode()).digest()
    return 1 + int.from_bytes(digest[:4], "big") % 1_000_000


def operator_kwargs(
    settings: OperatorSettings,
    *,
    namespaces: Sequence[str] = (),
    all_namespaces: bool = False,
    standalone: bool = False,
    peering: str | None = None,
    priority: int | None = None,
    kubeconfig: str | None = None,
) -> dict[str, Any]:
    """Keyword arguments for `kopf.operator` (registry, settings, memo, scope, peering).

    The memo carries the operator's `runtime` (its metrics included).
    """
    watched = list(namespaces) or list(settings.namespaces)
    peering_name = None if standalone else (peering or settings.peering_name)
    priority = effective_priority(
        priority,
        settings.peering_priority,
        peering=peering_name is not None,
        replica=os.environ.get("POD_NAME") or socket.gethostname(),
    )
    # The effective peering, so that the policy derived from it (the report lease) agrees.
    settings = settings.model_copy(
        update={"peering_priority": priority, "peering_name": peering_name}
    )
    kopf_settings = kopf.OperatorSettings()
    handlers.kopf_settings(kopf_settings, settings)
    runtime = Runtime.create(settings, kubeconfig=kubeconfig)
    kwargs: dict[str, Any] = {
        "registry": handlers.build_registry(),
        "settings": kopf_settings,
        "memo": kopf.Memo(runtime=runtime),
        "standalone": peering_name is None,
        "peering_name": peering_name,
        "priority": settings.peering_priority,
        "clusterwide": all_namespaces or not watched,
        "namespaces": [] if (all_namespaces or not watched) else watched,
    }
    return kwargs


def health_server(settings: OperatorSettings, memo: kopf.Memo) -> health.HealthServer:
    """`/healthz` with the operator's liveness probes and `/metrics` with its metrics."""
    runtime: Runtime = memo["runtime"]

    async def workers() -> object:
        return len(runtime.running_workers())

    return health.HealthServer(
        settings.health_host,
        settings.health_port,
        probes={"kubernetes_api": health.kubernetes_api_probe(runtime.kube), "workers": workers},
        registry=runtime.metrics.registry,
    )


async def serve(kwargs: dict[str, Any], server: health.HealthServer | None) -> None:
    """Run kopf with `kwargs`, and the health/metrics server (when given) around it.

    The server binds before kopf starts, so a port in use fails the start at once. The event
    loop's lag is measured meanwhile (`cpworker_event_loop_lag_seconds`), and freed heap memory
    goes back to the system (`heap`).
    """
    runtime: Runtime = kwargs["memo"]["runtime"]
    lag = asyncio.create_task(health.watch_loop_lag(runtime.metrics.event_loop_lag))
    trimming = asyncio.create_task(heap.trim_periodically())
    try:
        if server is not None:
            await server.start()
        try:
            await kopf.operator(**kwargs)
        finally:
            if server is not None:
                await server.stop()
    finally:
        lag.cancel()
        trimming.cancel()


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"cpworker run: {exc}", file=sys.stderr)  # noqa: T201 - the CLI's error output
        return 2
    logging_setup.configure(settings.log_format, settings.log_level)
    kwargs = operator_kwargs(
        settings,
        namespaces=args.namespace,
        all_namespaces=args.all_namespaces,
        standalone=args.standalone,
        peering=args.peering,
        priority=args.priority,
        kubeconfig=args.kubeconfig,
    )
    server = health_server(settings, kwargs["memo"]) if args.liveness else None
    heap.tune_collector()  # this process only: an OperatorThread leaves its host's collector be
    try:
        asyncio.run(serve(kwargs, server))
    except KeyboardInterrupt:
        return 130
    return 0


class OperatorThread:
    """The operator in a background thread (tests, the sandbox). A context manager.

    >>> with OperatorThread(settings, namespaces=["ci"], kubeconfig=path) as op:
    ...     ...
    """

    def __init__(
        self,
        settings: OperatorSettings | Mapping[str, Any] | None = None,
        *,
        namespaces: Sequence[str] = (),
        kubeconfig: str | None = None,
        standalone: bool = True,
        peering: str | None = None,
        priority: int | None = None,
        ready_timeout: float = 60.0,
        liveness: bool = True,
    ) -> None:
        if not isinstance(settings, OperatorSettings):
            settings = load_settings(settings or {})
        self.settings = settings
        self._options: dict[str, Any] = {
            "namespaces": list(namespaces),
            "standalone": standalone,
            "peering": peering,
            "priority": priority,
            "kubeconfig": kubeconfig,
        }
        self._ready_timeout = ready_timeout
        self._liveness = liveness
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.runtime: Runtime | None = None
        self.metrics: Metrics | None = None
        self._server: health.HealthServer | None = None

    @property
    def health_url(self) -> str | None:
        """`http://host:port` of `/healthz` and `/metrics` once started (None without them)."""
        return self._server.url if self._server is not None else None

    @property
    def metrics_url(self) -> str | None:
        url = self.health_url
        return f"{url}{health.METRICS_PATH}" if url else None

    def start(self) -> OperatorThread:
        kwargs = operator_kwargs(self.settings, **self._options)
        self.runtime = kwargs["memo"]["runtime"]
        self.metrics = kwargs["memo"]["runtime"].metrics
        if self._liveness:
            self._server = health_server(self.settings, kwargs["memo"])
        self._thread = threading.Thread(
            target=self._run, args=(kwargs,), name="cpworker-operator", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(self._ready_timeout):
            self.stop()
            raise RuntimeError("the operator did not become ready in time")
        if self.error is not None:
            raise RuntimeError("the operator failed to start") from self.error
        return self

    def _run(self, kwargs: dict[str, Any]) -> None:
        try:
            flags = {"stop_flag": self._stop, "ready_flag": self._ready}
            asyncio.run(serve({**kwargs, **flags}, self._server))
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self.error = exc
            self._ready.set()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> OperatorThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
