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
    # The job a job call was about (AcknowledgeJob, GetJobDetails, PutJob*Result): job ids are
    # not secret, and per-job counts ("one accepted result per job") need them.
    job_id: str | None = None
    # A poll's queryParam value (queryable properties are never secret): benchmarks count
    # polls per pool from it.
    query: str | None = None


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
        job_id: str | None = None,
        query: str | None = None,
    ) -> None:
        record = RequestRecord(
            operation=operation,
            status=status,
            latency=time.monotonic() - started,
            outcome=outcome,
            error_type=error_type,
            at=time.time(),
            job_id=job_id,
            query=query,
        )
        with self._lock:
            self._records.append(record)

    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
