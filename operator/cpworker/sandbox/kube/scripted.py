"""Scripted containers: no process, an outcome read from pod annotations (`sandbox.cpworker.io/`
+ name, or name + `.<container>` for one container):

  duration        how long it runs: `2s`, `500ms`, `1m`, or `never` (a classic sidecar)
  exit-code       its exit code when it ends by itself
  termination-message   what it writes to its terminationMessagePath
  log             its log (`kubectl logs`; FallbackToLogsOnError reads its tail)
  stop-duration   how long it takes to exit after SIGTERM (default 0: at once, code 143);
                  longer than the grace period: SIGKILLed, code 137
  sigterm-exit-code   its exit code when it stops after SIGTERM (default 143: the signal's
                  default action; a program that handles SIGTERM exits with its own, e.g. 0)

A known image (`RunnerConfig.image_scripts`) brings its own script in the same keys (with the
same `.<container>` suffixes): its containers follow that script and the container-specific
annotations only, never the pod-wide ones, which script the template's own programs. That is
how the stand-in models an image whose program it knows (the operator's artifact helper:
cpworker.sandbox.operatorimage), as `image_users` models an image's USER.

Signals follow the runtime: SIGTERM ends it with 128+15 = 143 (the default action), SIGKILL
with 128+9 = 137 (`pkg/kubelet/kuberuntime/kuberuntime_container.go` killContainer sends
SIGTERM, waits the grace period, then SIGKILL).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

from cpworker.sandbox.kube import termination

Obj = dict[str, Any]
PREFIX = "sandbox.cpworker.io/"
SIGTERM_EXIT = 143
SIGKILL_EXIT = 137


def parse_duration(text: str | None, default: float | None) -> float | None:
    """Seconds; None for `never`."""
    if not text:
        return default
    if text.strip() in {"never", "forever"}:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*", text)
    if not match:
        return default
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value / 1000 if unit == "ms" else value * 60 if unit == "m" else value


def annotation(annotations: dict[str, str], key: str, container: str) -> str | None:
    return annotations.get(f"{PREFIX}{key}.{container}", annotations.get(PREFIX + key))


def script_of(
    annotations: dict[str, str], container: str, image_script: dict[str, str] | None
) -> dict[str, str]:
    """The annotations that script one container: the pod's, or for a known image its own
    script overlaid by the container-specific annotations (the pod-wide ones do not apply)."""
    if image_script is None:
        return annotations
    suffix = f".{container}"
    own = {PREFIX + key: value for key, value in image_script.items()}
    specific = {k: v for k, v in annotations.items() if k.startswith(PREFIX) and k.endswith(suffix)}
    return {**own, **specific}


@dataclass(slots=True)
class ScriptedContainer:
    spec: Obj
    annotations: dict[str, str]
    default_duration: float
    exit_code: int | None = None
    _done: asyncio.Event = field(default_factory=asyncio.Event)
    _timer: asyncio.TimerHandle | None = None

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def _get(self, key: str) -> str | None:
        return annotation(self.annotations, key, self.name)

    async def start(self) -> None:
        duration = parse_duration(self._get("duration"), self.default_duration)
        if duration is not None:
            code = int(self._get("exit-code") or 0)
            self._timer = asyncio.get_running_loop().call_later(duration, self._exit, code)

    def _exit(self, code: int) -> None:
        if self.exit_code is None:
            self.exit_code = code
            self._done.set()

    async def wait(self) -> int:
        await self._done.wait()
        assert self.exit_code is not None
        return self.exit_code

    @property
    def running(self) -> bool:
        return self.exit_code is None

    def terminate(self) -> None:
        if not self.running:
            return
        if self._timer:
            self._timer.cancel()
        stop = parse_duration(self._get("stop-duration"), 0.0)
        code = int(self._get("sigterm-exit-code") or SIGTERM_EXIT)
        if stop is not None:
            self._timer = asyncio.get_running_loop().call_later(stop, self._exit, code)

    def kill(self) -> None:
        if self._timer:
            self._timer.cancel()
        self._exit(SIGKILL_EXIT)

    def log(self) -> str:
        return self._get("log") or ""

    def message(self) -> str:
        written = self._get("termination-message")
        return termination.message(
            self.spec,
            self.exit_code or 0,
            written.encode() if written else None,
            self.log().encode(),
        )

    async def close(self) -> None:
        if self._timer:
            self._timer.cancel()
