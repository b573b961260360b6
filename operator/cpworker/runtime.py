"""What one operator instance shares between its handlers (kept in kopf's `memo`).

Every operator builds its own Runtime, so two operators run side by side in one process (the
two-replica tests) without sharing anything: executor, clients, the Job record writer, the
reporter, the registry of running workers, and the events consumer they share.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from cpworker import codepipeline, events, kube, kubeconn, wakeups
from cpworker.jobindex import VanishedJobs
from cpworker.jobrecord import JobRecords
from cpworker.metrics import Metrics
from cpworker.poller import PollLoop
from cpworker.reporter import Reporter
from cpworker.secretsweeper import SecretSweeper
from cpworker.settings import OperatorSettings

log = logging.getLogger(__name__)

# Environment variable naming a stage at which the operator exits abruptly: restart-safety
# tests only (the stages call `Runtime.hook`). Never set in production.
CRASH_AT_ENV: Final = "CPWORKER_TEST_CRASH_AT"
CRASH_EXIT_CODE: Final = 86
# After a job arrived that no event announced, workers of its action type poll at their own
# policy for this long (events may be lost; one lost event is not a broken rule).
MISSED_EVENT_FALLBACK_SECONDS: Final = 1800.0
# An idle poll may find a job a moment before its event is acted on (events are delivered
# within seconds, and late at times): a job counts as unannounced only when no event for its
# action type came within this long on either side of the poll that found it.
EVENT_GRACE_SECONDS: Final = 30.0

ActionTypeKey = tuple[str, str, str, str]  # category, owner, provider, version


class RunningWorker(Protocol):
    """What the runtime needs of a running worker (workerloop.Worker)."""

    loop: PollLoop
    namespace: str
    name: str

    def action_type_key(self) -> ActionTypeKey | None: ...

    def query_param(self) -> Mapping[str, str]: ...

    async def client(self) -> codepipeline.CodePipelineClient: ...

    def region(self) -> str | None: ...

    def probe_action(self, pipeline: str, execution_id: str, stage: str, action: str) -> bool: ...


@dataclass
class Runtime:
    settings: OperatorSettings
    executor: concurrent.futures.ThreadPoolExecutor
    kube: kube.KubeClient
    clients: codepipeline.CodePipelineClients
    records: JobRecords
    reporter: Reporter
    metrics: Metrics
    # Running workers by (namespace, worker name) and (namespace, worker label value).
    workers: dict[tuple[str, str], RunningWorker] = field(default_factory=dict)
    # Workers being deleted here (their finalizer drains or cancels their Jobs), by the same
    # two keys: a shard still acts on their Jobs' events.
    draining: set[tuple[str, str]] = field(default_factory=set)
    # Job names this process is claiming right now (recovery leaves them alone).
    claiming_now: set[str] = field(default_factory=set)
    crash_at: str | None = None
    # The events queue consumer, while any worker runs here (a standby replica runs none).
    consumer: events.EventConsumer | None = None
    # When a job of an action type arrived that no event announced (monotonic seconds).
    missed_event_at: dict[ActionTypeKey, float] = field(default_factory=dict)
    # When the last STARTED event of an action type arrived (monotonic seconds).
    last_event_at: dict[ActionTypeKey, float] = field(default_factory=dict)
    event_grace_seconds: float = EVENT_GRACE_SECONDS
    # Jobs the watch index still holds that vanished in a watch gap (inflight finds them).
    vanished: VanishedJobs = field(default_factory=VanishedJobs)
    # "<pod uid>/<what>" this process recorded on the pod's Job (each written once).
    recorded_pod_ends: set[str] = field(default_factory=set)
    # Deletes the Secrets of Jobs gone or done with them (secretsweeper).
    sweeper: SecretSweeper = field(init=False)
    # Work started by a watch event that outlives its handler (reports): held until done.
    background: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.sweeper = SecretSweeper(self.records)

    @classmethod
    def create(
        cls,
        settings: OperatorSettings,
        *,
        kubeconfig: str | None = None,
        crash_at: str | None = None,
    ) -> Runtime:
        executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.executor_threads, thread_name_prefix="cpworker-io"
        )
        metrics = Metrics()
        # As many connections to the API server as the executor has threads for AWS: the
        # operator's concurrency is the same either way.
        kube_client = kube.KubeClient(
            kubeconn.load(kubeconfig), observer=metrics, pool_size=settings.executor_threads
        )
        options = codepipeline.ClientOptions(
            rate_per_second=settings.rate_per_second,
            burst=settings.rate_burst,
            max_pool_connections=settings.executor_threads,
        )
        clients = codepipeline.CodePipelineClients(executor, options, observer=metrics)
        records = JobRecords(kube_client)
        runtime = cls(
            settings=settings,
            executor=executor,
            kube=kube_client,
            clients=clients,
            records=records,
            reporter=Reporter(
                records=records,
                kube=kube_client,
                clients=clients,
                metrics=metrics,
                finished_ttl_seconds=settings.finished_job_ttl_seconds,
                lease_seconds=settings.report_lease_seconds,
            ),
            metrics=metrics,
            crash_at=crash_at if crash_at is not None else os.environ.get(CRASH_AT_ENV),
        )
        runtime.reporter.hook = runtime.hook
        return runtime

    def hook(self, stage: str) -> None:
        """Stage boundary: exits abruptly when a restart test asked for it."""
        if self.crash_at and self.crash_at == stage:
            log.warning("crash requested at %s: exiting", stage)
            logging.shutdown()
            os._exit(CRASH_EXIT_CODE)

    # ---- running workers -------------------------------------------------------------------

    async def register(
        self, worker: RunningWorker, keys: list[tuple[str, str]], on_event: events.Handler
    ) -> None:
        """A worker starts; the first one starts the events consumer (if configured)."""
        for key in keys:
            self.workers[key] = worker
        queue_url = self.settings.events_queue_url
        if queue_url and self.consumer is None:
            region = self.settings.events_queue_region or events.queue_region(
                queue_url, self.settings.default_region
            )
            consumer = events.EventConsumer(
                queue_url, region, on_event, self.executor, on_received=self.metrics.event_received
            )
            self.consumer = consumer
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self.executor, consumer.check)
            consumer.start(loop)

    def unregister(self, keys: list[tuple[str, str]]) -> None:
        """A worker stops; the last one stops the events consumer."""
        for key in keys:
            self.workers.pop(key, None)
        if not self.workers and self.consumer is not None:
            self.consumer.stop()
            self.consumer = None

    def running_workers(self) -> list[RunningWorker]:
        """Each running worker once (the registry holds two keys per worker)."""
        return list({id(w): w for w in self.workers.values()}.values())

    # ---- what wakes workers --------------------------------------------------------------

    def wakeups(self, action_type: ActionTypeKey | None) -> wakeups.Wakeups:
        missed = self.missed_event_at.get(action_type) if action_type else None
        return wakeups.wakeups(
            queue_configured=bool(self.settings.events_queue_url),
            queue_healthy=self.consumer is not None and self.consumer.healthy,
            missed_event_at=missed,
            now=time.monotonic(),
            fallback_seconds=MISSED_EVENT_FALLBACK_SECONDS,
        )

    def job_without_event(self, action_type: ActionTypeKey) -> None:
        """An idle poll found a job: unless its event came (or comes) within the grace, the
        action type's events are not arriving; its workers then poll at their own policy."""
        found_at, grace = time.monotonic(), self.event_grace_seconds
        if found_at - self.last_event_at.get(action_type, float("-inf")) <= grace:
            return

        def judge() -> None:
            if self.last_event_at.get(action_type, float("-inf")) < found_at - grace:
                self.event_missed(action_type)

        asyncio.get_running_loop().call_later(grace, judge)

    def event_missed(self, action_type: ActionTypeKey) -> None:
        """A job arrived that no event announced: poll at the policy for a while."""
        if self.wakeups(action_type) is wakeups.Wakeups.EVENTS:
            log.warning(
                "a job of %s arrived without its event: polling at the workers' own interval",
                "/".join(action_type),
            )
        self.missed_event_at[action_type] = time.monotonic()

    def event_seen(self, action_type: ActionTypeKey) -> None:
        """An event of this action type arrived: events work for it (again)."""
        self.last_event_at[action_type] = time.monotonic()
        self.missed_event_at.pop(action_type, None)

    def cancel_probe_seconds(self) -> float:
        """How often running jobs are probed: rarer while ended-action events probe them."""
        if self.consumer is not None and self.consumer.healthy:
            return max(
                self.settings.cancel_probe_seconds, self.settings.events_cancel_probe_seconds
            )
        return self.settings.cancel_probe_seconds

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run `work` beside the handler that started it (its errors are its own to log)."""
        task = asyncio.create_task(work, name=name)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def stop_background(self) -> None:
        """Cancel what still runs in the background: a report cut short is repeated by the
        next operator (CodePipeline then says "already ended" if the result got there)."""
        tasks = list(self.background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.stop()
        self.executor.shutdown(wait=False, cancel_futures=True)
