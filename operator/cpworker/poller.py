"""The poll loop of one worker: adaptive PollForJobs bounded by live capacity.

One asyncio task per CustomActionWorker (a kopf daemon), all on the operator's single event
loop: idle workers cost a sleeping coroutine, not a thread. Each cycle:

1. capacity = maxInFlight - live labelled Jobs of this worker (from the kopf index, never an
   in-memory counter that could drift); zero free means no poll at all;
2. PollForJobs(maxBatchSize = min(spec.maxBatchSize, free capacity));
3. hand the jobs to the claimer;
4. wait: a full batch polls again at once (a spike drains fast), a hit polls again after the
   minimum interval, an empty answer backs off exponentially with jitter up to the ceiling;
   throttling and 5xx back off the same way and say so in the worker's condition.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cpworker import codepipeline, models

if TYPE_CHECKING:
    from mypy_boto3_codepipeline.type_defs import ActionTypeIdTypeDef, JobTypeDef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollTarget:
    """What one worker polls for and how hard (built from the worker's validated spec)."""

    action_type_id: ActionTypeIdTypeDef
    query_param: Mapping[str, str] | None
    max_in_flight: int
    max_batch_size: int
    min_interval: float
    max_interval: float


def free_capacity(max_in_flight: int, live_jobs: int) -> int:
    """How many more jobs this worker may take (never negative)."""
    return max(0, max_in_flight - live_jobs)


def batch_size(max_batch_size: int, free: int) -> int:
    """PollForJobs' maxBatchSize: never more than the free capacity (0 = do not poll)."""
    return max(0, min(max_batch_size, free))


@dataclass
class IdleBackoff:
    """Adaptive delay between polls: hits reset it, empty polls and errors grow it.

    Full jitter on the idle delay spreads a thousand idle workers over the interval instead
    of polling in lock-step after a restart.
    """

    min_interval: float
    max_interval: float
    rng: random.Random = field(default_factory=random.Random)
    _ceiling: float = 0.0

    def after_poll(self, returned: int, requested: int) -> float:
        if requested > 0 and returned >= requested:
            self._ceiling = 0.0
            return 0.0
        if returned > 0:
            self._ceiling = 0.0
            return self.min_interval
        return self._grow()

    def after_error(self) -> float:
        return self._grow()

    def _grow(self) -> float:
        if self._ceiling <= 0:
            self._ceiling = self.min_interval
        else:
            self._ceiling = min(self.max_interval, self._ceiling * 2)
        if self._ceiling >= self.max_interval:
            # Idle at the ceiling: jitter around it (+-20 %), so that the mean interval is
            # the ceiling itself (60 s -> 60 calls per idle worker-hour) while a thousand
            # workers still spread out instead of polling in lock-step.
            return self.max_interval * self.rng.uniform(0.8, 1.2)
        # Growing: half fixed, half jitter; never faster than half the current step.
        return self._ceiling / 2 + self.rng.uniform(0, self._ceiling / 2)


@dataclass(frozen=True)
class PollOutcome:
    """What one cycle did, for the worker's status and the next delay."""

    polled: bool
    jobs: Sequence[JobTypeDef] = ()
    requested: int = 0
    error: codepipeline.CodePipelineError | None = None


async def poll_once(
    client: codepipeline.CodePipelineClient, target: PollTarget, live_jobs: int
) -> PollOutcome:
    """One PollForJobs within the free capacity; errors are returned, not raised."""
    requested = batch_size(target.max_batch_size, free_capacity(target.max_in_flight, live_jobs))
    if requested == 0:
        return PollOutcome(polled=False)
    try:
        jobs = await client.poll_for_jobs(target.action_type_id, requested, target.query_param)
    except codepipeline.CodePipelineError as exc:
        return PollOutcome(polled=True, requested=requested, error=exc)
    return PollOutcome(polled=True, jobs=jobs, requested=requested)


def condition_for_error(error: codepipeline.CodePipelineError) -> tuple[str, str]:
    """(reason, message) of the Ready=False condition for a poll error: says what to do."""
    if isinstance(error, codepipeline.ActionTypeNotFoundError):
        return (
            "ActionTypeNotFound",
            (
                "CodePipeline does not know this action type in this region: create it "
                "(e.g. with the cpworker Terraform module) or fix spec.actionTypeId / spec.region"
            ),
        )
    if isinstance(error, codepipeline.AccessDeniedError):
        return (
            "AccessDenied",
            (
                "the operator's AWS identity may not poll this action type: grant "
                "codepipeline:PollForJobs/AcknowledgeJob/GetJobDetails/PutJob*Result "
                "(or fix spec.roleArn and its trust policy)"
            ),
        )
    if isinstance(error, codepipeline.ThrottledError):
        return ("Throttled", "CodePipeline is throttling; polling backs off")
    if isinstance(error, codepipeline.UnavailableError):
        return ("ServiceUnavailable", "CodePipeline could not be reached; polling backs off")
    if isinstance(error, codepipeline.RequestValidationError):
        return ("InvalidRequest", f"CodePipeline rejected the poll: {error.detail[:300]}")
    return ("PollFailed", f"PollForJobs failed: {error.code}")


# Errors that a retry after a short time will not fix: poll slowly until the spec changes.
SLOW_RETRY_ERRORS = (
    codepipeline.ActionTypeNotFoundError,
    codepipeline.AccessDeniedError,
    codepipeline.RequestValidationError,
)


@dataclass
class PollLoop:
    """Runs one worker until `stopped`: tending every `tend_interval`, polls when due.

    The callables keep this loop independent of kopf: `target()` returns the current
    PollTarget (or None when the worker must not poll: paused or invalid), `live_jobs()`
    counts live labelled Jobs from the index, `handle_jobs` claims and dispatches, `tend`
    looks after in-flight jobs, and `report` publishes each poll's outcome to the status.
    `wake` (set by the Job event handler or a spec change) makes the next poll immediate.
    """

    client: Callable[[], Awaitable[codepipeline.CodePipelineClient]]
    target: Callable[[], PollTarget | None]
    live_jobs: Callable[[], int]
    handle_jobs: Callable[[Sequence[JobTypeDef]], Awaitable[Any]]
    tend: Callable[[], Awaitable[Any]]
    report: Callable[[PollOutcome], Awaitable[Any]]
    slow_retry_interval: float = 60.0
    tend_interval: float = 5.0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    backoff: IdleBackoff | None = None
    clock: Callable[[], float] = field(default=lambda: asyncio.get_running_loop().time())

    async def poll_cycle(self) -> float:
        """One poll (if allowed); returns seconds until the next poll is due."""
        target = self.target()
        if target is None:
            await self.report(PollOutcome(polled=False))
            return self.slow_retry_interval
        if self.backoff is None or (
            (self.backoff.min_interval, self.backoff.max_interval)
            != (target.min_interval, target.max_interval)
        ):
            self.backoff = IdleBackoff(target.min_interval, target.max_interval)
        client = await self.client()
        outcome = await poll_once(client, target, self.live_jobs())
        await self.report(outcome)
        if not outcome.polled:
            # No capacity: a finishing Job wakes us; the interval is only a safety net.
            return target.max_interval
        if outcome.error is not None:
            if isinstance(outcome.error, SLOW_RETRY_ERRORS):
                return self.slow_retry_interval
            return self.backoff.after_error()
        if outcome.jobs:
            await self.handle_jobs(outcome.jobs)
        return self.backoff.after_poll(len(outcome.jobs), outcome.requested)

    async def _guarded(self, step: Callable[[], Awaitable[Any]], fallback: Any) -> Any:
        try:
            return await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug or an unexpected API answer must not kill the worker's loop.
            log.exception("worker cycle step failed; carrying on")
            return fallback

    async def run(self, stopped: Callable[[], bool]) -> None:
        next_poll = self.clock()
        next_tend = self.clock()
        while not stopped():
            if self.wake.is_set():
                self.wake.clear()
                next_poll = min(next_poll, self.clock())
            if self.clock() >= next_tend:
                await self._guarded(self.tend, None)
                next_tend = self.clock() + self.tend_interval
            if self.clock() >= next_poll:
                delay = await self._guarded(self.poll_cycle, self.slow_retry_interval / 4)
                next_poll = self.clock() + delay
            wait = min(next_poll, next_tend) - self.clock()
            if wait > 0:
                await self.sleep(wait, stopped)

    async def sleep(self, delay: float, stopped: Callable[[], bool]) -> None:
        """Sleep up to `delay`, cut short by `wake` (a finished Job, a spec change)."""
        remaining = delay
        # Check `stopped` at least every second so that shutdown is prompt.
        while remaining > 0 and not stopped() and not self.wake.is_set():
            step = min(1.0, remaining)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=step)
            remaining -= step


@dataclass
class StatusPublisher:
    """Turns cycle outcomes into the worker's status, written only when it changes.

    kopf flushes a daemon's `patch` only when the daemon returns, so the status is patched
    through the API. To keep a thousand workers cheap, a write happens when anything but
    `lastPollTime` changed, or when `lastPollTime` is older than `refresh_seconds`.
    """

    write: Callable[[dict[str, Any]], Awaitable[Any]]
    refresh_seconds: float = 30.0
    clock: Callable[[], float] = field(default=lambda: asyncio.get_running_loop().time())
    _last_written: dict[str, Any] | None = None
    _last_write_at: float = 0.0
    _conditions: list[models.Condition] = field(default_factory=list)
    _last_poll: dt.datetime | None = None
    _last_error: models.LastError | None = None

    async def publish(
        self,
        *,
        ready: bool,
        reason: str,
        message: str,
        generation: int | None,
        in_flight: int,
        polled_ok: bool = False,
        error: tuple[str, str] | None = None,
    ) -> None:
        now = dt.datetime.now(dt.UTC)
        condition = models.ready_condition(
            ready, reason, message, now=now, observed_generation=generation
        )
        self._conditions = models.set_condition(self._conditions, condition, now)
        if polled_ok:
            self._last_poll = now
        if error is not None:
            self._last_error = models.last_error(error[0], error[1], now=now)
        status = models.CustomActionWorkerStatus(
            conditions=self._conditions,
            observed_generation=generation,
            in_flight=in_flight,
            last_poll_time=self._last_poll,
            last_error=self._last_error,
        )
        patch = models.status_patch(status)
        comparable = {k: v for k, v in patch.items() if k != "lastPollTime"}
        due = self.clock() - self._last_write_at >= self.refresh_seconds
        if self._last_written is not None and comparable == self._last_written and not due:
            return
        await self.write(patch)
        self._last_written = comparable
        self._last_write_at = self.clock()

    def adopt(self, status: Mapping[str, Any]) -> None:
        """Start from the stored status (keeps lastTransitionTime across restarts)."""
        try:
            parsed = models.CustomActionWorkerStatus.model_validate(dict(status or {}))
        except ValueError:
            return
        self._conditions = list(parsed.conditions)
        self._last_poll = parsed.last_poll_time
        self._last_error = parsed.last_error
