"""The measured processes: `cpworker run` and the raw loop, each a subprocess of its own.

A process of its own gives each its own resident memory and CPU time (procstat), and keeps
the stand-ins' work, which runs in the benchmark's process, out of the operator's figures.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Subprocess:
    """A Python module run with `env`, its output in `log_path`; stopped with SIGTERM."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> None:
        self.argv = [sys.executable, *argv]
        self.env = dict(env)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Subprocess:
        with self.log_path.open("ab") as log:
            self.started_at = time.time()
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        if self.wait(grace) is None:
            self.proc.kill()
            self.proc.wait(10)

    def tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def operator_process(
    env: Mapping[str, str], namespace: str, log_path: Path, health_port: int
) -> Subprocess:
    """`cpworker run` for one namespace, standalone, with its liveness endpoint on."""
    return Subprocess(
        ["-m", "cpworker.cli", "run", "--namespace", namespace, "--standalone", "--liveness"],
        {**env, "CPWORKER_HEALTH_HOST": "127.0.0.1", "CPWORKER_HEALTH_PORT": str(health_port)},
        log_path,
    )


class LivenessProbe:
    """GET /healthz every `interval` seconds; the answer times bound the event loop's lag.

    kopf serves the endpoint on the operator's event loop and caches the probe results for
    10 s, so an answer is mostly the time the loop took to get round to the request: an
    upper bound of the event loop's lag, not the lag itself (see the report's method note).
    """

    def __init__(self, port: int, interval: float = 0.5, timeout: float = 10.0) -> None:
        self.url = f"http://127.0.0.1:{port}/healthz"
        self.interval = interval
        self.timeout = timeout
        self.samples: list[tuple[float, float]] = []  # (at, seconds)
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            started = time.monotonic()
            try:
                # S310: the URL is our own http://127.0.0.1 endpoint.
                with urllib.request.urlopen(self.url, timeout=self.timeout) as answer:  # noqa: S310
                    answer.read()
            except (urllib.error.URLError, OSError, TimeoutError):
                if self.samples:  # before the first answer the endpoint is still starting
                    self.failures += 1
                continue
            self.samples.append((time.time(), time.monotonic() - started))

    def start(self) -> LivenessProbe:
        self._thread = threading.Thread(target=self._run, name="bench-liveness", daemon=True)
        self._thread.start()
        return self

    def answered(self) -> bool:
        return bool(self.samples)

    def between(self, start: float, end: float) -> list[float]:
        return [seconds for at, seconds in self.samples if start <= at <= end]

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            with contextlib.suppress(RuntimeError):
                self._thread.join(self.timeout + 1)
