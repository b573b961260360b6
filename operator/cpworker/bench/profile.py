"""Where the operator spends its time: py-spy's folded stacks summed by function."""

from __future__ import annotations

import collections
import re
from pathlib import Path
from typing import Any

_LINE = re.compile(r":\d+\)$")


def _function(frame: str) -> str:
    """`poll (cpworker/poller.py:123)` -> `poll (cpworker/poller.py)`; paths trimmed to the
    package, so reports read the same on every machine."""
    frame = _LINE.sub(")", frame.strip())
    return re.sub(r"\(.*?(site-packages|operator|lib/python3\.\d+)/", "(", frame)


def summarize(
    path: Path, *, top: int = 20, rate: float = 50.0, seconds: float = 0.0
) -> dict[str, Any]:
    """Top functions by own samples and by inclusive samples (fractions of active samples).

    With `--gil` py-spy samples only the thread holding the GIL, so `active_share` =
    samples / (rate x seconds) is about the share of the time the process ran Python.
    """
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [_function(f) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n

    def share(counter: collections.Counter[str]) -> list[list[Any]]:
        return [[name, round(n / samples, 4)] for name, n in counter.most_common(top)]

    return {
        "file": str(path),
        "samples": samples,
        "active_share": round(samples / (rate * seconds), 4) if seconds > 0 else None,
        "top_own": share(own) if samples else [],
        "top_inclusive": share(inclusive) if samples else [],
    }
