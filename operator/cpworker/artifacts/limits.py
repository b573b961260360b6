"""The extraction limits, counted from what is actually written, never from archive headers.

One `ExtractionBudget` per pull: all input artifacts of a job share the total-size and
entry-count limits (they share the pod's disk). Each archive gets an `ArchiveMeter`, which also
enforces the compression ratio: bytes written per byte of archive, checked as bytes are written
once more than `RATIO_FLOOR_BYTES` were, so a bomb is stopped while it expands, and a tiny
archive of repetitive text (a few KiB expanding a thousandfold) is not taken for one.

Each limit fails with its own message that names it, says the value, and says how to raise it.
"""

from __future__ import annotations

from typing import Final

from cpworker.artifacts.failures import ArtifactFailure
from cpworker.models import ArtifactLimits

RATIO_FLOOR_BYTES: Final = 1024 * 1024


class LimitExceeded(ArtifactFailure):
    """An input artifact is larger than a configured limit allows (JobFailed)."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__("JobFailed", message)
        self.limit = limit  # the spec field, e.g. "maxTotalBytes"


def _size(count: int) -> str:
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if count >= factor:
            return f"{count / factor:.1f} {unit}"
    return f"{count} bytes"


def _raise_hint(field: str) -> str:
    return (
        f"If the artifact is genuine, raise spec.artifacts.limits.{field} of the "
        "CustomActionWorker."
    )


class ExtractionBudget:
    """What the inputs of one job have used of the limits so far."""

    def __init__(self, limits: ArtifactLimits) -> None:
        self.limits = limits
        self.entries = 0
        self.bytes_written = 0

    def archive(self, artifact: str, archive_bytes: int) -> ArchiveMeter:
        return ArchiveMeter(self, artifact, archive_bytes)

    def too_many_entries(self, artifact: str, declared: int | None = None) -> LimitExceeded:
        limit = self.limits.max_files
        what = (
            f"declares {declared} entries"
            if declared is not None
            else f"has more than {limit - min(self.entries, limit)} entries left to extract"
        )
        return LimitExceeded(
            "maxFiles",
            f"Input artifact {artifact!r} exceeds the file count limit: it {what}, and all "
            f"input artifacts of a job may hold at most {limit} entries (files, directories "
            f"and links) together (spec.artifacts.limits.maxFiles). {_raise_hint('maxFiles')}",
        )


class ArchiveMeter:
    """Counts one archive's entries and written bytes against the budget (raises when over)."""

    def __init__(self, budget: ExtractionBudget, artifact: str, archive_bytes: int) -> None:
        self._budget = budget
        self._artifact = artifact
        self._archive_bytes = max(archive_bytes, 1)
        self.entries = 0
        self.bytes_written = 0

    def entry(self) -> None:
        """Count one more entry (file, directory or link) before it is created."""
        budget = self._budget
        if budget.entries + 1 > budget.limits.max_files:
            raise budget.too_many_entries(self._artifact)
        budget.entries += 1
        self.entries += 1

    def write(self, count: int) -> None:
        """Count `count` more bytes before they are written."""
        budget = self._budget
        limits = budget.limits
        if budget.bytes_written + count > limits.max_total_bytes:
            raise LimitExceeded(
                "maxTotalBytes",
                f"Input artifact {self._artifact!r} exceeds the total size limit: extracting "
                f"it would write more than {limits.max_total_bytes} bytes "
                f"({_size(limits.max_total_bytes)}) for all input artifacts of the job "
                f"together (spec.artifacts.limits.maxTotalBytes). Extraction stopped there. "
                f"{_raise_hint('maxTotalBytes')}",
            )
        written = self.bytes_written + count
        ratio_limit = limits.max_compression_ratio
        if written > RATIO_FLOOR_BYTES and written > ratio_limit * self._archive_bytes:
            raise LimitExceeded(
                "maxCompressionRatio",
                f"Input artifact {self._artifact!r} exceeds the compression ratio limit: its "
                f"{self._archive_bytes}-byte archive expands to more than {ratio_limit} times "
                f"its size (spec.artifacts.limits.maxCompressionRatio = {ratio_limit}), as a "
                f"decompression bomb does. Extraction stopped there. "
                f"{_raise_hint('maxCompressionRatio')}",
            )
        budget.bytes_written += count
        self.bytes_written = written
