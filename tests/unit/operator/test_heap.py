"""The operator gives freed heap memory back to the system (cpworker.heap)."""

from __future__ import annotations

import asyncio
import json
import os
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


_TUNED = textwrap.dedent(
    """
    import gc, json
    from cpworker import heap

    class Node:
        def __init__(self):
            self.me = self  # a cycle: only the collector frees it

    kept = [Node() for _ in range(1000)]
    heap.tune_collector()
    frozen = gc.get_freeze_count()
    del kept
    found_frozen = gc.collect()  # start-up's objects are not examined again
    garbage = [Node() for _ in range(1000)]
    del garbage
    found_new = gc.collect()  # what came later still is
    print(json.dumps({"frozen": frozen, "thresholds": gc.get_threshold(),
                      "found_frozen": found_frozen, "found_new": found_new}))
    """
)


def test_the_collector_leaves_start_up_alone_and_still_frees_later_cycles() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _TUNED], capture_output=True, text=True, check=True
    ).stdout
    figures = json.loads(out)
    assert figures["frozen"] > 1000
    assert tuple(figures["thresholds"]) == heap.COLLECTOR_THRESHOLDS
    assert figures["found_frozen"] < 1000  # the frozen cycles are not collected
    assert figures["found_new"] >= 1000  # a cycle made after start-up is


_RUN = textwrap.dedent(
    """
    import gc, json, sys
    from cpworker import runner

    async def serve(kwargs, server):  # where kopf would start: what does the collector do?
        print(json.dumps({"frozen": gc.get_freeze_count(), "thresholds": gc.get_threshold()}))

    runner.serve = serve
    runner.operator_kwargs = lambda settings, **_: {"memo": {}}
    sys.exit(runner.main(sys.argv[1:]))
    """
)


def test_cpworker_run_tunes_its_collector_before_the_operator_starts() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _RUN, "--standalone"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "CPWORKER_DEFAULT_REGION": "us-east-1"},
    ).stdout
    figures = json.loads(out)
    assert figures["frozen"] > 0
    assert tuple(figures["thresholds"]) == heap.COLLECTOR_THRESHOLDS
