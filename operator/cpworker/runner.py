"""`cpworker run`: settings, logging, executor, kopf start. Also an in-process starter.

    cpworker run [--namespace NS ...| --all-namespaces] [--standalone | --peering NAME]
                 [--priority N] [--liveness] [--kubeconfig PATH]

Settings come from the environment (`CPWORKER_*`, see settings.py); an invalid environment
exits with status 2 and one message listing every problem. AWS settings (region,
credentials, `AWS_ENDPOINT_URL_*`) are boto3's usual environment.

`OperatorThread` runs the same operator in a background thread with its own event loop, for
tests and `cpworker sandbox up --operator`.
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

from cpworker import handlers, logging_setup
from cpworker.runtime import Runtime
from cpworker.settings import OperatorSettings, SettingsError, load_settings

log = logging.getLogger(__name__)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cpworker run", description=__doc__.split("\n")[0])
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
    parser.add_argument("--priority", type=int, default=None, help="peering priority")
    parser.add_argument(
        "--liveness",
        action="store_true",
        help="serve /healthz on CPWORKER_HEALTH_HOST:CPWORKER_HEALTH_PORT",
    )
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig (default: $KUBECONFIG)")
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
    liveness: bool = False,
    kubeconfig: str | None = None,
) -> dict[str, Any]:
    """Keyword arguments for `kopf.operator` (registry, settings, memo, scope, peering)."""
    watched = list(namespaces) or list(settings.namespaces)
    peering_name = None if standalone else (peering or settings.peering_name)
    priority = effective_priority(
        priority,
        settings.peering_priority,
        peering=peering_name is not None,
        replica=os.environ.get("POD_NAME") or socket.gethostname(),
    )
    settings = settings.model_copy(update={"peering_priority": priority})
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
    if liveness:
        kwargs["liveness_endpoint"] = (
            f"http://{settings.health_host}:{settings.health_port}/healthz"
        )
    return kwargs


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
        liveness=args.liveness,
        kubeconfig=args.kubeconfig,
    )
    try:
        asyncio.run(kopf.operator(**kwargs))
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
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.runtime: Runtime | None = None

    def start(self) -> OperatorThread:
        kwargs = operator_kwargs(self.settings, **self._options)
        self.runtime = kwargs["memo"]["runtime"]
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
            asyncio.run(kopf.operator(stop_flag=self._stop, ready_flag=self._ready, **kwargs))
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
