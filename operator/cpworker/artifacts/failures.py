"""How the helper fails: one exception carrying the job contract's failure type, and the report.

A failed pull or push writes `{"failure": {"type": ..., "message": ...}}` (the job contract's
format, built with the operator's own report model) to its termination message file and exits
non-zero, so the operator reports the job with that type and message. The message is for the
pipeline's user: it says what went wrong and what to do, and never holds a credential (it is
passed through the same redaction as every log line).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Final

from cpworker.logging_setup import redact
from cpworker.results import ContainerReport, FailureReport, FailureType

# Kubernetes keeps at most 4096 bytes of a termination message (kubelet's
# maxTerminationMessageLength); a longer report would be cut mid-JSON and become unreadable.
TERMINATION_MESSAGE_MAX_BYTES: Final = 4096
DEFAULT_RESULT_FILE: Final = Path("/dev/termination-log")
_ELLIPSIS: Final = " [...]"


class ArtifactFailure(Exception):  # noqa: N818 - a failure of the job, named for the contract
    """The pull or push cannot finish; `failure_type` is the CodePipeline failure type."""

    def __init__(self, failure_type: FailureType, message: str) -> None:
        super().__init__(message)
        self.failure_type: FailureType = failure_type
        self.message = message


def _render(failure_type: FailureType, message: str) -> str:
    report = ContainerReport(failure=FailureReport(type=failure_type, message=message))
    return json.dumps(
        report.model_dump(mode="json", by_alias=True, exclude_unset=True), ensure_ascii=False
    )


def _fits(text: str) -> bool:
    return len(text.encode()) <= TERMINATION_MESSAGE_MAX_BYTES


def report_document(failure: ArtifactFailure) -> str:
    """The JSON report for `failure`, redacted and cut so that it fits a termination message."""
    message = redact(failure.message)
    text = _render(failure.failure_type, message)
    if _fits(text):
        return text
    # The longest head of the message that fits (escapes make bytes and characters differ).
    low, high = 0, len(message)
    while low < high:
        middle = (low + high + 1) // 2
        if _fits(_render(failure.failure_type, message[:middle] + _ELLIPSIS)):
            low = middle
        else:
            high = middle - 1
    return _render(failure.failure_type, message[:low] + _ELLIPSIS)


def write_report(path: Path, failure: ArtifactFailure) -> None:
    """Write the report to `path` (the container's termination message file).

    Writing must not fail the failure path: a missing or read-only file leaves the non-zero
    exit code (and the log line) as the only signal, which the operator still reports.
    """
    text = report_document(failure)
    with contextlib.suppress(OSError):
        path.write_text(text, encoding="utf-8")
