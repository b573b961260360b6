"""The runtime's pure pieces: adaptive back-off, capacity, Job assessment, log redaction."""

from __future__ import annotations

import io
import logging
import random

from cpworker import codepipeline, jobindex, logging_setup, models, names, poller, workerstatus


def test_batch_never_exceeds_free_capacity() -> None:
    assert models.batch_size(5, 10, 3) == 2
    assert models.batch_size(5, 1, 0) == 1
    assert models.batch_size(5, 10, 7) == 0


def test_backoff_full_batch_repolls_at_once_and_idle_grows_to_the_ceiling() -> None:
    backoff = poller.IdleBackoff(1.0, 8.0, rng=random.Random(1))
    assert backoff.after_poll(returned=5, requested=5) == 0.0
    delays = [backoff.after_poll(returned=0, requested=5) for _ in range(8)]
    assert all(0 < d <= 8.0 * 1.2 for d in delays)
    assert min(delays[-3:]) >= 8.0 * 0.8  # reached the ceiling's range
    assert backoff.after_poll(returned=1, requested=5) == 1.0  # a hit resets


def test_idle_worker_averages_the_ceiling() -> None:
    # The design's budget: an idle worker with a 60 s ceiling makes <= 60 calls an hour.
    backoff = poller.IdleBackoff(1.0, 60.0, rng=random.Random(7))
    delays = [backoff.after_poll(returned=0, requested=1) for _ in range(2000)]
    assert 3600 / (sum(delays[10:]) / len(delays[10:])) <= 61


def test_a_worker_that_found_nothing_yet_idles_at_the_ceiling_from_its_first_poll() -> None:
    # No ramp (1, 2, 4, ... s) at start-up: a thousand restarting workers would each cost a
    # dozen polls of the shared budget before reaching their ceiling.
    backoff = poller.IdleBackoff(1.0, 60.0, rng=random.Random(3))
    delays = [backoff.after_poll(returned=0, requested=5) for _ in range(20)]
    assert all(60.0 * 0.8 <= d <= 60.0 * 1.2 for d in delays)


def test_after_a_hit_the_policy_ramps_but_events_go_straight_back_to_the_ceiling() -> None:
    gradual = poller.IdleBackoff(1.0, 60.0, rng=random.Random(4))
    woken = poller.IdleBackoff(1.0, 60.0, rng=random.Random(4), gradual=False)
    for backoff in (gradual, woken):
        assert backoff.after_poll(returned=1, requested=5) == 1.0
    assert gradual.after_poll(returned=0, requested=5) <= 1.0  # the policy's first step
    # Events announce the next job: no step-by-step polling after this one.
    assert woken.after_poll(returned=0, requested=5) >= 60.0 * 0.8


def test_errors_are_retried_step_by_step_from_the_minimum() -> None:
    backoff = poller.IdleBackoff(1.0, 60.0, rng=random.Random(5), gradual=False)
    assert backoff.after_error() <= 1.0
    assert backoff.after_error() <= 2.0
    assert backoff.after_poll(returned=0, requested=5) >= 4.0 * 0.5


def test_condition_for_errors_says_what_to_do() -> None:
    reason, message = workerstatus.condition_for_error(
        codepipeline.ActionTypeNotFoundError("PollForJobs", "ActionTypeNotFoundException", "x")
    )
    assert reason == "ActionTypeNotFound"
    assert "create it" in message
    reason, _ = workerstatus.condition_for_error(
        codepipeline.ThrottledError("PollForJobs", "ThrottlingException", "slow down")
    )
    assert reason == "Throttled"


def _job(phase: str, *, finished: bool = False, result: str | None = None) -> jobindex.JobSummary:
    annotations = {names.ANNOTATION_PHASE: phase}
    if result:
        annotations[names.ANNOTATION_RESULT] = result
    conditions = [{"type": "Complete", "status": "True"}] if finished else []
    return jobindex.summarize_job(
        {
            "metadata": {
                "name": "cpw-x",
                "namespace": "ns",
                "annotations": annotations,
                "labels": {names.LABEL_WORKER: "w"},
                "creationTimestamp": "2026-01-01T00:00:00Z",
            },
            "spec": {"suspend": False},
            "status": {"conditions": conditions},
        }
    )


def test_live_jobs_count_claiming_and_running_only() -> None:
    assert _job("claiming").live
    assert _job("running").live
    assert not _job("reported").live
    assert not _job("cancelled").live


def _fail_with(message: str) -> None:
    raise ValueError(message)


def test_redacting_filter_hides_secrets_in_messages_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logging_setup.RedactingFilter())
    handler.setFormatter(logging_setup.JsonFormatter())
    logger = logging.getLogger("cpworker.test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    logging_setup.SECRETS.add(["registered-secret-value"])
    try:
        logger.warning("creds %s", {"secretAccessKey": "abc/DEF+ghi", "sessionToken": "tok123"})
        logger.warning("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG")
        try:
            _fail_with("boom registered-secret-value")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
        logging_setup.SECRETS.discard(["registered-secret-value"])
    text = stream.getvalue()
    for secret in ("abc/DEF+ghi", "tok123", "wJalrXUtnFEMI/K7MDENG", "registered-secret-value"):
        assert secret not in text
    assert text.count(logging_setup.REDACTED) >= 4
