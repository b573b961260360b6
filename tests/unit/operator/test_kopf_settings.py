"""kopf's settings as the operator sets them: what a large fleet depends on."""

from __future__ import annotations

import kopf

from cpworker import handlers
from tests.unit.operator import samples


def test_kopf_processes_a_bounded_number_of_objects_at_once() -> None:
    """Unbounded, kopf started 1,000 workers' first patches together, one API connection
    each (about 800), and the start-up peaked at 407 MiB against 165 bounded (the figures
    are the benchmark's, not this test's)."""
    assert kopf.OperatorSettings().queueing.worker_limit is None, "kopf's default changed"
    settings = kopf.OperatorSettings()
    handlers.kopf_settings(settings, samples.settings())
    limit = settings.queueing.worker_limit
    assert limit == handlers.KOPF_OBJECT_WORKERS
    assert 0 < limit <= 64
    # A slot is given up soon after the object's last event, or a bounded start-up crawls.
    assert settings.queueing.idle_timeout <= 1.0
