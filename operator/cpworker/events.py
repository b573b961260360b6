"""How CodePipeline's action events reach the operator: one SQS consumer per replica.

CodePipeline publishes "CodePipeline Action Execution State Change" to EventBridge; a rule
(terraform/modules/job-events) routes those of custom action types to an SQS queue. The
consumer long-polls the queue (20 s) on a thread of its own and hands every event to the
operator (`workerloop.on_action_event`), which wakes the workers that can take the job — the
poll is still what claims, because an event carries no job id or nonce — or probes the job
whose action ended. Messages are deleted only after they were acted on; duplicate,
out-of-order, malformed and foreign events are harmless (delivery is at least once, and each
one is only ever a hint).

The consumer's health decides how much the workers rely on it: while receiving works, idle
polls become a rare safety net; when it fails, workers fall back to their polling policy and
say so (`workerstatus`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import botocore.exceptions
from botocore.config import Config

from cpworker import awssession

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)

DETAIL_TYPE: Final = "CodePipeline Action Execution State Change"
SOURCE: Final = "aws.codepipeline"
STARTED: Final = "STARTED"
# An action that ended without our report: its job may still run here and must be probed.
ENDED_STATES: Final = frozenset({"FAILED", "CANCELED", "ABANDONED"})
WAIT_SECONDS: Final = 20  # SQS long polling: the longest wait the service allows
BATCH: Final = 10  # the most messages one ReceiveMessage returns
# A receive that failed, or none that succeeded for this long, makes the queue unhealthy.
HEALTHY_WITHIN: Final = 3 * WAIT_SECONDS


@dataclass(frozen=True)
class ActionEvent:
    """One action execution state change (the parts the operator decides on)."""

    state: str
    # category, owner, provider, version: compared as strings (AWS's own examples show the
    # version both as a number and as a string).
    action_type: tuple[str, str, str, str]
    pipeline: str
    execution_id: str
    stage: str
    action: str
    pipeline_version: int | None = None
    region: str = ""
    account: str = ""


def _text(value: object) -> str:
    """A field as a string; an integral number without its ".0" (version 1 == "1")."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value) if isinstance(value, str | int | float) else ""


def parse_event(body: str) -> ActionEvent | None:
    """The event in an SQS message body, or None when it is not one we act on.

    Accepts the EventBridge event itself, or one wrapped by SNS (`{"Message": "<json>"}`).
    Anything else — other detail types, other sources, missing fields — is foreign: None.
    """
    try:
        document = json.loads(body)
        if isinstance(document, dict) and isinstance(document.get("Message"), str):
            document = json.loads(document["Message"])
    except (TypeError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    if document.get("detail-type") != DETAIL_TYPE or document.get("source") != SOURCE:
        return None
    detail = document.get("detail")
    if not isinstance(detail, Mapping) or not isinstance(detail.get("type"), Mapping):
        return None
    kind = detail["type"]
    action_type = tuple(_text(kind.get(k)) for k in ("category", "owner", "provider", "version"))
    fields = [_text(detail.get(k)) for k in ("state", "pipeline", "execution-id")]
    if not all(action_type) or not all(fields):
        return None
    version = detail.get("version")
    return ActionEvent(
        state=fields[0].upper(),
        action_type=(action_type[0], action_type[1], action_type[2], action_type[3]),
        pipeline=fields[1],
        execution_id=fields[2],
        stage=_text(detail.get("stage")),
        action=_text(detail.get("action")),
        pipeline_version=int(version) if isinstance(version, int | float) else None,
        region=_text(document.get("region") or detail.get("region")),
        account=_text(document.get("account")),
    )


def queue_region(queue_url: str, default: str | None) -> str | None:
    """The region in an SQS queue URL (https://sqs.<region>.amazonaws.com/...), else default."""
    host = queue_url.split("://", 1)[-1].split("/", 1)[0]
    parts = host.split(".")
    if len(parts) >= 3 and parts[0] == "sqs" and parts[-2:] == ["amazonaws", "com"]:
        return parts[1]
    return default


# What the operator does with one event; the message is deleted once it returns.
Handler = Callable[[ActionEvent], Awaitable[None]]


class EventConsumer:
    """One long-polling SQS consumer: a daemon thread receives, the event loop acts."""

    def __init__(
        self,
        queue_url: str,
        region: str | None,
        handle: Handler,
        executor: Executor,
        *,
        on_received: Callable[[], None] = lambda: None,
    ) -> None:
        self.queue_url = queue_url
        self._executor = executor
        self._on_received = on_received
        self.region = region
        self._handle = handle
        self._client: SQSClient | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_receive_ok = float("-inf")  # time.monotonic() of the last good receive
        self.last_error: str | None = None
        self.received = 0
        self.acted = 0
        self.calls = 0

    @property
    def healthy(self) -> bool:
        """Receiving works: the last receive succeeded, recently."""
        return self.last_error is None and time.monotonic() - self.last_receive_ok < HEALTHY_WITHIN

    def _sqs(self) -> SQSClient:
        if self._client is None:
            self._client = awssession.session(self.region).client(
                "sqs",
                # The long poll must outlast the wait; retries are ours (the receive loop).
                config=Config(
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    connect_timeout=5,
                    read_timeout=WAIT_SECONDS + 10,
                ),
            )
        return self._client

    def check(self) -> None:
        """Is the queue there and readable? (GetQueueAttributes, blocking.) So that health is
        known before the first worker shows its status, not only after a 20 s long poll."""
        try:
            self.calls += 1
            self._sqs().get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            self.last_error = _describe(exc)
            log.warning("cannot read the events queue (%s); polling goes on", self.last_error)
            return
        self.last_error = None
        self.last_receive_ok = time.monotonic()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._thread is not None:
            return
        # A daemon thread: a 20 s long poll must not hold up the operator's shutdown.
        self._thread = threading.Thread(
            target=self._receive_loop, args=(loop,), name="cpworker-events", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _receive_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        delay = 1.0
        while not self._stop.is_set():
            try:
                self.calls += 1
                messages = (
                    self._sqs()
                    .receive_message(
                        QueueUrl=self.queue_url,
                        MaxNumberOfMessages=BATCH,
                        WaitTimeSeconds=WAIT_SECONDS,
                    )
                    .get("Messages", [])
                )
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                self.last_error = _describe(exc)
                log.warning(
                    "the events queue cannot be read (%s); polling carries on", self.last_error
                )
                self._stop.wait(delay)
                delay = min(60.0, delay * 2)
                continue
            self.last_error = None
            self.last_receive_ok = time.monotonic()
            delay = 1.0
            if messages and not self._stop.is_set():
                future = asyncio.run_coroutine_threadsafe(self._act(messages), loop)
                with contextlib.suppress(Exception):
                    future.result(timeout=120)

    async def _act(self, messages: list[Any]) -> None:
        """Act on each message, then delete the ones acted on (a failed one comes back)."""
        done: list[Any] = []
        for message in messages:
            self.received += 1
            self._on_received()
            event = parse_event(str(message.get("Body", "")))
            try:
                if event is not None:
                    await self._handle(event)
                    self.acted += 1
            except Exception:
                log.exception("acting on an action event failed; it will be received again")
                continue
            done.append({"Id": str(len(done)), "ReceiptHandle": message["ReceiptHandle"]})
        if done:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._delete, done)

    def _delete(self, entries: list[Any]) -> None:
        try:
            self.calls += 1
            self._sqs().delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            # Not deleted: they are received again after the visibility timeout (harmless).
            log.warning("could not delete handled events: %s", _describe(exc))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'Error')}: {error.get('Message', '')}"[:300]
    return type(exc).__name__
