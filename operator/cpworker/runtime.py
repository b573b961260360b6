"""What one operator instance shares between its handlers (kept in kopf's `memo`).

Every operator builds its own Runtime, so two operators run side by side in one process (the
two-replica tests) without sharing anything: executor, clients, the Job record writer, the
reporter, and the registry of running worker loops.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from cpworker import codepipeline, kube
from cpworker.jobrecord import JobRecords
from cpworker.reporter import Reporter
from cpworker.settings import OperatorSettings

if TYPE_CHECKING:
    from cpworker import poller

log = logging.getLogger(__name__)

# Environment variable naming a stage at which the operator exits abruptly: restart-safety
# tests only (the stages call `Runtime.hook`). Never set in production.
CRASH_AT_ENV: Final = "CPWORKER_TEST_CRASH_AT"
CRASH_EXIT_CODE: Final = 86


@dataclass
class Runtime:
    settings: OperatorSettings
    executor: concurrent.futures.ThreadPoolExecutor
    kube: kube.KubeClient
    clients: codepipeline.CodePipelineClients
    records: JobRecords
    reporter: Reporter
    # Running worker loops by (namespace, worker name) and (namespace, worker label value).
    loops: dict[tuple[str, str], poller.PollLoop] = field(default_factory=dict)
    # Job names this process is claiming right now (recovery leaves them alone).
    claiming_now: set[str] = field(default_factory=set)
    crash_at: str | None = None

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
        kube_client = kube.KubeClient(kube.load_api_client(kubeconfig), executor)
        options = codepipeline.ClientOptions(
            rate_per_second=settings.rate_per_second, burst=settings.rate_burst
        )
        clients = codepipeline.CodePipelineClients(executor, options)
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
                finished_ttl_seconds=settings.finished_job_ttl_seconds,
                lease_seconds=settings.report_lease_seconds,
            ),
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

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
