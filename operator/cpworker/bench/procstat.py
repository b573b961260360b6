"""CPU time and resident memory of a process or a thread, read from Linux's /proc.

Per process, so that the operator's figures never include the stand-ins' work (they run in
the benchmark's own process), and per thread, so that each stand-in's share can be told apart.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_from_stat(path: Path) -> float:
    text = path.read_text()
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _TICKS


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of every thread of `pid` so far."""
    return _cpu_from_stat(Path(f"/proc/{pid}/stat"))


def thread_cpu_seconds(native_id: int, pid: int | None = None) -> float:
    """CPU seconds of one thread (`threading.Thread.native_id`) of `pid` (default: us)."""
    return _cpu_from_stat(Path(f"/proc/{pid or os.getpid()}/task/{native_id}/stat"))


def memory_mib(pid: int) -> tuple[float, float]:
    """(resident, peak resident) memory of `pid` in MiB."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in {"VmRSS", "VmHWM"}:
            values[key] = int(rest.split()[0]) / 1024.0
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


@dataclass
class CpuWindow:
    """CPU share of one core used by `pid` between `start()` and `share()`."""

    pid: int
    _cpu: float = 0.0
    _wall: float = field(default_factory=time.monotonic)

    def start(self) -> CpuWindow:
        self._cpu = process_cpu_seconds(self.pid)
        self._wall = time.monotonic()
        return self

    def seconds(self) -> float:
        """CPU seconds `pid` used since `start()`."""
        return process_cpu_seconds(self.pid) - self._cpu

    def share(self) -> float:
        wall = time.monotonic() - self._wall
        return (process_cpu_seconds(self.pid) - self._cpu) / wall if wall > 0 else 0.0
