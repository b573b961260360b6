"""The clients tell their observer (the operator's metrics) about every attempt: real boto3
against the CodePipeline stand-in and the kubernetes client against the Kubernetes stand-in,
read back from the exposition."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from cpworker import codepipeline as cp
from cpworker import kube as k8s
from cpworker import kubeconn
from cpworker.metrics import Metrics
from tests.integration.operator.test_kube_client import job_manifest
from tests.scrape import Scrape

REGION = "us-east-1"
NAMESPACE = "default"


def read(metrics: Metrics) -> Scrape:
    return Scrape(generate_latest(metrics.registry).decode())


@pytest.fixture
def executor() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    pool = concurrent.futures.ThreadPoolExecutor(4)
    yield pool
    pool.shutdown(wait=False)


async def test_codepipeline_attempts_outcomes_and_budget_waits(
    *,
    aws_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    executor: concurrent.futures.ThreadPoolExecutor,
    cp_scenario: Any,
    cp_client: Any,
    codepipeline: Any,
) -> None:
    for key, value in aws_env.items():
        monkeypatch.setenv(key, value)
    metrics = Metrics(process_metrics=False)
    fast = cp.RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)
    # A budget of one call per 0.2 s, so some calls have to wait for it.
    options = cp.ClientOptions(rate_per_second=5, burst=1, retry=fast)
    clients = cp.CodePipelineClients(executor, options, observer=metrics)
    scenario = cp_scenario()
    client = await clients.for_worker(REGION)

    codepipeline.faults.set("PollForJobs", throttle_next=2)
    assert await client.poll_for_jobs(scenario.action_type_id, 1, scenario.query_param) == []
    scenario.start(cp_client)
    job = scenario.wait_for_jobs(cp_client)[0]
    with pytest.raises(cp.InvalidNonceError):
        await client.acknowledge_job(job["id"], "not-the-nonce")

    scrape = read(metrics)
    calls = "cpworker_codepipeline_requests_total"
    assert scrape.value(calls, region=REGION, operation="PollForJobs", outcome="throttled") == 2
    assert scrape.value(calls, region=REGION, operation="PollForJobs", outcome="ok") == 1
    assert scrape.value(calls, operation="AcknowledgeJob", outcome="error") == 1
    assert scrape.value(calls) == client.stats.calls == 4
    assert scrape.value("cpworker_codepipeline_request_duration_seconds_count") == 4
    assert scrape.value("cpworker_codepipeline_rate_budget_wait_seconds_count") == 4
    # Three of the four attempts waited for a token (about 0.2 s each, minus the backoff).
    assert scrape.value("cpworker_codepipeline_rate_budget_wait_seconds_sum") > 0.1


async def test_kubernetes_requests_by_verb_resource_and_outcome(kubeconfig: Path) -> None:
    metrics = Metrics(process_metrics=False)
    client = k8s.KubeClient(kubeconn.load(str(kubeconfig)), observer=metrics)
    try:
        await client.create_job(NAMESPACE, job_manifest("cpw-m"))
        with pytest.raises(k8s.AlreadyExistsError):
            await client.create_job(NAMESPACE, job_manifest("cpw-m"))
        with pytest.raises(k8s.NotFoundError):
            await client.get_job(NAMESPACE, "cpw-missing")
        await client.delete_secret(NAMESPACE, "cpw-missing")  # gone is fine, and counted
        await client.list_pods(NAMESPACE, "app=none")
        await client.request("GET", "/version")
    finally:
        await client.close()
    requests = "cpworker_kubernetes_requests_total"
    scrape = read(metrics)
    assert scrape.value(requests, verb="create", resource="jobs", outcome="ok") == 1
    assert scrape.value(requests, verb="create", resource="jobs", outcome="conflict") == 1
    assert scrape.value(requests, verb="get", resource="jobs", outcome="not_found") == 1
    assert scrape.value(requests, verb="delete", resource="secrets", outcome="not_found") == 1
    assert scrape.value(requests, verb="list", resource="pods", outcome="ok") == 1
    assert scrape.value(requests, verb="get", resource="nonresource", outcome="ok") == 1
    assert scrape.value(requests) == 6
