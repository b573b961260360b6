"""Watch faults and watch gaps of the stand-in, through the kubernetes client's `Watch`
helper: streams cut cleanly or aborted mid-flight, `410 Gone` on resume, ERROR events, and
the history compaction that makes a resume too old. kopf's side is in
test_faults_kopf.py."""

from __future__ import annotations

from typing import Any

import pytest
import urllib3
from kubernetes.client import ApiException, CoreV1Api
from kubernetes.watch import Watch

from cpworker.sandbox.kube import KubeStandIn
from tests.integration.kube.helpers import wait_for

NS = "default"
_Watch: Any = Watch  # the kubernetes package is untyped here; one typed door in


def _make(core: Any, *names: str) -> str:
    """Create ConfigMaps; answers the resourceVersion just before the first of them."""
    before = str(core.list_namespaced_config_map(NS).metadata.resource_version)
    for name in names:
        core.create_namespaced_config_map(NS, {"metadata": {"name": name}})
    return before


def _watch(core: Any, since: str | None = None, timeout: int = 1) -> list[tuple[str, str]]:
    """(type, name) of each event until the stream ends (no automatic resume: with
    timeout_seconds the client's Watch helper does not retry)."""
    kwargs: dict[str, Any] = {"timeout_seconds": timeout}
    if since is not None:
        kwargs["resource_version"] = since
    return [
        (event["type"], event["raw_object"]["metadata"]["name"])
        for event in _Watch().stream(core.list_namespaced_config_map, NS, **kwargs)
    ]


def _until_failure(core: Any, since: str) -> tuple[list[str], Exception | None]:
    """Names of the events a watch delivered before it failed, and how it failed."""
    seen: list[str] = []
    events = _Watch().stream(
        core.list_namespaced_config_map, NS, resource_version=since, timeout_seconds=30
    )
    try:  # extend keeps what it took before the failure
        seen.extend(event["raw_object"]["metadata"]["name"] for event in events)
    except (ApiException, urllib3.exceptions.ProtocolError) as exc:
        return seen, exc
    return seen, None


def test_a_cut_watch_ends_cleanly_after_its_events(kube: KubeStandIn, kube_api: Any) -> None:
    core: Any = CoreV1Api(kube_api)
    since = _make(core, "a", "b", "c")
    kube.faults.set("watch:configmaps", watch="cut", next=1, after_events=2)
    # ended by the cut (its own timeout would have delivered "c" as well)
    assert _watch(core, since, timeout=120) == [("ADDED", "a"), ("ADDED", "b")]
    # the rest is not lost: a resume from the last seen resourceVersion gets it
    assert _watch(core, since) == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c")]
    assert kube.faults.counts() == {"watch:cut": 1}


def test_a_watch_cut_by_time(kube: KubeStandIn, kube_api: Any) -> None:
    core: Any = CoreV1Api(kube_api)
    kube.faults.set("watch:configmaps", watch="cut", next=1, after_seconds=0.3)
    # a stream that the cut did not end would run into the test's timeout (and fail)
    assert _watch(core, timeout=600) == []
    assert kube.faults.counts() == {"watch:cut": 1}


def test_an_aborted_watch_breaks_mid_stream(kube: KubeStandIn, kube_api: Any) -> None:
    core: Any = CoreV1Api(kube_api)
    since = _make(core, "a", "b")
    kube.faults.set("watch:configmaps", watch="abort", next=1, after_events=1)
    seen, failure = _until_failure(core, since)
    assert seen == ["a"]
    assert isinstance(failure, urllib3.exceptions.ProtocolError)
    assert "ended prematurely" in str(failure)


def test_gone_answers_only_a_resuming_watch(kube: KubeStandIn, kube_api: Any) -> None:
    core: Any = CoreV1Api(kube_api)
    since = _make(core, "a")
    kube.faults.set("watch:configmaps", watch="gone", next=1)
    assert _watch(core) == [("ADDED", "a")]  # a watch from "now" cannot be too old
    with pytest.raises(ApiException) as gone:
        _watch(core, since)
    assert gone.value.status == 410
    assert gone.value.reason == f"Expired: too old resource version: {since} ({int(since) + 1})"
    assert _watch(core, since) == [("ADDED", "a")]  # `next` used up


def test_gone_is_an_error_event_on_a_200_stream(kube: KubeStandIn, kube_api: Any) -> None:
    """What kube-apiserver answers (cacher.go, etcd3/errors.go): not an HTTP 410."""
    core: Any = CoreV1Api(kube_api)
    since = _make(core, "a")
    kube.faults.set("watch:configmaps", watch="gone", next=1)
    response = core.list_namespaced_config_map(
        NS, watch=True, resource_version=since, _preload_content=False
    )
    assert response.status == 200
    lines = response.read().decode().splitlines()
    assert len(lines) == 1
    assert '"type":"ERROR"' in lines[0]
    assert '"reason":"Expired","code":410' in lines[0]


@pytest.mark.parametrize(
    ("fault", "code", "reason"),
    [("error", 500, "InternalError"), ("too-large", 504, "Timeout")],
)
def test_error_events_end_the_stream(
    kube: KubeStandIn, kube_api: Any, fault: str, code: int, reason: str
) -> None:
    core: Any = CoreV1Api(kube_api)
    since = _make(core, "a")
    kube.faults.set("watch:configmaps", watch=fault, next=1, after_events=1)
    seen, failure = _until_failure(core, since)
    assert isinstance(failure, ApiException)
    assert (failure.status, failure.reason.split(":")[0]) == (code, reason)
    # `error` comes mid-stream (after one event here); too-large before any event
    assert seen == (["a"] if fault == "error" else [])


def test_a_watch_refused_with_a_status(kube: KubeStandIn, kube_api: Any) -> None:
    core: Any = CoreV1Api(kube_api)
    kube.faults.set("watch:configmaps", status=503, next=1)
    with pytest.raises(ApiException) as refused:
        _watch(core)
    assert refused.value.status == 503


def test_compaction_makes_older_resource_versions_gone(kube: KubeStandIn, kube_api: Any) -> None:
    core: Any = CoreV1Api(kube_api)
    since = _make(core, "a", "b")
    compacted = kube.compact()
    with pytest.raises(ApiException) as gone:
        _watch(core, since)
    assert gone.value.status == 410
    assert gone.value.reason == f"Expired: too old resource version: {since} ({compacted})"
    # from the compacted resourceVersion on, nothing is missing
    _make(core, "c")
    assert _watch(core, str(compacted)) == [("ADDED", "c")]


def test_periodic_compaction(kube: KubeStandIn, kube_api: Any) -> None:
    core: Any = CoreV1Api(kube_api)
    since = _make(core, "a")
    kube.set_compaction_interval(0.1)

    def gone() -> bool:
        try:
            _watch(core, since, timeout=1)
        except ApiException as exc:
            return bool(exc.status == 410)
        return False

    wait_for(gone, "a periodic compaction")
    kube.set_compaction_interval(None)


def test_closing_watches_ends_open_streams_at_once(kube: KubeStandIn, kube_api: Any) -> None:
    core: Any = CoreV1Api(kube_api)
    since = _make(core, "a")
    response = core.list_namespaced_config_map(
        NS, watch=True, resource_version=since, _preload_content=False, timeout_seconds=30
    )
    first = response.readline()  # the stream is open and registered
    assert b'"name":"a"' in first
    assert kube.close_watches("secrets") == 0  # another resource: untouched
    assert kube.close_watches("configmaps", compact=True) == 1
    _make(core, "b")  # after the close: not delivered to the ended stream
    assert response.read() == b""
    with pytest.raises(ApiException) as gone:  # compacted: the resume is too old
        _watch(core, since)
    assert gone.value.status == 410
