"""Peak memory of pull and push stays flat however large the artifact: bytes stream through.

Each command runs as a process of its own (the `cpworker` entry point, as in a pod), which
reports its peak resident set when it ends: VmHWM of /proc/self/status, the high-water mark
of the address space the command ran in. (The child's ru_maxrss would not do: on Linux, exec
carries the parent's high-water mark over into the child's, fs/exec.c exec_mmap(), and the
parent here is the whole pytest process.) The peak is compared with the same command moving
a 1 MiB artifact. The normal run moves 48 MiB and asserts the growth stays well below the
artifact's size (it would be at least the size if anything held the artifact in memory).
`CPWORKER_TEST_BIG_ARTIFACTS=1` adds the 200 MiB variant; both print their figures (`-s`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.integration.artifacts.pod import Pod, canary_credentials, make_job

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MIB = 1024 * 1024
BIG = os.environ.get("CPWORKER_TEST_BIG_ARTIFACTS") == "1"
SIZES = [48 * MIB, *([200 * MIB] if BIG else [])]
# Growth over the 1 MiB baseline that streaming stays under: the download part queue (8 MiB),
# buffers of the 4 transfer threads and the allocator's per-thread arenas (measured: 16-19 MiB
# for 48 MiB, 26 MiB for 200 MiB). Holding the artifact would add all of its size.
GROWTH_BOUND = 40 * MIB
assert min(SIZES) > GROWTH_BOUND, "the bound must be able to catch an artifact held in memory"


@dataclass(frozen=True)
class Run:
    returncode: int
    peak_bytes: int
    stderr: str


# The command, then its peak RSS (kB) written where PEAK_FILE says.
PROBE = """
import os, sys
from cpworker.cli import main
code = main(["artifacts", sys.argv[1]])
with open("/proc/self/status") as status:
    peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
with open(os.environ["PEAK_FILE"], "w") as out:
    out.write(peak)
sys.exit(code)
"""


def measured(pod: Pod, command: str) -> Run:
    """Run `cpworker artifacts COMMAND` in a child process; its peak RSS and log."""
    log, peak = pod.root / f"{command}.log", pod.root / f"{command}.peak"
    env = {"PATH": os.environ.get("PATH", ""), **pod.env(), "PEAK_FILE": str(peak)}
    with log.open("w") as stderr:
        finished = subprocess.run(
            [sys.executable, "-c", PROBE, command],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            check=False,
            timeout=600,
        )
    return Run(finished.returncode, int(peak.read_text()) * 1024, log.read_text())


def random_file(path: Path, size: int) -> None:
    with path.open("wb") as out:
        for _ in range(size // MIB):
            out.write(os.urandom(MIB))


def round_trip(pod: Pod, s3: S3Client, size: int) -> tuple[Run, Run]:
    """Pull a `size` zip (one big file plus a few small ones), then push `size` of output."""
    archive = pod.root / "source.zip"
    pod.root.mkdir(parents=True, exist_ok=True)
    random_file(pod.root / "big.bin", size)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zipped:
        zipped.write(pod.root / "big.bin", "data/big.bin")
        for index in range(10):
            zipped.writestr(f"src/file{index}.txt", f"small file {index}\n")
    data, bucket = make_job(s3, inputs={"Source": b"placeholder"}, outputs=["Out"])
    (source,) = data.input_artifacts
    assert source.location is not None
    assert source.location.s3_location is not None
    s3.upload_file(str(archive), bucket, source.location.s3_location.object_key)
    archive.unlink()
    pod.volume.publish_job(data)
    pod.volume.publish_credentials(canary_credentials())
    pulled = measured(pod, "pull")
    assert pulled.returncode == 0, pulled.stderr[-2000:]
    assert (pod.input_dir / "Source/data/big.bin").stat().st_size == size
    (pod.root / "big.bin").replace(pod.output_dir / "Out/big.bin")
    pushed = measured(pod, "push")
    assert pushed.returncode == 0, pushed.stderr[-2000:]
    return pulled, pushed


@pytest.mark.parametrize("size", SIZES, ids=[f"{s // MIB}MiB" for s in SIZES])
def test_memory_stays_flat(
    pod: Pod, s3_client: S3Client, tmp_path: Path, size: int, moto_server: str
) -> None:
    baseline_pull, baseline_push = round_trip(Pod(tmp_path / "tiny", moto_server), s3_client, MIB)
    pulled, pushed = round_trip(pod, s3_client, size)
    figures = {
        "pull": (baseline_pull.peak_bytes, pulled.peak_bytes),
        "push": (baseline_push.peak_bytes, pushed.peak_bytes),
    }
    for command, (base, peak) in figures.items():
        print(
            f"\n{command} {size // MIB} MiB: peak RSS {peak / MIB:.1f} MiB, "
            f"1 MiB baseline {base / MIB:.1f} MiB, growth {(peak - base) / MIB:.1f} MiB"
        )
    for command, (base, peak) in figures.items():
        assert peak - base < GROWTH_BOUND, (command, peak, base)
