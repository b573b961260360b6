"""The progress line on the terminal while a run goes on (stderr, so stdout stays the table)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """One rewritten line on a terminal; elsewhere a line per phase and every `every` s."""

    def __init__(self, stream: TextIO | None = None, *, every: float = 10.0) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = every
        self.started = time.monotonic()
        self._phase = ""
        self._last_print = 0.0

    def phase(self, name: str) -> None:
        self._phase = name
        self._emit(f"{name} ...", force=True)

    def update(self, detail: str) -> None:
        self._emit(f"{self._phase}: {detail}", force=False)

    def done(self, detail: str) -> None:
        self._emit(f"{self._phase}: {detail}", force=True, final=True)

    def _emit(self, text: str, *, force: bool, final: bool = False) -> None:
        now = time.monotonic()
        line = f"[{now - self.started:6.0f} s] {text}"
        if self.tty:
            self.stream.write("\r\033[K" + line + ("\n" if final else ""))
            self.stream.flush()
            return
        if force or now - self._last_print >= self.every:
            self.stream.write(line + "\n")
            self.stream.flush()
            self._last_print = now
