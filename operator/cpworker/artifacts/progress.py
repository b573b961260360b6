"""Progress lines of a pull or push: what moved, how much, how fast. Never a credential.

Each line is one log record (JSON by default, through cpworker.logging_setup and its
redaction) whose message is `event: key=value ...`, so log pipelines can split the fields
without a parser for every event.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from s3transfer.subscribers import BaseSubscriber

logger = logging.getLogger("cpworker.artifacts")

# One line every this many seconds while bytes move: enough to see a transfer is alive, few
# enough that a long upload does not flood the pod's log.
DEFAULT_INTERVAL_SECONDS: Final = 10.0


def fields(**values: object) -> str:
    """`key=value` pairs in order; floats with 2 decimals, text quoted when it has spaces."""
    parts = []
    for key, value in values.items():
        if isinstance(value, float):
            text = f"{value:.2f}"
        else:
            text = str(value)
            if not text or any(c.isspace() for c in text) or '"' in text:
                text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


def log_event(event: str, **values: object) -> None:
    logger.info("%s: %s", event, fields(**values))


class TransferProgress(BaseSubscriber):
    """An s3transfer subscriber that logs bytes moved, at most once per interval, thread-safe."""

    def __init__(
        self,
        event: str,
        total: int | None = None,
        *,
        interval: float = DEFAULT_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        **context: object,
    ) -> None:
        self._event = event
        self._total = total
        self._interval = interval
        self._clock = clock
        self._context = context
        self._lock = threading.Lock()
        self._started = clock()
        self._last_logged = self._started
        self.bytes_done = 0

    def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
        del future, kwargs
        with self._lock:
            # Negative amounts rewind a part that is being retried.
            self.bytes_done += bytes_transferred
            now = self._clock()
            if now - self._last_logged < self._interval:
                return
            self._last_logged = now
            done = self.bytes_done
        extra: dict[str, object] = {"bytes": done, "seconds": now - self._started}
        if self._total:
            extra["total_bytes"] = self._total
            extra["percent"] = min(100, done * 100 // self._total)
        log_event(self._event, **self._context, **extra)

    def elapsed(self) -> float:
        return self._clock() - self._started
