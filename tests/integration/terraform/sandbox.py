"""Start `cpworker sandbox up` as a subprocess and read the environment it exports."""

from __future__ import annotations

import queue
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

READY_MARKER = "ready"
START_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 20.0


def parse_env_file(path: Path) -> dict[str, str]:
    """`export NAME=value` lines (shell-quoted) into a mapping."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, _, value = words[1].partition("=")
            env[name] = value
    return env


def _pump(stream: object, lines: queue.Queue[str | None]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.put(line)
    lines.put(None)


@contextmanager
def sandbox_up(
    directory: Path, args: Sequence[str] = (), printed: list[str] | None = None
) -> Iterator[dict[str, str]]:
    """Run the local stand-ins until the block ends; yield the environment they export.

    `args`: more `cpworker sandbox up` arguments, e.g. `--operator`; `printed` receives the
    lines it printed up to "ready"."""
    command = [sys.executable, "-m", "cpworker.cli", "sandbox", "up", "--dir", str(directory)]
    process = subprocess.Popen(
        [*command, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True).start()
    seen: list[str] = [] if printed is None else printed
    try:
        while True:
            try:
                line = lines.get(timeout=START_TIMEOUT_SECONDS)
            except queue.Empty:
                raise AssertionError(
                    f"sandbox not ready after {START_TIMEOUT_SECONDS}s:\n{''.join(seen)}"
                ) from None
            if line is None:
                raise AssertionError(f"sandbox exited before ready:\n{''.join(seen)}")
            seen.append(line)
            if READY_MARKER in line:
                break
        yield parse_env_file(directory / "env")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def client(service: str, env: dict[str, str]) -> Any:
    """A boto3 client for `service` on the sandbox whose environment `env` is (its endpoint,
    region and keys); EventBridge is `events`."""
    suffix = {"events": "EVENTBRIDGE"}.get(service, service.upper())
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=env[f"AWS_ENDPOINT_URL_{suffix}"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
