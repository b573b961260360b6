"""cpworker.codepipeline against the CodePipeline stand-in: real boto3 over loopback HTTP."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterator
from typing import Any

import pytest

from cpworker import codepipeline as cp
from cpworker import events, results
from cpworker.ratebudget import Lane

REGION = "us-east-1"


@pytest.fixture
def executor() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    pool = concurrent.futures.ThreadPoolExecutor(4)
    yield pool
    pool.shutdown(wait=False)


@pytest.fixture
def clients(
    aws_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    executor: concurrent.futures.ThreadPoolExecutor,
) -> cp.CodePipelineClients:
    for key, value in aws_env.items():
        monkeypatch.setenv(key, value)
    fast = cp.RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)
    options = cp.ClientOptions(rate_per_second=1000, burst=1000, retry=fast)
    return cp.CodePipelineClients(executor, options)


async def test_job_calls_round_trip(
    clients: cp.CodePipelineClients, cp_scenario: Any, cp_client: Any
) -> None:
    scenario = cp_scenario(secret_configuration={"Password": "hunter2-secret"})
    scenario.start(cp_client)
    client = await clients.for_worker(REGION)
    jobs: list[Any] = []
    for _ in range(50):
        jobs = await client.poll_for_jobs(scenario.action_type_id, 5, scenario.query_param)
        if jobs:
            break
    assert len(jobs) == 1
    job = jobs[0]
    assert await client.acknowledge_job(job["id"], job["nonce"]) == "InProgress"
    # A repeat acknowledgement answers the job's current status (the cancellation probe).
    assert await client.acknowledge_job(job["id"], job["nonce"]) == "InProgress"
    details = await client.get_job_details(job["id"])
    assert details["id"] == job["id"]
    secret = await client.secret_properties(scenario.action_type_id)
    assert secret.is_secret("Password")
    assert not secret.is_secret("Pool")
    await client.put_result(
        results.success_result(
            job_id=job["id"],
            external_execution_id="ns/cpw-x",
            report=results.ContainerReport(summary="done"),
        )
    )
    with pytest.raises(cp.InvalidJobStateError):
        await client.put_result(
            results.failure_result(job_id=job["id"], failure_type="JobFailed", message="late")
        )
    assert client.stats.by_operation["AcknowledgeJob"] == 2


async def test_errors_map_to_the_hierarchy(
    clients: cp.CodePipelineClients, cp_scenario: Any
) -> None:
    scenario = cp_scenario()
    client = await clients.for_worker(REGION)
    missing = {**scenario.action_type_id, "provider": "NoSuchProvider"}
    with pytest.raises(cp.ActionTypeNotFoundError):
        await client.poll_for_jobs(missing, 1, scenario.query_param)  # type: ignore[arg-type]
    with pytest.raises(cp.JobNotFoundError):
        await client.acknowledge_job("00000000-0000-0000-0000-000000000000", "nonce")
    with pytest.raises(cp.RequestValidationError):
        await client.poll_for_jobs(scenario.action_type_id, 1, {"Wrong": "x"})


async def test_invalid_nonce_is_its_own_error(
    clients: cp.CodePipelineClients, cp_scenario: Any, cp_client: Any
) -> None:
    scenario = cp_scenario()
    scenario.start(cp_client)
    client = await clients.for_worker(REGION)
    job = scenario.wait_for_jobs(cp_client)[0]
    with pytest.raises(cp.InvalidNonceError):
        await client.acknowledge_job(job["id"], "not-the-nonce")


async def test_throttling_and_5xx_are_retried(
    clients: cp.CodePipelineClients, cp_scenario: Any, codepipeline: Any
) -> None:
    scenario = cp_scenario()
    client = await clients.for_worker(REGION)
    codepipeline.faults.set("PollForJobs", throttle_next=2)
    assert await client.poll_for_jobs(scenario.action_type_id, 1, scenario.query_param) == []
    assert client.stats.throttled == 2
    codepipeline.faults.set("PollForJobs", error_next=1, error_status=503)
    assert await client.poll_for_jobs(scenario.action_type_id, 1, scenario.query_param) == []
    assert client.stats.retries == 3


async def test_retries_give_up_with_a_typed_error(
    clients: cp.CodePipelineClients, cp_scenario: Any, codepipeline: Any
) -> None:
    scenario = cp_scenario()
    client = await clients.for_worker(REGION)
    codepipeline.faults.set("PollForJobs", throttle_next=10)
    with pytest.raises(cp.ThrottledError):
        await client.poll_for_jobs(scenario.action_type_id, 1, scenario.query_param)
    assert client.stats.by_operation["PollForJobs"] == 4  # max_attempts


async def test_secret_properties_fail_safe(
    clients: cp.CodePipelineClients, cp_scenario: Any, codepipeline: Any
) -> None:
    scenario = cp_scenario()
    client = await clients.for_worker(REGION)
    codepipeline.faults.set("ListActionTypes", error_next=10, error_status=500)
    secret = await client.secret_properties(scenario.action_type_id)
    assert secret.all_secret
    assert secret.is_secret("Pool")
    codepipeline.faults.clear()
    # Failures are not cached: the next job learns the real answer.
    assert not (await client.secret_properties(scenario.action_type_id)).is_secret("Pool")


async def test_rate_budget_bounds_all_workers_together(
    aws_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    executor: concurrent.futures.ThreadPoolExecutor,
    cp_scenario: Any,
    codepipeline: Any,
) -> None:
    for key, value in aws_env.items():
        monkeypatch.setenv(key, value)
    rate, burst = 20.0, 2
    clients = codepipeline_clients(executor, rate, burst)
    scenario = cp_scenario()
    # Two "workers" (same account and region) share one budget.
    first = await clients.for_worker(REGION)
    second = await clients.for_worker(REGION, None)
    assert first.budget is second.budget
    calls = [
        c.poll_for_jobs(scenario.action_type_id, 1, scenario.query_param)
        for c in (first, second)
        for _ in range(15)
    ]
    await asyncio.gather(*calls)
    times = sorted(r.at for r in codepipeline.requests() if r.operation == "PollForJobs")
    assert len(times) == 30
    # In any one-second window: at most burst + rate calls (an upper bound: cannot flake slow).
    for i, start in enumerate(times):
        in_window = sum(1 for t in times[i:] if t - start < 1.0)
        assert in_window <= burst + rate + 1


async def test_idle_polls_leave_tokens_for_urgent_calls(
    aws_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    executor: concurrent.futures.ThreadPoolExecutor,
    cp_scenario: Any,
    codepipeline: Any,
) -> None:
    for key, value in aws_env.items():
        monkeypatch.setenv(key, value)
    # A slow budget: a token every 2 s, a burst of 3, of which idle polls leave 1.
    clients = codepipeline_clients(executor, 0.5, 3)
    scenario = cp_scenario()
    client = await clients.for_worker(REGION)
    assert client.budget.urgent_reserve == 1
    for _ in range(2):
        await client.poll_for_jobs(scenario.action_type_id, 1, scenario.query_param)
    third_poll = asyncio.ensure_future(
        client.poll_for_jobs(scenario.action_type_id, 1, scenario.query_param)
    )
    await asyncio.sleep(0)
    assert client.budget.queued(Lane.POLL) == 1
    # A claim's call finds the token the polls left, at once.
    with pytest.raises(cp.JobNotFoundError):
        await client.get_job_details("00000000-0000-4000-8000-000000000000")
    assert not third_poll.done()
    third_poll.cancel()
    operations = [r.operation for r in codepipeline.requests()]
    assert operations[-3:] == ["PollForJobs", "PollForJobs", "GetJobDetails"]


def codepipeline_clients(
    executor: concurrent.futures.Executor, rate: float, burst: int
) -> cp.CodePipelineClients:
    return cp.CodePipelineClients(executor, cp.ClientOptions(rate_per_second=rate, burst=burst))


async def test_worker_role_is_assumed_through_sts(
    clients: cp.CodePipelineClients, cp_scenario: Any
) -> None:
    scenario = cp_scenario()
    role = "arn:aws:iam::210987654321:role/cpworker-other-account"
    client = await clients.for_worker(REGION, role)
    assert await client.poll_for_jobs(scenario.action_type_id, 1, scenario.query_param) == []
    # The other account gets its own rate budget, and the client signs with STS credentials.
    default = await clients.for_worker(REGION)
    assert client.budget is not default.budget
    assert cp.account_of_role(role) == "210987654321"
    boto: Any = client._boto  # white-box: botocore's signer holds the credentials
    credentials = boto._request_signer._credentials
    assert credentials.method == "sts-assume-role"
    assert credentials.get_frozen_credentials().access_key != "AKIASANDBOXEXAMPLE00"


async def test_every_region_and_role_shares_one_copy_of_botocores_data(
    clients: cp.CodePipelineClients,
    cp_scenario: Any,
    executor: concurrent.futures.ThreadPoolExecutor,
) -> None:
    """A session per region and role used to load its own endpoint data and models (about
    9 MiB each); they share one loader now, and each still signs with its own credentials."""
    scenario = cp_scenario()
    role = "arn:aws:iam::210987654321:role/cpworker-other-account"
    default = await clients.for_worker(REGION)
    other_region = await clients.for_worker("eu-west-1")
    assumed = await clients.for_worker(REGION, role)
    assert await assumed.poll_for_jobs(scenario.action_type_id, 1, scenario.query_param) == []
    queue = f"https://sqs.{REGION}.amazonaws.com/123456789012/cpworker-events"
    consumer = events.EventConsumer(queue, REGION, lambda _event: asyncio.sleep(0), executor)
    boto: list[Any] = [c._boto for c in (default, other_region, assumed)]  # white-box
    loaders = {id(b._loader) for b in [*boto, consumer._sqs()]}
    assert len(loaders) == 1
    signers = [b._request_signer._credentials.get_frozen_credentials().access_key for b in boto]
    assert signers[0] == signers[1] != signers[2]
