"""The poll loop of one worker: adaptive PollForJobs bounded by live capacity.

One asyncio task per CustomActionWorker (a kopf daemon), all on the operator's single event
loop: idle workers cost a sleeping coroutine, not a thread. Each cycle:

1. capacity = maxInFlight - live labelled Jobs of this worker (from the kopf index, never an
   in-memory counter that could drift); zero free means no poll at all;
2. PollForJobs(maxBatchSize = min(spec.maxBatchSize, free capacity));
3. hand the jobs to the claimer;
4. wait: a full batch polls again at once (a spike drains fast), a hit polls again after the
   minimum interval, an empty answer after a hit backs off exponentially with jitter up to
   the ceiling (straight to it while events wake the worker, or before anything was found);
   throttling and 5xx back off from the minimum and say so in the worker's condition.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import math
import random
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cpworker import codepipeline, models
from cpworker.ratebudget import Lane

if TYPE_CHECKING:
    from mypy_boto3_codepipeline.type_defs import ActionTypeIdTypeDef, JobTypeDef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollTarget:
    """What one worker polls for and how hard (built from the worker's validated spec)."""

    action_type_id: ActionTypeIdTypeDef
    query_param: Mapping[str, str] | None
    max_in_flight: int
    batch_cap: int
    min_interval: float
    max_interval: float
    # Back off step by step after a hit (polling policy), or straight to the ceiling (events
    # wake the worker when a job comes).
    gradual: bool = True

    @classmethod
    def of(
        cls, spec: models.CustomActionWorkerSpec, *, max_interval: float, gradual: bool = True
    ) -> PollTarget:
        """What a validated worker spec polls for, idling up to `max_interval` seconds."""
        action_type: ActionTypeIdTypeDef = spec.action_type_id.model_dump()  # type: ignore[assignment]
        return cls(
            action_type_id=action_type,
            query_param=dict(spec.query_param) or None,
            max_in_flight=spec.max_in_flight,
            batch_cap=spec.batch_cap,
            min_interval=float(spec.polling.min_interval_seconds),
            max_interval=max(float(spec.polling.min_interval_seconds), max_interval),
            gradual=gradual,
        )


@dataclass
class IdleBackoff:
    """Adaptive delay between polls: hits reset it, empty polls and errors grow it.

    Only a hit starts the step-by-step back-off (more jobs may follow it); a worker that has
    found nothing yet idles at its ceiling from the first empty poll. Otherwise every start
    of the operator would cost each worker a dozen polls (1, 2, 4, ... s up to the ceiling):
    at a thousand workers, many minutes of the whole rate budget. With `gradual` off (events
    wake the worker) an empty poll goes straight back to the ceiling, even after a hit.

    Jitter on the idle delay spreads a thousand idle workers over the interval instead of
    polling in lock-step after a restart.
    """

    min_interval: float
    max_interval: float
    rng: random.Random = field(default_factory=random.Random)
    gradual: bool = True
    _ceiling: float = field(default=math.inf)  # inf: no hit yet, idle at the ceiling

    def after_poll(self, returned: int, requested: int) -> float:
        if requested > 0 and returned >= requested:
            self._ceiling = 0.0
            return 0.0
        if returned > 0:
            self._ceiling = 0.0
            return self.min_interval
        return self._grow()

    def after_error(self) -> float:
        # An error is retried step by step from the minimum (the worker shows the error
        # meanwhile), whether or not anything was found before.
        if not math.isfinite(self._ceiling):
            self._ceiling = 0.0
        return self._grow(gradual=True)

    def bounds(self, min_interval: float, max_interval: float, *, gradual: bool = True) -> None:
        """New bounds (a spec change, events healthy or not, the budget's stretch): an idle
        worker stays idle, it does not start over at the minimum."""
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.gradual = gradual
        if math.isfinite(self._ceiling):
            self._ceiling = min(self._ceiling, max_interval)

    def _grow(self, *, gradual: bool | None = None) -> float:
        if not (self.gradual if gradual is None else gradual) or not math.isfinite(self._ceiling):
            self._ceiling = self.max_interval
        elif self._ceiling <= 0:
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
    # Why this poll happened: an event announced a job, or the idle timer (or first poll).
    woken_by_event: bool = False
    first: bool = False


async def poll_once(
    client: codepipeline.CodePipelineClient,
    target: PollTarget,
    live_jobs: int,
    *,
    lane: Lane = Lane.POLL,
    who: Hashable | None = None,
) -> PollOutcome:
    """One PollForJobs within the free capacity; errors are returned, not raised."""
    requested = models.batch_size(target.max_in_flight, target.batch_cap, live_jobs)
    if requested == 0:
        return PollOutcome(polled=False)
    try:
        jobs = await client.poll_for_jobs(
            target.action_type_id, requested, target.query_param, lane=lane, who=who
        )
    except codepipeline.CodePipelineError as exc:
        return PollOutcome(polled=True, requested=requested, error=exc)
    return PollOutcome(polled=True, jobs=jobs, requested=requested)


class Handled(enum.Enum):
    """What `handle_jobs` made of a polled batch."""

    DONE = "done"
    # The claims failed on the way (Kubernetes refused or failed): back off as after a poll
    # error instead of polling on at the hit rate for jobs that cannot be claimed.
    BACK_OFF = "back-off"


# Errors that a retry after a short time will not fix: poll slowly until the spec changes.
SLOW_RETRY_ERRORS = (
    codepipeline.ActionTypeNotFoundError,
    codepipeline.AccessDeniedError,
    codepipeline.RequestValidationError,
)
# ... except credentials that expired or were revoked: refreshable credentials (Pod Identity,
# IRSA, an assumed role) renew by themselves, so the worker backs off as after any error (to
# its maxIntervalSeconds) and recovers within one interval of their return.
RENEWING_ERRORS = (codepipeline.CredentialsExpiredError, codepipeline.CredentialsInvalidError)
# An event can arrive before its job can be polled: polls it asked for that find nothing are
# repeated this many times, `min_interval` apart, before the worker goes back to idling.
EVENT_FOLLOW_UPS = 3
# How often a worker with nothing in flight is supervised anyway (a safety net only: a Job
# event or a claim brings the next round forward).
IDLE_TEND_SECONDS = 60.0


@dataclass
class PollLoop:
    """Runs one worker until `stopped`: supervision every `tend_interval` while `has_work()`
    (else every IDLE_TEND_SECONDS; a claim or a wake-up brings the next round back to
    `tend_interval`), polls when due.

    The callables keep this loop independent of kopf: `target()` returns the current
    PollTarget (or None when the worker must not poll: paused or invalid), `live_jobs()`
    counts live labelled Jobs from the index, `handle_jobs` claims and dispatches (and may ask
    to back off), `tend`
    supervises in-flight jobs, and `report` publishes each poll's outcome to the status.
    `poll_now` (a finished Job, a spec change) makes the next poll immediate; `event_arrived`
    does too, and makes that poll urgent; `supervise_now` runs supervision at once;
    `job_changed` (any Job event) and a bare `wake` bring the next round to within
    `tend_interval`, and let the loop notice a stop. `first_delay()` spreads the first
    polls of a large fleet over the budget.
    """

    client: Callable[[], Awaitable[codepipeline.CodePipelineClient]]
    target: Callable[[], PollTarget | None]
    live_jobs: Callable[[], int]
    handle_jobs: Callable[[Sequence[JobTypeDef]], Awaitable[Handled | None]]
    tend: Callable[[], Awaitable[Any]]
    report: Callable[[PollOutcome], Awaitable[Any]]
    slow_retry_interval: float = 60.0
    tend_interval: float = 5.0
    # Whether the worker has anything to supervise (Jobs in the index, Secrets to retry):
    # without, supervision runs only every IDLE_TEND_SECONDS. At a thousand idle workers the
    # empty rounds every few seconds were most of the operator's idle CPU.
    has_work: Callable[[], bool] = field(default=lambda: True)
    first_delay: Callable[[], float] = field(default=lambda: 0.0)
    # Who this loop's polls are in the rate budget: an event promotes a poll already waiting.
    budget_key: Hashable | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    backoff: IdleBackoff | None = None
    clock: Callable[[], float] = field(default=lambda: asyncio.get_running_loop().time())
    _follow_ups: int = 0
    _polled_once: bool = False
    _poll_now: bool = False
    _tend_now: bool = False
    _claimed: bool = False  # the last poll handed jobs to the claimer
    _client: codepipeline.CodePipelineClient | None = None  # of the latest poll

    def poll_now(self) -> None:
        """Poll at once (capacity freed up, the spec changed)."""
        self._poll_now = True
        self.wake.set()

    def event_arrived(self) -> None:
        """An event says a job for this worker is about to appear: poll now, urgently (an idle
        poll waiting in the rate budget moves to the urgent lane)."""
        self._follow_ups = EVENT_FOLLOW_UPS
        if self._client is not None and self.budget_key is not None:
            self._client.budget.promote(self.budget_key)
        self.poll_now()

    def job_changed(self) -> None:
        """A Job of this worker changed (one a claim left behind, say): supervise within
        `tend_interval`. An idle worker's next round may be a minute away, and a Job the
        index did not hold yet when the last round ran makes it busy again."""
        self.wake.set()

    def supervise_now(self) -> None:
        """Run supervision at once (an event says one of our jobs' actions ended)."""
        self._tend_now = True
        self.wake.set()

    async def poll_cycle(self) -> float:
        """One poll (if allowed); returns seconds until the next poll is due."""
        target = self.target()
        if target is None:
            await self.report(PollOutcome(polled=False))
            return self.slow_retry_interval
        if self.backoff is None:
            self.backoff = IdleBackoff(
                target.min_interval, target.max_interval, gradual=target.gradual
            )
        else:
            self.backoff.bounds(target.min_interval, target.max_interval, gradual=target.gradual)
        woken = self._follow_ups > 0
        self._follow_ups = max(0, self._follow_ups - 1)
        self._client = client = await self.client()
        outcome = await poll_once(
            client,
            target,
            self.live_jobs(),
            lane=Lane.URGENT if woken else Lane.POLL,
            who=self.budget_key,
        )
        # An event that came while the poll waited promoted it: its jobs were announced too
        # (follow-ups are set only by events, and were none when an idle poll began).
        announced = woken or self._follow_ups > 0
        outcome = dataclasses.replace(
            outcome, woken_by_event=announced, first=not self._polled_once
        )
        self._polled_once = self._polled_once or outcome.polled
        await self.report(outcome)
        if not outcome.polled:
            # No capacity: a finishing Job wakes us; the interval is only a safety net.
            return target.max_interval
        if outcome.error is not None:
            if isinstance(outcome.error, SLOW_RETRY_ERRORS) and not isinstance(
                outcome.error, RENEWING_ERRORS
            ):
                return self.slow_retry_interval
            return self.backoff.after_error()
        handled = Handled.DONE
        if outcome.jobs:
            self._follow_ups = 0
            self._claimed = True
            handled = await self.handle_jobs(outcome.jobs) or Handled.DONE
        if handled is Handled.BACK_OFF:
            delay = self.backoff.after_error()
        else:
            delay = self.backoff.after_poll(len(outcome.jobs), outcome.requested)
        if self._follow_ups > 0:
            return min(delay, target.min_interval)
        return delay

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
        """Until `stopped()`; whoever stops the loop must also set `wake` (it may be asleep)."""
        next_poll = self.clock() + self.first_delay()
        next_tend = self.clock()
        while not stopped():
            if self.wake.is_set():
                self.wake.clear()
                # What woke us (a Job's event, a spec change) may have brought work to tend.
                next_tend = min(next_tend, self.clock() + self.tend_interval)
                if self._poll_now:
                    self._poll_now = False
                    next_poll = min(next_poll, self.clock())
                if self._tend_now:
                    self._tend_now = False
                    next_tend = self.clock()
            if self.clock() >= next_tend:
                await self._guarded(self.tend, None)
                next_tend = self.clock() + self._tend_delay()
            if self.clock() >= next_poll:
                delay = await self._guarded(self.poll_cycle, self.slow_retry_interval / 4)
                next_poll = self.clock() + delay
                if self._claimed:
                    # The claims made Jobs to look after (the index may not show them yet).
                    self._claimed = False
                    next_tend = min(next_tend, self.clock() + self.tend_interval)
            wait = min(next_poll, next_tend) - self.clock()
            if wait > 0 and not stopped():
                await self.sleep(wait)

    def _tend_delay(self) -> float:
        return self.tend_interval if self.has_work() else max(self.tend_interval, IDLE_TEND_SECONDS)

    async def sleep(self, delay: float) -> None:
        """Sleep up to `delay`, cut short by `wake` (a finished Job, an event, a stop)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self.wake.wait()
