"""Request faults of the stand-in (kube/faults.py), each seen through real clients: the
kubernetes client (with its urllib3 retries) and kubectl (client-go's Retry-After handling).
Watch faults and compaction are in test_faults_watch.py, the control surface in
test_faults_control.py."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from kubernetes.client import ApiException, BatchV1Api, CoreV1Api, CustomObjectsApi

from cpworker.sandbox.kube import KubeStandIn
from cpworker.sandbox.kube.faults import APF_MESSAGE, KubeFaults, parse_fault
from tests.integration.kube.helpers import wait_for

NS = "default"
TEMPLATE = {
    "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox:1"}]}
}


def _status(error: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(error.body or "null")
    return body


def _headers(error: ApiException) -> Any:
    return error.headers or {}


def _codes(kube: KubeStandIn, verb: str, resource: str) -> list[int]:
    return [r.code for r in kube.audit() if r.verb == verb and r.resource == resource]


def test_conflict_on_a_conditional_patch_is_refused_before_it_takes_effect(
    kube: KubeStandIn, kube_api: Any
) -> None:
    core: Any = CoreV1Api(kube_api)
    created = core.create_namespaced_config_map(NS, {"metadata": {"name": "c"}, "data": {"v": "1"}})
    version = created.metadata.resource_version
    kube.faults.set("patch:configmaps", status=409, next=1)
    conditional = {"metadata": {"resourceVersion": version}, "data": {"v": "2"}}
    with pytest.raises(ApiException) as refused:
        core.patch_namespaced_config_map("c", NS, conditional)
    assert refused.value.status == 409
    assert _status(refused.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'Operation cannot be fulfilled on configmaps "c": the object has been '
        "modified; please apply your changes to the latest version and try again",
        "reason": "Conflict",
        "code": 409,
        "details": {"name": "c", "group": "", "kind": "configmaps"},
    }
    assert core.read_namespaced_config_map("c", NS).data == {"v": "1"}  # nothing changed
    core.patch_namespaced_config_map("c", NS, conditional)  # `next` is used up
    assert core.read_namespaced_config_map("c", NS).data == {"v": "2"}


def test_conflict_passes_over_writes_a_real_server_retries_itself(
    kube: KubeStandIn, kube_api: Any
) -> None:
    """Updates and patches without a resourceVersion and deletes without preconditions are
    retried on conflict inside kube-apiserver: a 409 rule leaves them alone (and keeps its
    count for a conditional one)."""
    core: Any = CoreV1Api(kube_api)
    for name in ("a", "b"):
        core.create_namespaced_config_map(NS, {"metadata": {"name": name}})
    kube.faults.set("patch,delete:configmaps", status=409, next=1)
    core.patch_namespaced_config_map("a", NS, {"data": {"v": "2"}})
    core.delete_namespaced_config_map("a", NS)
    assert kube.faults.counts() == {}
    uid = core.read_namespaced_config_map("b", NS).metadata.uid
    with pytest.raises(ApiException) as refused:
        core.delete_namespaced_config_map("b", NS, body={"preconditions": {"uid": uid}})
    assert _status(refused.value)["reason"] == "Conflict"
    assert kube.faults.counts() == {"409": 1}


def test_conflict_on_a_create_names_the_object_and_creates_nothing(
    kube: KubeStandIn, kube_api: Any
) -> None:
    batch: Any = BatchV1Api(kube_api)
    kube.faults.set("create:jobs", status=409, next=1)
    body = {"metadata": {"name": "j"}, "spec": {"template": TEMPLATE}}
    with pytest.raises(ApiException) as refused:
        batch.create_namespaced_job(NS, body)
    status = _status(refused.value)
    assert (status["reason"], status["details"]) == (
        "Conflict",
        {"name": "j", "group": "batch", "kind": "jobs"},
    )
    assert 'jobs.batch "j"' in status["message"]
    assert batch.list_namespaced_job(NS).items == []
    assert batch.create_namespaced_job(NS, body).metadata.name == "j"


def test_throttling_answers_as_priority_and_fairness_does(kube: KubeStandIn, kube_api: Any) -> None:
    """Plain text with Retry-After; the kubernetes client's urllib3 honours it and retries
    three times before the caller sees the 429."""
    core: Any = CoreV1Api(kube_api)
    kube.faults.set("list:secrets", status=429, next=4, retry_after=0)
    with pytest.raises(ApiException) as throttled:
        core.list_namespaced_secret(NS)
    assert throttled.value.status == 429
    assert _headers(throttled.value)["Retry-After"] == "0"
    assert _headers(throttled.value)["Content-Type"].startswith("text/plain")
    assert (throttled.value.body or "").strip() == APF_MESSAGE
    assert _codes(kube, "list", "secrets") == [429, 429, 429, 429]
    kube.faults.set("list:secrets", status=429, next=2, retry_after=0)
    assert core.list_namespaced_secret(NS).items == []  # two 429s are retried away
    assert _codes(kube, "list", "secrets")[4:] == [429, 429, 200]


def test_throttling_as_status_while_storage_initialises(kube: KubeStandIn, kube_api: Any) -> None:
    core: Any = CoreV1Api(kube_api)
    kube.faults.set("get:secrets", status=429, next=4, as_status=True, retry_after=0)
    with pytest.raises(ApiException) as throttled:
        core.read_namespaced_secret("missing", NS)
    status = _status(throttled.value)
    assert (status["reason"], status["code"], status["details"]) == (
        "TooManyRequests",
        429,
        {"retryAfterSeconds": 0},
    )
    assert _headers(throttled.value)["Retry-After"] == "0"


@pytest.mark.parametrize(
    ("code", "reason"),
    [(500, "InternalError"), (503, "ServiceUnavailable"), (504, "Timeout")],
)
def test_server_errors_are_status_objects(
    kube: KubeStandIn, kube_api: Any, code: int, reason: str
) -> None:
    core: Any = CoreV1Api(kube_api)
    kube.faults.set("list:pods", status=code, next=1)
    with pytest.raises(ApiException) as failed:
        core.list_namespaced_pod(NS)
    status = _status(failed.value)
    assert (failed.value.status, status["kind"], status["status"]) == (code, "Status", "Failure")
    assert (status["reason"], status["code"]) == (reason, code)
    assert "injected by the sandbox" in status["message"]
    assert core.list_namespaced_pod(NS).items == []  # the next call goes through


def test_a_timeout_after_the_write_leaves_the_write_done(kube: KubeStandIn, kube_api: Any) -> None:
    """`after`: the Job is created, the client is told 504; its retry meets AlreadyExists."""
    batch: Any = BatchV1Api(kube_api)
    kube.faults.set("create:jobs", status=504, next=1, after=True)
    body = {"metadata": {"name": "ambiguous"}, "spec": {"template": TEMPLATE}}
    with pytest.raises(ApiException) as timed_out:
        batch.create_namespaced_job(NS, body)
    assert _status(timed_out.value)["reason"] == "Timeout"
    assert [job.metadata.name for job in batch.list_namespaced_job(NS).items] == ["ambiguous"]
    with pytest.raises(ApiException) as retried:
        batch.create_namespaced_job(NS, body)
    assert _status(retried.value)["reason"] == "AlreadyExists"


def test_kubectl_waits_out_throttling_and_reports_server_errors(
    kube: KubeStandIn, kubectl: Any
) -> None:
    kube.faults.set("list:secrets", status=429, next=2)
    listed = kubectl("get", "secrets", "-v=6")
    assert "Got a Retry-After 1s response" in listed.stderr  # client-go's with_retry.go
    assert _codes(kube, "list", "secrets") == [429, 429, 200]
    kube.faults.set("list:secrets", status=500, next=1)
    failed = kubectl("get", "secrets", check=False)
    assert failed.returncode == 1
    assert "Error from server (InternalError): Internal error occurred" in failed.stderr


def test_latency_is_added_to_matching_requests_only(kube: KubeStandIn, kube_api: Any) -> None:
    core: Any = CoreV1Api(kube_api)
    kube.faults.set("get:namespaces", latency=0.3)
    started = time.monotonic()
    core.read_namespace(NS)
    assert time.monotonic() - started >= 0.3  # a lower bound: a slow machine only adds
    assert kube.faults.injected() == []  # latency alone is not a fault that "fired"


def _outcomes(core: Any, calls: int) -> list[int]:
    """The HTTP status of each of `calls` reads of the namespace."""
    outcomes = []
    for _ in range(calls):
        try:
            core.read_namespace(NS)
            outcomes.append(200)
        except ApiException as exc:
            outcomes.append(int(exc.status or 0))
    return outcomes


def test_next_faults_exactly_that_many_calls(kube: KubeStandIn, kube_api: Any) -> None:
    kube.faults.set("get:namespaces", status=503, next=3)
    assert _outcomes(CoreV1Api(kube_api), 5) == [503, 503, 503, 200, 200]
    assert kube.faults.counts() == {"503": 3}


def _pattern(kube: KubeStandIn, core: Any, seed: int) -> list[int]:
    kube.faults.seed(seed)
    kube.faults.set("get:namespaces", status=[500, 503], probability=0.5)
    return _outcomes(core, 20)


def test_probabilities_with_a_seed_repeat_exactly(kube: KubeStandIn, kube_api: Any) -> None:
    core: Any = CoreV1Api(kube_api)
    first = _pattern(kube, core, seed=7)
    assert _pattern(kube, core, seed=7) == first
    assert {200, 500, 503} <= set(first)  # 20 draws at 0.5: both kinds fire, some pass
    assert _pattern(kube, core, seed=8) != first


def test_targets_pick_verbs_resources_groups_and_subresources(
    kube: KubeStandIn, kube_api: Any
) -> None:
    custom: Any = CustomObjectsApi(kube_api)
    worker = {
        "apiVersion": "cpworker.io/v1alpha1",
        "kind": "CustomActionWorker",
        "metadata": {"name": "w"},
        "spec": {
            "actionTypeId": {"category": "Build", "provider": "P", "version": "1"},
            "jobTemplate": {"spec": {"template": TEMPLATE}},
        },
    }
    args = ("cpworker.io", "v1alpha1", NS, "customactionworkers")
    custom.create_namespaced_custom_object(*args, worker)
    kube.faults.set("patch:customactionworkers.cpworker.io/status", status=500, probability=1)
    with pytest.raises(ApiException) as failed:
        custom.patch_namespaced_custom_object_status(*args, "w", {"status": {"inFlight": 1}})
    assert failed.value.status == 500
    # the main resource, other verbs and other groups are not targeted
    custom.patch_namespaced_custom_object(*args, "w", {"spec": {"paused": True}})
    custom.get_namespaced_custom_object_status(*args, "w")
    kube.faults.clear()
    kube.faults.set("patch:customactionworkers/*", status=503, probability=1)
    with pytest.raises(ApiException):
        custom.patch_namespaced_custom_object_status(*args, "w", {"status": {"inFlight": 1}})
    kube.faults.set("patch:customactionworkers.example.com/*", status=503, probability=1)
    kube.faults.remove("patch:customactionworkers/*")
    custom.patch_namespaced_custom_object_status(*args, "w", {"status": {"inFlight": 1}})


def test_the_stand_ins_own_controllers_are_never_faulted(kube: KubeStandIn, kube_api: Any) -> None:
    """The job runner creates pods through the API layer, as real controllers sit behind no
    client-facing filters: a plan that refuses every pod create still lets Jobs run."""
    batch: Any = BatchV1Api(kube_api)
    kube.faults.set("create:pods", status=500, probability=1)
    batch.create_namespaced_job(NS, {"metadata": {"name": "runs"}, "spec": {"template": TEMPLATE}})
    wait_for(lambda: batch.read_namespaced_job("runs", NS).status.succeeded, "the job to succeed")
    assert kube.faults.injected() == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("get:pods:status=409,next=1", "409 Conflict is only answered to writes"),
        ("create:jobs:status=418,next=1", "status must be among"),
        ("create:jobs:status=500", "never fires"),
        ("get:jobs:watch=cut,next=1", "watch faults need the watch verb alone"),
        ("watch:jobs:watch=sever,next=1", "watch must be one of"),
        ("create:jobs:status=429,next=1,after=true", "after applies to 500, 503 and 504"),
        ("create:jobs:status=500,probability=2", "between 0 and 1"),
        ("fetch:jobs:status=500,next=1", "unknown verb"),
        ("create:jobs:statuss=500", "unknown fault setting"),
        ("create:jobs", "expected VERBS:RESOURCES:name=value"),
    ],
)
def test_bad_rules_are_refused_with_the_reason(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_fault(text)


def test_rules_parse_from_text_as_set_from_python() -> None:
    target, settings = parse_fault("create,patch:jobs,secrets:status=500|503,probability=0.1")
    faults = KubeFaults()
    faults.set(target, **settings)
    assert faults.as_dict()["create,patch:jobs,secrets"]["status"] == [500, 503]
    assert faults.as_dict()["create,patch:jobs,secrets"]["probability"] == 0.1


def test_exempt_user_agents_are_never_faulted(
    kube: KubeStandIn, kube_api: Any, kubectl: Any
) -> None:
    """A test's own clients can be kept out of the plan: here kubectl is, the Python client
    (as an operator's) is not."""
    kube.faults.exempt("kubectl/")
    kube.faults.set("list:configmaps", status=500, probability=1)
    assert kubectl("get", "configmaps").returncode == 0
    with pytest.raises(ApiException) as failed:
        CoreV1Api(kube_api).list_namespaced_config_map(NS)
    assert failed.value.status == 500
    assert kube.faults.counts() == {"500": 1}
