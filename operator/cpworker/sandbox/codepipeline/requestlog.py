"""A bounded, credential-free log of the requests the stand-in answered."""

from __future__ import annotations

import collections
import dataclasses
import threading
import time


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    """One answered request. Holds no request or response body, so no secret can leak into it."""

    operation: str
    status: int
    latency: float  # seconds, including injected latency
    outcome: str  # "ok", "error" (an AWS error answer) or "fault" (injected)
    error_type: str | None
    at: float  # wall clock, epoch seconds
    # What the call was about, when that is no secret: the job id of a job call, the
    # queryParam value of a poll (queryable properties are never secret). Benchmarks count
    # results per job and polls per pool from it.
    subject: str | None = None


class RequestLog:
    def __init__(self, size: int) -> None:
        self._lock = threading.Lock()
        self._records: collections.deque[RequestRecord] = collections.deque(maxlen=size)

    def add(
        self,
        operation: str,
        status: int,
        started: float,
        outcome: str,
        error_type: str | None,
        *,
        subject: str | None = None,
    ) -> None:
        record = RequestRecord(
            operation=operation,
            status=status,
            latency=time.monotonic() - started,
            outcome=outcome,
            error_type=error_type,
            at=time.time(),
            subject=subject,
        )
        with self._lock:
            self._records.append(record)

    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
