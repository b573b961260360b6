"""`CodePipelineStandIn`: the server on its own event loop in a daemon thread, with a Python API."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable, Collection
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from cpworker.sandbox.codepipeline.actiontypes import ActionTypeRegistry
from cpworker.sandbox.codepipeline.artifacts import ArtifactStore, SourceError, SourceOutcome
from cpworker.sandbox.codepipeline.engine import Engine, JobTimeline
from cpworker.sandbox.codepipeline.events import EventBus
from cpworker.sandbox.codepipeline.identities import Identities
from cpworker.sandbox.codepipeline.knobs import Faults, StandInConfig
from cpworker.sandbox.codepipeline.requestlog import RequestLog, RequestRecord
from cpworker.sandbox.codepipeline.s3guard import S3Guard, S3Request
from cpworker.sandbox.codepipeline.server import CodePipelineServer, Tamper, Violations
from cpworker.sandbox.codepipeline.service import CodePipelineService
from cpworker.sandbox.codepipeline.stsfront import StsFront

logger = logging.getLogger(__name__)

DEFAULT_ACCOUNT_ID = "123456789012"
TICK_INTERVAL = 0.1  # seconds between background passes (timeouts, continuations)
T = TypeVar("T")


class CodePipelineStandIn:
    """A local CodePipeline on 127.0.0.1 (free port), artifacts in the S3 store at `s3_endpoint`.

    Usage::

        with CodePipelineStandIn(s3_endpoint) as cp:
            client = boto3.client("codepipeline", endpoint_url=cp.url, ...)
    """

    def __init__(
        self,
        s3_endpoint: str,
        region: str = "us-east-1",
        account_id: str = DEFAULT_ACCOUNT_ID,
        config: StandInConfig | None = None,
        faults: Faults | None = None,
        *,
        s3_guard: bool = False,
        sts_front: bool = False,
        credential_markers: tuple[str, str] = ("", ""),
    ) -> None:
        """`credential_markers` start the secret access key and the session token of every
        job credential minted (canaries; tests/conftest.py)."""
        self.s3_endpoint = s3_endpoint
        self.region = region
        self.account_id = account_id
        self.config = config or StandInConfig()
        self.faults = faults or Faults()
        # Which callers AWS would turn away (expired/revoked keys, roles): identities.py.
        self.identities = Identities()
        self._log = RequestLog(self.config.request_log_size)
        self._violations = Violations()
        engine = Engine(
            ActionTypeRegistry(),
            ArtifactStore(s3_endpoint, region),
            self.config,
            region=region,
            account_id=account_id,
        )
        self.engine = engine
        engine.credentials.markers = credential_markers
        # moto serves SQS on the same endpoint as S3.
        self.events = EventBus(s3_endpoint, region)
        engine.on_action_event = self.events.publish
        self._server = CodePipelineServer(
            CodePipelineService(engine),
            config=self.config,
            faults=self.faults,
            log=self._log,
            violations=self._violations,
            events=self.events,
            identities=self.identities,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._port: int | None = None
        self._guard = S3Guard(s3_endpoint, engine.credentials) if s3_guard else None
        self._guard_runner: web.AppRunner | None = None
        self._guard_port: int | None = None
        self._sts = StsFront(s3_endpoint, self.identities, account_id) if sts_front else None
        self._sts_runner: web.AppRunner | None = None
        self._sts_port: int | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="codepipeline-s3"
        )

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("the stand-in is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def s3_url(self) -> str:
        """Where workers should send S3 requests: the guard when enabled, else moto itself."""
        if self._guard is None:
            return self.s3_endpoint
        if self._guard_port is None:
            raise RuntimeError("the stand-in is not started")
        return f"http://127.0.0.1:{self._guard_port}"

    @property
    def sts_url(self) -> str:
        """Where workers should send STS requests: the STS front when enabled, else moto."""
        if self._sts is None:
            return self.s3_endpoint  # moto serves STS on the same endpoint
        if self._sts_port is None:
            raise RuntimeError("the stand-in is not started")
        return f"http://127.0.0.1:{self._sts_port}"

    @property
    def expired_credentials_refused(self) -> int:
        """How many S3 requests the guard refused for expired job credentials."""
        return self._guard.expired if self._guard is not None else 0

    def deny_s3(
        self, bucket: str, key_prefix: str = "", methods: Collection[str] = ("PUT", "POST")
    ) -> None:
        """With the S3 guard: refuse job credentials these S3 requests (403 AccessDenied),
        as an explicit Deny in the bucket's or the key's policy would."""
        if self._guard is None:
            raise RuntimeError("deny_s3 needs the S3 guard (s3_guard=True)")
        self._guard.deny(bucket, key_prefix, methods)

    def s3_requests(self) -> list[S3Request]:
        """The S3 requests the guard answered, oldest first (empty without the guard)."""
        return self._guard.requests() if self._guard is not None else []

    def start(self) -> CodePipelineStandIn:
        if self._thread is not None:
            raise RuntimeError("the stand-in is already started")
        loop = asyncio.new_event_loop()
        ready: concurrent.futures.Future[int] = concurrent.futures.Future()
        thread = threading.Thread(
            target=self._serve, args=(loop, ready), name="codepipeline-standin", daemon=True
        )
        self._loop, self._thread = loop, thread
        thread.start()
        self._port = ready.result(timeout=30)
        return self

    def _serve(
        self, loop: asyncio.AbstractEventLoop, ready: concurrent.futures.Future[int]
    ) -> None:
        asyncio.set_event_loop(loop)
        try:
            port = loop.run_until_complete(self._open())
        except Exception as exc:  # noqa: BLE001 - handed to the starting thread
            ready.set_exception(exc)
            return
        ready.set_result(port)
        loop.run_forever()
        loop.run_until_complete(self._close())
        loop.close()

    async def _open(self) -> int:
        self._runner = web.AppRunner(self._server.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._ticker = asyncio.create_task(self._tick_forever())
        self.engine.run_blocking = self._run_blocking
        self.events.schedule = self._schedule_send
        if self._guard is not None:
            self._guard_runner = web.AppRunner(
                self._guard.app(), access_log=None, handle_signals=False
            )
            await self._guard_runner.setup()
            guard_site = web.TCPSite(self._guard_runner, "127.0.0.1", 0)
            await guard_site.start()
            self._guard_port = int(self._guard_runner.addresses[0][1])
        if self._sts is not None:
            self._sts_runner = web.AppRunner(self._sts.app(), access_log=None, handle_signals=False)
            await self._sts_runner.setup()
            await web.TCPSite(self._sts_runner, "127.0.0.1", 0).start()
            self._sts_port = int(self._sts_runner.addresses[0][1])
        address = self._runner.addresses[0]
        return int(address[1])

    def _run_blocking(
        self,
        work: Callable[[], SourceOutcome | SourceError],
        done: Callable[[SourceOutcome | SourceError], None],
    ) -> None:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, work)

        def finish(completed: asyncio.Future[SourceOutcome | SourceError]) -> None:
            if completed.cancelled():
                return
            try:
                done(completed.result())
            except Exception:
                logger.exception("stand-in failure finishing a source action")
                self._violations.add("the stand-in failed finishing a source action (see its log)")

        future.add_done_callback(finish)

    def _schedule_send(self, delay: float, send: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()

        def submit() -> None:
            # A send due after shutdown began is dropped, as an event in flight would be.
            with contextlib.suppress(RuntimeError):
                self._executor.submit(send)

        loop.call_later(delay, submit)

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_INTERVAL)
            try:
                self.engine.tick()
            except Exception:  # noqa: BLE001 - a bad pass must not stop later ones
                self._violations.add("the stand-in's background pass failed (see its log)")

    async def _close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._runner is not None:
            await self._runner.cleanup()
        if self._guard_runner is not None:
            await self._guard_runner.cleanup()
        if self._sts_runner is not None:
            await self._sts_runner.cleanup()
        self._executor.shutdown(wait=True, cancel_futures=True)

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop = self._thread = None
        self._port = self._guard_port = self._sts_port = None

    def __enter__(self) -> CodePipelineStandIn:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- for tests -------------------------------------------------------------------------------

    def requests(self) -> list[RequestRecord]:
        """The request log, oldest first: operation, status, latency, outcome, error type."""
        return self._log.records()

    def violations(self) -> list[str]:
        """Conformance violations so far (only checked when `config.strict_conformance`)."""
        return self._violations.items()

    def clear_violations(self) -> None:
        self._violations.clear()

    def tamper(self, operation: str, mutate: Tamper) -> None:
        """Let `mutate` change the next successful answer to `operation` (to test the checks)."""
        self.call(lambda: self._server.tampers.__setitem__(operation, mutate))

    def call(self, function: Callable[[], T]) -> T:
        """Run `function` on the stand-in's loop thread (safe access to `engine` state)."""
        if self._loop is None:
            return function()

        async def run() -> T:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    def jobs(self) -> list[JobTimeline]:
        """Every job so far, oldest first, with its milestones (for benchmarks and assertions)."""
        return self.call(lambda: [job.timeline() for job in self.engine.jobs.values()])

    def job_status(self, job_id: str) -> str:
        return self.call(lambda: self.engine.job(job_id).status)

    def snapshot(self) -> dict[str, Any]:
        """Counts of jobs by status and executions by status, for assertions and the demo."""

        def count() -> dict[str, Any]:
            jobs: dict[str, int] = {}
            for job in self.engine.jobs.values():
                jobs[job.status] = jobs.get(job.status, 0) + 1
            executions: dict[str, int] = {}
            for execution in self.engine.executions.values():
                executions[execution.status] = executions.get(execution.status, 0) + 1
            return {"jobs": jobs, "executions": executions}

        return self.call(count)
