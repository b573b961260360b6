"""Typed, async client over boto3 for the CodePipeline job API.

Every call runs in the operator's executor (boto3 blocks), passes through one shared rate
budget per (account, region) so that all workers together stay under the service's limits,
and is retried with exponential backoff and full jitter when the service throttles, answers
5xx or times out. Service errors are mapped to a small exception hierarchy so that the
stages can decide by type, never by parsing strings.

botocore's own retries are switched off: a retry that bypassed the rate budget would defeat
it, and our backoff must be visible (the worker's condition says "Throttled").
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

import boto3
import botocore.credentials
import botocore.exceptions
import botocore.session
from botocore.config import Config

from cpworker import awssession
from cpworker.jobdata import ALL_SECRET, SecretProperties
from cpworker.ratebudget import Lane, RateBudget, urgent_reserve_for
from cpworker.results import ReportCall

if TYPE_CHECKING:
    from mypy_boto3_codepipeline.client import CodePipelineClient as BotoCodePipeline
    from mypy_boto3_codepipeline.type_defs import (
        ActionTypeIdTypeDef,
        JobDetailsTypeDef,
        JobTypeDef,
    )

log = logging.getLogger(__name__)

T = TypeVar("T")

# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class CodePipelineError(Exception):
    """A CodePipeline call failed. `code` is the service's error code (never secret)."""

    retryable = False

    def __init__(self, operation: str, code: str, message: str) -> None:
        super().__init__(f"{operation}: {code}: {message}")
        self.operation = operation
        self.code = code
        self.detail = message


class InvalidNonceError(CodePipelineError):
    """The nonce is not the current one: another worker (or a newer delivery) holds the job."""


class JobNotFoundError(CodePipelineError):
    """The job id is unknown to CodePipeline."""


class InvalidJobStateError(CodePipelineError):
    """The job has already ended (reported, stopped, superseded or timed out)."""


class ActionTypeNotFoundError(CodePipelineError):
    """The action type does not exist in this account and region."""


class AccessDeniedError(CodePipelineError):
    """The operator's (or the worker's role's) credentials may not make this call."""


class CredentialsExpiredError(AccessDeniedError):
    """The credentials of the call have expired (they renew by themselves if refreshable)."""


class CredentialsInvalidError(AccessDeniedError):
    """AWS does not know the credentials of the call (revoked, deleted, another partition)."""


class RoleNotAssumableError(AccessDeniedError):
    """STS refused to let the operator assume the worker's role (trust policy, no such role)."""


class RequestValidationError(CodePipelineError):
    """The request was malformed (a bug, or a value outside the service's limits)."""


class OutputVariablesSizeExceededError(RequestValidationError):
    """The output variables of one action exceed the service's limit."""


class ThrottledError(CodePipelineError):
    """The service throttled the call; retried with backoff."""

    retryable = True


class UnavailableError(CodePipelineError):
    """5xx, a timeout or a connection failure; retried with backoff."""

    retryable = True


_ERROR_CODES: dict[str, type[CodePipelineError]] = {
    "InvalidNonceException": InvalidNonceError,
    "JobNotFoundException": JobNotFoundError,
    "InvalidJobStateException": InvalidJobStateError,
    "ActionTypeNotFoundException": ActionTypeNotFoundError,
    "AccessDeniedException": AccessDeniedError,
    "AccessDenied": AccessDeniedError,
    "UnauthorizedOperation": AccessDeniedError,
    "UnrecognizedClientException": CredentialsInvalidError,
    "InvalidClientTokenId": CredentialsInvalidError,
    "ExpiredTokenException": CredentialsExpiredError,
    "ExpiredToken": CredentialsExpiredError,
    "RequestExpired": CredentialsExpiredError,
    "ValidationException": RequestValidationError,
    "OutputVariablesSizeExceededException": OutputVariablesSizeExceededError,
    "ThrottlingException": ThrottledError,
    "Throttling": ThrottledError,
    "TooManyRequestsException": ThrottledError,
    "RequestLimitExceeded": ThrottledError,
    "LimitExceededException": ThrottledError,
    "ServiceUnavailableException": UnavailableError,
    "InternalFailure": UnavailableError,
    "InternalServerError": UnavailableError,
}


class RoleAssumptionFailed(botocore.exceptions.BotoCoreError):
    """STS refused AssumeRole for a worker's role while botocore refreshed its credentials.

    Raised from inside the refresh (botocore lets it through to the call that needed the
    credentials), so that the call's error names the role, not the operation.
    """

    fmt = "AssumeRole failed: {code}"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code=code)
        self.code = code
        self.message = message


# STS answers that are the operator's own identity's problem (or passing), not the role's.
_NOT_THE_ROLES_FAULT: Final = frozenset(
    {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "RequestExpired"}
)


def map_error(operation: str, exc: BaseException) -> CodePipelineError:
    """Translate a botocore exception into our hierarchy (messages carry no request data)."""
    if isinstance(exc, RoleAssumptionFailed):
        return RoleNotAssumableError(operation, exc.code, exc.message)
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        message = str(error.get("Message", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        kind = _ERROR_CODES.get(code)
        if kind is None:
            kind = UnavailableError if status >= 500 else CodePipelineError
        return kind(operation, code, message)
    if isinstance(
        exc,
        botocore.exceptions.ConnectionError
        | botocore.exceptions.HTTPClientError
        | botocore.exceptions.ReadTimeoutError
        | botocore.exceptions.ConnectTimeoutError,
    ):
        return UnavailableError(operation, type(exc).__name__, "the service could not be reached")
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return AccessDeniedError(operation, "NoCredentials", "no AWS credentials are configured")
    return CodePipelineError(operation, type(exc).__name__, "unexpected client error")


# --------------------------------------------------------------------------------------------
# Retries
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter (AWS architecture blog) for retryable errors."""

    max_attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 10.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return (rng or random).uniform(0, ceiling)


# The custom action types of a region change rarely (Terraform creates them): one listing
# serves every worker for this long, and a type it does not know is looked up again at most
# this often.
CATALOGUE_TTL: Final = 300.0
CATALOGUE_MISS_RETRY: Final = 30.0
# Pipeline versions remembered (each a GetPipeline saved per event of that version).
PIPELINE_CACHE_SIZE: Final = 256


@dataclass(frozen=True)
class ActionTypeInfo:
    """What the operator needs to know of a custom action type."""

    secret: SecretProperties
    # The name of its queryable configuration property (at most one), if any.
    queryable: str | None = None


def _action_type_key(action_type_id: ActionTypeIdTypeDef | Mapping[str, str]) -> tuple[str, ...]:
    return (
        str(action_type_id["category"]),
        str(action_type_id["owner"]),
        str(action_type_id["provider"]),
        str(action_type_id["version"]),
    )


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------


class CallOutcome(StrEnum):
    """How one attempt of a call ended (what an observer is told)."""

    OK = "ok"
    THROTTLED = "throttled"
    ERROR = "error"  # any other error, expected answers (InvalidNonce, InvalidJobState) included


class CallObserver(Protocol):
    """Told about every attempt and every rate-budget wait (metrics.Metrics is one)."""

    def codepipeline_call(
        self, *, region: str, operation: str, outcome: CallOutcome, seconds: float
    ) -> None: ...

    def rate_budget_wait(self, *, region: str, seconds: float, lane: Lane) -> None: ...

    def rate_budget_created(self, *, region: str, budget: RateBudget) -> None: ...


@dataclass
class CallStats:
    """Counters a worker's status and the benchmark read (no secrets, just numbers)."""

    calls: int = 0
    retries: int = 0
    throttled: int = 0
    by_operation: dict[str, int] = field(default_factory=dict)


class CodePipelineClient:
    """The five job calls and ListActionTypes for one (region, role), async and retried."""

    def __init__(
        self,
        boto_client: BotoCodePipeline,
        executor: Executor,
        budget: RateBudget,
        retry: RetryPolicy | None = None,
        *,
        region: str = "",
        role_arn: str | None = None,
        observer: CallObserver | None = None,
    ) -> None:
        self._boto = boto_client
        self._executor = executor
        self._budget = budget
        self._retry = retry or RetryPolicy()
        self._catalogue: dict[tuple[str, ...], ActionTypeInfo] | None = None
        self._catalogue_at = float("-inf")
        self._catalogue_lock = asyncio.Lock()
        # Pipeline declarations by (name, version): immutable once published.
        self._pipelines: dict[tuple[str, int | None], Any] = {}
        self.region = region
        self.role_arn = role_arn
        self.stats = CallStats()
        self._observer = observer

    @property
    def budget(self) -> RateBudget:
        return self._budget

    async def _call(
        self,
        operation: str,
        fn: Callable[[], T],
        lane: Lane = Lane.URGENT,
        who: Hashable | None = None,
    ) -> T:
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            attempt += 1
            queued = time.monotonic()
            await self._budget.acquire(lane, who=who)
            started = time.monotonic()
            self.stats.calls += 1
            self.stats.by_operation[operation] = self.stats.by_operation.get(operation, 0) + 1
            try:
                result = await loop.run_in_executor(self._executor, fn)
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                error = map_error(operation, exc)
            else:
                self._observe(operation, CallOutcome.OK, queued, started, lane)
                return result
            throttled = isinstance(error, ThrottledError)
            self._observe(
                operation,
                CallOutcome.THROTTLED if throttled else CallOutcome.ERROR,
                queued,
                started,
                lane,
            )
            if throttled:
                self.stats.throttled += 1
            if not error.retryable or attempt >= self._retry.max_attempts:
                raise error
            self.stats.retries += 1
            delay = self._retry.delay(attempt)
            log.info(
                "CodePipeline %s failed with %s; retry %d in %.2fs",
                operation,
                error.code,
                attempt,
                delay,
            )
            await asyncio.sleep(delay)

    def _observe(
        self, operation: str, outcome: CallOutcome, queued: float, started: float, lane: Lane
    ) -> None:
        if self._observer is None:
            return
        self._observer.rate_budget_wait(region=self.region, seconds=started - queued, lane=lane)
        self._observer.codepipeline_call(
            region=self.region,
            operation=operation,
            outcome=outcome,
            seconds=time.monotonic() - started,
        )

    async def poll_for_jobs(
        self,
        action_type_id: ActionTypeIdTypeDef,
        max_batch_size: int,
        query_param: Mapping[str, str] | None = None,
        *,
        lane: Lane = Lane.POLL,
        who: Hashable | None = None,
    ) -> list[JobTypeDef]:
        """Jobs for the action type (and query parameter). Idle polls wait in the POLL lane;
        a poll an event asked for is URGENT (a job is about to wait on it). `who` (the
        worker) lets an event promote the idle poll while it waits (RateBudget.promote)."""

        def call() -> list[JobTypeDef]:
            if query_param:
                response = self._boto.poll_for_jobs(
                    actionTypeId=action_type_id,
                    maxBatchSize=max_batch_size,
                    queryParam=dict(query_param),
                )
            else:
                response = self._boto.poll_for_jobs(
                    actionTypeId=action_type_id, maxBatchSize=max_batch_size
                )
            return list(response.get("jobs", []))

        return await self._call("PollForJobs", call, lane, who)

    async def acknowledge_job(self, job_id: str, nonce: str) -> str:
        """Returns the job's status for this nonce: only `InProgress` means "yours"."""

        def call() -> str:
            return str(self._boto.acknowledge_job(jobId=job_id, nonce=nonce)["status"])

        return await self._call("AcknowledgeJob", call)

    async def get_job_details(self, job_id: str) -> JobDetailsTypeDef:
        def call() -> JobDetailsTypeDef:
            return self._boto.get_job_details(jobId=job_id)["jobDetails"]

        return await self._call("GetJobDetails", call)

    async def put_result(self, call: ReportCall) -> None:
        """Send a PutJobSuccessResult / PutJobFailureResult built by `cpworker.results`.

        The call is taken whole, as results built it: its strings are already cleaned and
        within the service model's limits.
        """
        params = dict(call.params)

        def send() -> None:
            getattr(self._boto, call.method)(**params)

        await self._call(call.operation, send)

    async def action_type(
        self, action_type_id: ActionTypeIdTypeDef | Mapping[str, str]
    ) -> ActionTypeInfo | None:
        """What CodePipeline says of this custom action type in this region; None: unknown.

        One ListActionTypes (paged) describes every custom action type of the region, so the
        answer is cached for all workers of this client: refreshed after CATALOGUE_TTL, or
        sooner (at most every CATALOGUE_MISS_RETRY) when asked for a type it does not know
        yet. Raises CodePipelineError when the listing fails (nothing is cached then).
        """
        key = _action_type_key(action_type_id)
        if self._catalogue_stale(key):
            async with self._catalogue_lock:
                if self._catalogue_stale(key):  # not refreshed while we waited for the lock
                    self._catalogue = await self._list_action_types()
                    self._catalogue_at = time.monotonic()
        assert self._catalogue is not None
        return self._catalogue.get(key)

    def _catalogue_stale(self, key: tuple[str, ...]) -> bool:
        age = time.monotonic() - self._catalogue_at
        if self._catalogue is None or age >= CATALOGUE_TTL:
            return True
        return key not in self._catalogue and age >= CATALOGUE_MISS_RETRY

    async def _list_action_types(self) -> dict[tuple[str, ...], ActionTypeInfo]:
        def call() -> dict[tuple[str, ...], ActionTypeInfo]:
            found: dict[tuple[str, ...], ActionTypeInfo] = {}
            paginator = self._boto.get_paginator("list_action_types")
            for page in paginator.paginate(actionOwnerFilter="Custom"):
                for action_type in page.get("actionTypes", []):
                    props = action_type.get("actionConfigurationProperties", [])
                    queryable = [p["name"] for p in props if p.get("queryable")]
                    found[_action_type_key(action_type["id"])] = ActionTypeInfo(
                        secret=SecretProperties(
                            names=frozenset(p["name"] for p in props if p.get("secret"))
                        ),
                        queryable=queryable[0] if queryable else None,
                    )
            return found

        return await self._call("ListActionTypes", call)

    async def action_configuration(
        self, pipeline: str, version: int | None, stage: str, action: str
    ) -> Mapping[str, str] | None:
        """An action's configuration in a pipeline (GetPipeline, cached per pipeline version).

        Used to wake only the worker whose queryParam matches an event's action; None when
        the pipeline or action cannot be read (then every worker of the action type wakes).
        """
        key = (pipeline, version)
        if key not in self._pipelines:

            def call() -> Any:
                if version is None:
                    return self._boto.get_pipeline(name=pipeline)["pipeline"]
                return self._boto.get_pipeline(name=pipeline, version=version)["pipeline"]

            try:
                declaration = await self._call("GetPipeline", call)
            except CodePipelineError as exc:
                log.info(
                    "cannot read pipeline %s (%s): waking every matching worker", pipeline, exc.code
                )
                return None
            while len(self._pipelines) >= PIPELINE_CACHE_SIZE:
                self._pipelines.pop(next(iter(self._pipelines)))
            self._pipelines[key] = declaration
        for stage_declaration in self._pipelines[key].get("stages", []):
            if stage_declaration.get("name") != stage:
                continue
            for declared in stage_declaration.get("actions", []):
                if declared.get("name") == action:
                    return dict(declared.get("configuration") or {})
        return None

    async def secret_properties(
        self, action_type_id: ActionTypeIdTypeDef | Mapping[str, str]
    ) -> SecretProperties:
        """The action type's secret configuration properties.

        Any failure (no permission to list, type missing) answers "all secret", so that a
        value is never exposed because the operator could not tell.
        """
        try:
            info = await self.action_type(action_type_id)
        except CodePipelineError as exc:
            log.warning(
                "cannot describe action type %s (%s); treating every configuration "
                "property as secret",
                "/".join(_action_type_key(action_type_id)),
                exc.code,
            )
            return ALL_SECRET
        return ALL_SECRET if info is None else info.secret


# --------------------------------------------------------------------------------------------
# Clients per (region, role)
# --------------------------------------------------------------------------------------------


def account_of_role(role_arn: str | None) -> str:
    """The account id in a role ARN, or "default" for the operator's own credentials."""
    if role_arn:
        parts = role_arn.split(":")
        if len(parts) >= 5 and parts[4]:
            return parts[4]
    return "default"


@dataclass(frozen=True)
class ClientOptions:
    """Tunables of the client factory (set from the operator's settings)."""

    rate_per_second: float = 10.0
    burst: int = 20
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    session_name: str = "cpworker"
    assume_role_duration: int = 3600
    # Connections per client (botocore's default is 10): as many as threads may call at once.
    max_pool_connections: int = 10


class CodePipelineClients:
    """Hands out one `CodePipelineClient` per (region, roleArn), creating clients lazily.

    Clients for an assumed role use refreshable credentials: botocore calls AssumeRole again
    shortly before the session expires, so long-running operators never hold stale keys.
    """

    def __init__(
        self,
        executor: Executor,
        options: ClientOptions | None = None,
        *,
        observer: CallObserver | None = None,
    ) -> None:
        self._executor = executor
        self.options = options or ClientOptions()
        self._observer = observer
        self._clients: dict[tuple[str, str | None], CodePipelineClient] = {}
        self._budgets: dict[tuple[str, str], RateBudget] = {}
        self._create_lock = threading.Lock()
        self._async_lock: asyncio.Lock | None = None

    def budget_for(self, account: str, region: str) -> RateBudget:
        key = (account, region)
        budget = self._budgets.get(key)
        if budget is None:
            budget = RateBudget(
                self.options.rate_per_second,
                self.options.burst,
                urgent_reserve=urgent_reserve_for(self.options.burst),
            )
            self._budgets[key] = budget
            if self._observer is not None:
                self._observer.rate_budget_created(region=region, budget=budget)
        return budget

    def _boto_config(self) -> Config:
        return Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=self.options.connect_timeout,
            read_timeout=self.options.read_timeout,
            max_pool_connections=self.options.max_pool_connections,
        )

    def _make_boto_client(self, region: str, role_arn: str | None) -> BotoCodePipeline:
        # boto3 sessions are not thread-safe while creating clients; created clients are.
        with self._create_lock:
            if not role_arn:
                session = awssession.session(region)
                return session.client("codepipeline", config=self._boto_config())
            base = awssession.session(region)
            sts = base.client("sts", config=self._boto_config())
            options = self.options

            def refresh() -> dict[str, str]:
                try:
                    creds = sts.assume_role(
                        RoleArn=role_arn,
                        RoleSessionName=options.session_name,
                        DurationSeconds=options.assume_role_duration,
                    )["Credentials"]
                except botocore.exceptions.ClientError as exc:
                    error = exc.response.get("Error", {})
                    code = str(error.get("Code", "Unknown"))
                    status = int(
                        exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0
                    )
                    kind = _ERROR_CODES.get(code)
                    if code in _NOT_THE_ROLES_FAULT or status >= 500 or (kind and kind.retryable):
                        raise  # the operator's own credentials, or STS having a bad moment
                    raise RoleAssumptionFailed(code, str(error.get("Message", ""))) from None
                return {
                    "access_key": creds["AccessKeyId"],
                    "secret_key": creds["SecretAccessKey"],
                    "token": creds["SessionToken"],
                    "expiry_time": creds["Expiration"].isoformat(),
                }

            credentials = botocore.credentials.DeferredRefreshableCredentials(
                refresh_using=refresh, method="sts-assume-role"
            )
            core = awssession.botocore_session()
            # botocore has no public setter for refreshable credentials on a session.
            core._credentials = credentials  # type: ignore[attr-defined]
            session = boto3.session.Session(botocore_session=core, region_name=region)
            return session.client("codepipeline", config=self._boto_config())

    async def for_worker(self, region: str, role_arn: str | None = None) -> CodePipelineClient:
        key = (region, role_arn or None)
        client = self._clients.get(key)
        if client is not None:
            return client
        if self._async_lock is None:
            self._async_lock = asyncio.Lock()
        async with self._async_lock:
            client = self._clients.get(key)
            if client is None:
                loop = asyncio.get_running_loop()
                boto_client = await loop.run_in_executor(
                    self._executor, self._make_boto_client, region, role_arn or None
                )
                client = CodePipelineClient(
                    boto_client,
                    self._executor,
                    self.budget_for(account_of_role(role_arn), region),
                    self.options.retry,
                    region=region,
                    role_arn=role_arn or None,
                    observer=self._observer,
                )
                self._clients[key] = client
        return client


async def gather_limited(aws: list[Awaitable[T]], limit: int) -> list[T]:
    """Await `aws` with at most `limit` running at once (keeps the executor from flooding)."""
    semaphore = asyncio.Semaphore(limit)

    async def one(aw: Awaitable[T]) -> T:
        async with semaphore:
            return await aw

    return list(await asyncio.gather(*(one(a) for a in aws)))
