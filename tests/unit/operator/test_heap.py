"""The operator gives freed heap memory back to the system (cpworker.heap)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap

import pytest

from cpworker import heap

# A heap fragmented the way a fleet's start-up leaves it: many malloc'd blocks (bytearrays
# over pymalloc's 512-byte limit), one in twenty still alive. glibc keeps the free pages
# between them resident until they are trimmed.
_FRAGMENTED_HEAP = textwrap.dedent(
    """
    import json
    from cpworker import heap

    def rss_kib():
        with open("/proc/self/status") as status:
            return int(status.read().split("VmRSS:")[1].split()[0])

    blocks = [bytearray(2000) for _ in range(100_000)]
    survivors = blocks[::20]
    del blocks
    before = rss_kib()
    released = heap.trim()
    print(json.dumps({"before": before, "after": rss_kib(), "released": released}))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; glibc's heap")
def test_trimming_returns_the_free_pages_between_live_blocks() -> None:
    assert heap.can_trim(), "this Linux's C library should be glibc, which has malloc_trim"
    out = subprocess.run(
        [sys.executable, "-c", _FRAGMENTED_HEAP], capture_output=True, text=True, check=True
    ).stdout
    figures = json.loads(out)
    assert figures["released"] is True
    # About 190 MiB of freed blocks stay resident before the trim; at least half must go.
    assert figures["before"] - figures["after"] > 90 * 1024, figures


async def test_the_operator_trims_until_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    three = asyncio.Event()

    def fake_trim(pad: int) -> int:
        calls.append(pad)
        if len(calls) == 3:
            three.set()
        return 1

    monkeypatch.setattr(heap, "_MALLOC_TRIM", fake_trim)
    task = asyncio.create_task(heap.trim_periodically(interval=0.001))
    async with asyncio.timeout(30):
        await three.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls[:3] == [0, 0, 0]  # pad 0: keep nothing spare at the heap's top


async def test_without_malloc_trim_it_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_MALLOC_TRIM", None)
    assert heap.trim() is False
    async with asyncio.timeout(5):
        await heap.trim_periodically(interval=0.001)  # returns at once instead of looping
