"""Acceptance: the operator's own AWS identity expires or is revoked, and a worker's role cannot
be assumed: a clear condition on the workers affected (and only on them), a bounded back-off,
and recovery when the credentials work again.

The CodePipeline stand-in turns the operator's access key away as AWS would
(`identities.expire/revoke`: ExpiredTokenException / UnrecognizedClientException), and its
STS front refuses AssumeRole for a role (`identities.refuse_role`: AccessDenied).
"""

from __future__ import annotations

import pytest

from cpworker.sandbox.codepipeline.environment import ACCESS_KEY_ID
from tests.e2e.conftest import Stack, wait_for, worker_manifest
from tests.e2e.history import busiest_second

# The operator signs with its own key, so the harness's own client (ACCESS_KEY_ID) still works
# while the operator's is turned away.
OPERATOR_KEY = "AKIAOPERATOR00000001"
FAST_JOB = {"sandbox.cpworker.io/duration": "200ms"}


def reason_of(stack: Stack, worker: str = "builds") -> str | None:
    condition = stack.cluster.condition(worker) or {}
    return f"{condition.get('status')}/{condition.get('reason')}" if condition else None


@pytest.mark.parametrize(
    ("turn_away", "reason"),
    [("expire", "CredentialsExpired"), ("revoke", "CredentialsInvalid")],
)
def test_operator_credentials_that_stop_working_show_back_off_and_recover(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, turn_away: str, reason: str
) -> None:
    assert OPERATOR_KEY != ACCESS_KEY_ID
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", OPERATOR_KEY)
    scenario = stack.cp_scenario()
    stack.start_operator()
    stack.cluster.apply(worker_manifest(scenario, annotations=FAST_JOB))
    first = scenario.start(stack.cp_client)
    assert scenario.wait(stack.cp_client, first, timeout=60) == "Succeeded"

    getattr(stack.codepipeline.identities, turn_away)(OPERATOR_KEY)
    outage_start = len(stack.codepipeline.requests())
    wait_for(lambda: reason_of(stack) == f"False/{reason}", timeout=30, what=reason)
    message = (stack.cluster.condition() or {}).get("message", "")
    assert "credentials" in message
    second = scenario.start(stack.cp_client)
    wait_for(lambda: len(stack.codepipeline.requests()) > outage_start + 8, what="polls")
    assert scenario.status(stack.cp_client, second) == "InProgress"  # nothing ran meanwhile
    refused = [
        r.at for r in stack.codepipeline.requests()[outage_start:] if r.error_type is not None
    ]
    assert refused, "the operator's calls were turned away"
    # Backing off, not a tight retry loop: polls at the worker's interval (1 s), a few probes.
    assert busiest_second(refused) <= 6, busiest_second(refused)

    stack.codepipeline.identities.restore(OPERATOR_KEY)
    assert scenario.wait(stack.cp_client, second, timeout=60) == "Succeeded"
    wait_for(lambda: reason_of(stack) == "True/Polling", timeout=30, what="Ready again")
    wait_for(
        lambda: ((stack.cluster.worker() or {}).get("status") or {}).get("succeeded") == 2,
        what="both jobs counted",
    )
    worker = stack.cluster.worker() or {}
    assert worker["status"]["lastError"]["reason"] == reason  # kept for diagnosis


UNTRUSTED = "arn:aws:iam::123456789012:role/cpworker-untrusted"
TRUSTED = "arn:aws:iam::123456789012:role/cpworker-builds"


@pytest.mark.codepipeline_standin(sts_front=True)
def test_a_role_that_cannot_be_assumed_affects_only_its_worker(stack: Stack) -> None:
    stack.codepipeline.identities.refuse_role(UNTRUSTED)
    plain, trusted, untrusted = (stack.cp_scenario(pool=p) for p in ("plain", "trusted", "un"))
    stack.start_operator()
    stack.cluster.apply(worker_manifest(plain, "plain", annotations=FAST_JOB))
    stack.cluster.apply(
        worker_manifest(trusted, "trusted", annotations=FAST_JOB, spec={"roleArn": TRUSTED})
    )
    stack.cluster.apply(
        worker_manifest(untrusted, "untrusted", annotations=FAST_JOB, spec={"roleArn": UNTRUSTED})
    )
    stuck = untrusted.start(stack.cp_client)
    runs = [(s, s.start(stack.cp_client)) for s in (plain, trusted, plain, trusted)]

    wait_for(
        lambda: reason_of(stack, "untrusted") == "False/RoleNotAssumable",
        timeout=30,
        what="RoleNotAssumable on the untrusted worker",
    )
    message = (stack.cluster.condition("untrusted") or {}).get("message", "")
    assert "spec.roleArn" in message
    for scenario, execution in runs:
        assert scenario.wait(stack.cp_client, execution, timeout=60) == "Succeeded"
    assert reason_of(stack, "plain") == "True/Polling"
    assert reason_of(stack, "trusted") == "True/Polling"
    assert untrusted.status(stack.cp_client, stuck) == "InProgress"
    assert not [j for j in stack.cluster.jobs() if "untrusted" in str(j["metadata"]["labels"])]


def test_expired_credentials_during_a_run_still_report_it_once_they_work(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job that finishes while the operator's credentials are expired is reported once they
    work again: the result waits in the Job record, nothing is lost or sent twice."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", OPERATOR_KEY)
    scenario = stack.cp_scenario()
    stack.start_operator()
    stack.cluster.apply(
        worker_manifest(scenario, annotations={"sandbox.cpworker.io/duration": "2s"})
    )
    execution = scenario.start(stack.cp_client)
    wait_for(stack.cluster.pods, what="the job's pod")
    stack.codepipeline.identities.expire(OPERATOR_KEY)
    wait_for(
        lambda: any((j.get("status") or {}).get("succeeded") for j in stack.cluster.jobs()),
        timeout=30,
        what="the Job finished",
    )
    wait_for(lambda: reason_of(stack) == "False/CredentialsExpired", timeout=30, what="expired")
    assert scenario.status(stack.cp_client, execution) == "InProgress"
    stack.codepipeline.identities.restore()
    assert scenario.wait(stack.cp_client, execution, timeout=60) == "Succeeded"
    accepted = [
        r
        for r in stack.codepipeline.requests()
        if r.operation == "PutJobSuccessResult" and r.outcome == "ok"
    ]
    assert len(accepted) == 1
    wait_for(
        lambda: ((stack.cluster.worker() or {}).get("status") or {}).get("succeeded") == 1,
        what="counted once",
    )
