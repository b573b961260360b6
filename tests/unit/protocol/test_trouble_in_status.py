"""What a worker's condition says when Kubernetes or its own AWS identity lets it down.

Before: Kubernetes errors never reached the status (Ready stayed True "Polling" while every
Job create was refused), expired credentials read "grant codepipeline:PollForJobs..." and a
worker role that could not be assumed looked like the operator's own permissions.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import botocore.exceptions
import pytest

from cpworker import claimer, codepipeline, kube, kubehealth, models, poller, workerstatus
from cpworker.kube import KubeError
from tests.unit.operator import samples
from tests.unit.protocol.world import World

CREATE_REFUSED = kube._error(  # what the client raises after its retries ran out
    "POST", "/apis/batch/v1/namespaces/ci/jobs", 503, b'{"reason": "ServiceUnavailable"}'
)
FORBIDDEN = kube._error(
    "POST", "/api/v1/namespaces/ci/secrets", 403, b'{"reason": "Forbidden", "message": "no"}'
)


def ready(**situation: Any) -> workerstatus.Readiness:
    base: dict[str, Any] = {
        "problem": None,
        "paused": False,
        "error": None,
        "polled": True,
        "in_flight": 0,
    }
    return workerstatus.readiness(**{**base, **situation})


def test_refused_job_creates_make_the_worker_not_ready_and_say_which_call() -> None:
    state = ready(kube_error=CREATE_REFUSED)
    assert (state.ready, state.reason) == (False, "KubernetesUnavailable")
    assert "create jobs answered 503 ServiceUnavailable" in state.message
    assert state.error == (state.reason, state.message)  # kept in lastError too
    assert ready(kube_error=None).reason == "Polling"


def test_forbidden_requests_say_grant_the_rbac() -> None:
    state = ready(kube_error=FORBIDDEN)
    assert (state.ready, state.reason) == (False, "KubernetesForbidden")
    assert "create secrets answered 403 Forbidden" in state.message
    assert "cpworker check" in state.message


def test_a_poll_error_comes_before_kubernetes_trouble() -> None:
    throttled = codepipeline.ThrottledError("PollForJobs", "ThrottlingException", "slow")
    assert ready(error=throttled, kube_error=CREATE_REFUSED).reason == "Throttled"
    assert ready(problem="bad", kube_error=CREATE_REFUSED).reason == "InvalidSpec"


def test_every_reason_the_policy_gives_is_a_documented_model_reason() -> None:
    reasons = {ready(kube_error=CREATE_REFUSED).reason, ready(kube_error=FORBIDDEN).reason}
    for code in ("ExpiredTokenException", "UnrecognizedClientException", "AccessDenied"):
        reasons.add(workerstatus.condition_for_error(_client_error(code))[0])
    assert reasons <= {r.value for r in models.Reason}


def _client_error(code: str, status: int = 400) -> codepipeline.CodePipelineError:
    response: Any = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    exc = botocore.exceptions.ClientError(response, "PollForJobs")
    return codepipeline.map_error("PollForJobs", exc)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("ExpiredTokenException", "CredentialsExpired"),
        ("ExpiredToken", "CredentialsExpired"),
        ("RequestExpired", "CredentialsExpired"),
        ("UnrecognizedClientException", "CredentialsInvalid"),
        ("InvalidClientTokenId", "CredentialsInvalid"),
        ("AccessDeniedException", "AccessDenied"),
    ],
)
def test_credential_errors_get_reasons_of_their_own(code: str, reason: str) -> None:
    error = _client_error(code)
    assert isinstance(error, codepipeline.AccessDeniedError)
    got, message = workerstatus.condition_for_error(error)
    assert got == reason
    assert message


def test_a_role_that_cannot_be_assumed_names_the_role_not_the_operator() -> None:
    error = codepipeline.map_error(
        "PollForJobs", codepipeline.RoleAssumptionFailed("AccessDenied", "not trusted")
    )
    assert isinstance(error, codepipeline.RoleNotAssumableError)
    reason, message = workerstatus.condition_for_error(error)
    assert reason == "RoleNotAssumable"
    assert "spec.roleArn" in message
    assert "only this worker" in message


def test_expired_credentials_back_off_like_errors_that_pass_not_at_the_slow_retry() -> None:
    expired = _client_error("ExpiredTokenException")
    denied = _client_error("AccessDeniedException")
    assert isinstance(expired, poller.RENEWING_ERRORS)
    assert not isinstance(denied, poller.RENEWING_ERRORS)
    assert isinstance(denied, poller.SLOW_RETRY_ERRORS)


# ---- the health a worker keeps ---------------------------------------------------------------


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_failed_claim_holds_until_a_claim_succeeds_or_it_is_old() -> None:
    clock = Clock()
    health = kubehealth.KubernetesHealth(clock=clock, claim_memory_seconds=60)
    health.claims_failed(CREATE_REFUSED)
    health.supervision_round(None)  # a clean round with nothing to do proves nothing
    assert health.problem() is CREATE_REFUSED
    health.claims_succeeded()
    assert health.problem() is None
    health.claims_failed(CREATE_REFUSED)
    clock.now = 61
    assert health.problem() is None


def test_supervision_errors_hold_until_a_round_meets_none() -> None:
    health = kubehealth.KubernetesHealth(clock=Clock())
    health.supervision_round(FORBIDDEN)
    assert health.problem() is FORBIDDEN
    health.supervision_round(None)
    assert health.problem() is None


async def test_the_claimer_tells_the_worker_which_kubernetes_error_ended_a_claim(
    world: World,
) -> None:
    life = world.life()
    seen: list[KubeError] = []
    life.ctx.on_kube_error = seen.append

    def refuse() -> None:
        raise CREATE_REFUSED

    world.kube.intercept("POST", "jobs", refuse)
    outcomes = await claimer.process_polled_jobs(life.ctx, [world.polled()])
    assert outcomes == [claimer.ClaimOutcome.SKIPPED]
    assert seen == [CREATE_REFUSED]


async def test_the_supervisor_keeps_the_last_kubernetes_error_of_its_round(world: World) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    world.succeed(job_id)

    def refuse() -> None:
        raise CREATE_REFUSED

    def last_error() -> KubeError | None:
        return life.supervisor.kube_error

    world.kube.intercept("PATCH", "jobs", refuse)  # the record of the report, after the Put
    await life.supervise()
    assert last_error() is CREATE_REFUSED
    await life.supervise()  # the next round reports it
    assert last_error() is None
    assert len(world.cp.accepted) == 1


# ---- the poll loop backs off --------------------------------------------------------------


class StubClient:
    """Answers every poll with one job (what a worker sees while its claims keep failing)."""

    def __init__(self) -> None:
        self.polls = 0

    async def poll_for_jobs(self, *_args: Any, **_kwargs: Any) -> list[dict[str, Any]]:
        self.polls += 1
        return [{"id": "j"}]


async def test_claims_that_fail_on_kubernetes_back_off_the_next_poll() -> None:
    """Before: a poll that found jobs polled again at the minimum interval however the claims
    went, so a worker whose Job creates were refused polled at its hit rate indefinitely."""
    spec = models.parse_spec({**samples.spec(), "polling": {"minIntervalSeconds": 1}})
    stub = StubClient()
    outcomes: list[poller.Handled] = []

    async def handle(_jobs: Sequence[Any]) -> poller.Handled:
        return outcomes.pop(0) if outcomes else poller.Handled.DONE

    async def nothing(*_args: Any) -> None:
        return None

    async def client() -> Any:
        return stub

    loop = poller.PollLoop(
        client=client,
        target=lambda: poller.PollTarget.of(spec, max_interval=60),
        live_jobs=lambda: 0,
        handle_jobs=handle,
        tend=nothing,
        report=nothing,
        backoff=poller.IdleBackoff(1.0, 60.0, rng=random.Random(3)),
    )
    outcomes[:] = [poller.Handled.BACK_OFF] * 8
    delays = [await loop.poll_cycle() for _ in range(8)]
    assert delays[-1] >= 60 * 0.8  # grown to the ceiling, as after poll errors
    assert sorted(delays[:4]) == delays[:4]
    assert await loop.poll_cycle() == 1.0  # claims work again: the hit rate
