"""The admission chain (issue 13): refusals of the Job controller's pods by ResourceQuota,
LimitRange, Pod Security admission and a webhook — the Job exists, `FailedCreate` Events say
why, no pod appears, creation is retried — a Secret refused by quota, and the opt-in
OwnerReferencesPermissionEnforcement."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiException
from kubernetes.client import BatchV1Api as _BatchV1Api
from kubernetes.client import CoreV1Api as _CoreV1Api
from kubernetes.client import RbacAuthorizationV1Api as _RbacAuthorizationV1Api

from cpworker.sandbox.kube.admission import AdmissionConfig, DenyingWebhook
from cpworker.sandbox.kube.pytest_plugin import Kubectl
from tests.integration.kube.helpers import (
    conditions_of,
    custom_kube,
    job_body,
    new_client,
    wait_for,
)

# the kubernetes package's types are partial: one untyped door in
BatchV1Api: Any = _BatchV1Api
CoreV1Api: Any = _CoreV1Api
RbacAuthorizationV1Api: Any = _RbacAuthorizationV1Api
NS = "default"
PREFIX = "sandbox.cpworker.io/"


@pytest.fixture
def batch(kube_api: Any) -> Any:
    return BatchV1Api(kube_api)


@pytest.fixture
def core(kube_api: Any) -> Any:
    return CoreV1Api(kube_api)


def failed_creates(core: Any, job: str) -> list[Any]:
    events = core.list_namespaced_event(NS, field_selector=f"involvedObject.name={job}").items
    return [e for e in events if e.reason == "FailedCreate"]


def pods_of(core: Any, name: str) -> list[Any]:
    return list(core.list_namespaced_pod(NS, label_selector=f"job-name={name}").items)


def completes(batch: Any, name: str) -> None:
    wait_for(
        lambda: conditions_of(batch.read_namespaced_job(name, NS)).get("Complete") == "True",
        f"{name} to complete",
    )


def test_quota_refuses_the_pod_until_it_frees_up(batch: Any, core: Any) -> None:
    core.create_namespaced_resource_quota(
        NS, {"metadata": {"name": "pods"}, "spec": {"hard": {"count/pods": "1"}}}
    )
    core.create_namespaced_pod(
        NS,
        {
            "metadata": {"name": "hog", "annotations": {PREFIX + "duration": "never"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x:1"}]},
        },
    )
    batch.create_namespaced_job(NS, job_body("queued"))
    # one Event per attempt (each names the pod it tried): the controller retries
    event = wait_for(
        lambda: (found := failed_creates(core, "queued")) and len(found) >= 2 and found,
        "FailedCreate retried",
    )[0]
    assert event.type == "Warning"
    assert event.message.startswith('Error creating: pods "queued-')
    assert event.message.endswith(
        '" is forbidden: exceeded quota: pods, requested: count/pods=1, used: count/pods=1, '
        "limited: count/pods=1"
    )
    assert pods_of(core, "queued") == []
    assert batch.read_namespaced_job("queued", NS).status.active == 0
    core.delete_namespaced_pod("hog", NS, grace_period_seconds=0)
    completes(batch, "queued")  # the next retry finds room


@pytest.mark.parametrize(
    ("setup", "pod", "message"),
    [
        (
            "limitrange",
            {
                "containers": [
                    {"name": "main", "image": "b:1", "resources": {"limits": {"cpu": "2"}}}
                ]
            },
            "maximum cpu usage per Container is 1, but limit is 2",
        ),
        (
            "quota-cpu",
            {},
            "failed quota: compute: must specify requests.cpu for: main",
        ),
        (
            "restricted",
            {},
            (
                'violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false '
                '(container "main" must set securityContext.allowPrivilegeEscalation=false), '
                "unrestricted capabilities"
            ),
        ),
    ],
)
def test_admission_refusals_become_failed_create_events(
    batch: Any, core: Any, setup: str, pod: dict[str, Any], message: str
) -> None:
    if setup == "limitrange":
        core.create_namespaced_limit_range(
            NS,
            {
                "metadata": {"name": "caps"},
                "spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}}]},
            },
        )
    elif setup == "quota-cpu":
        core.create_namespaced_resource_quota(
            NS, {"metadata": {"name": "compute"}, "spec": {"hard": {"requests.cpu": "4"}}}
        )
    else:
        core.patch_namespace(
            NS, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
        )
    batch.create_namespaced_job(NS, job_body("refused", pod=pod))
    (event, *_) = wait_for(lambda: failed_creates(core, "refused"), "FailedCreate")
    assert "is forbidden: " + message in event.message
    assert pods_of(core, "refused") == []
    assert "Failed" not in conditions_of(batch.read_namespaced_job("refused", NS))


def test_limit_range_defaults_satisfy_a_cpu_quota(batch: Any, core: Any) -> None:
    core.create_namespaced_limit_range(
        NS,
        {
            "metadata": {"name": "defaults"},
            "spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": "100m"}}]},
        },
    )
    core.create_namespaced_resource_quota(
        NS, {"metadata": {"name": "compute"}, "spec": {"hard": {"requests.cpu": "1"}}}
    )
    batch.create_namespaced_job(NS, job_body("defaulted"))
    completes(batch, "defaulted")
    (pod,) = pods_of(core, "defaulted")
    assert pod.spec.containers[0].resources.requests == {"cpu": "100m"}


def test_a_webhook_refusal_then_acceptance(kube: Any, batch: Any, core: Any) -> None:
    hook = DenyingWebhook("policy.example.com", "images must come from registry.example.com")
    kube.configure_admission(AdmissionConfig(webhooks=(hook,)))
    batch.create_namespaced_job(NS, job_body("hooked"))
    (event, *_) = wait_for(lambda: failed_creates(core, "hooked"), "FailedCreate")
    assert event.message == (
        'Error creating: admission webhook "policy.example.com" denied the request: images '
        "must come from registry.example.com"
    )
    kube.configure_admission(AdmissionConfig())
    completes(batch, "hooked")


def test_quota_refuses_a_secret(core: Any, kubectl: Kubectl) -> None:
    core.create_namespaced_resource_quota(
        NS, {"metadata": {"name": "secrets"}, "spec": {"hard": {"count/secrets": "1"}}}
    )
    core.create_namespaced_secret(NS, {"metadata": {"name": "first"}})
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_secret(NS, {"metadata": {"name": "second"}})
    assert refused.value.status == 403
    assert json.loads(str(refused.value.body))["message"] == (
        'secrets "second" is forbidden: exceeded quota: secrets, requested: count/secrets=1, '
        "used: count/secrets=1, limited: count/secrets=1"
    )
    result = kubectl("create", "secret", "generic", "third", "--from-literal=k=v", check=False)
    assert result.returncode != 0
    assert 'secrets "third" is forbidden: exceeded quota: secrets' in result.stderr


# -- OwnerReferencesPermissionEnforcement ----------------------------------------------------
def _operator_rbac(client: Any, *, finalizers: bool) -> None:
    rules = [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "delete", "get"]}]
    if finalizers:
        rules.append(
            {"apiGroups": ["batch"], "resources": ["jobs/finalizers"], "verbs": ["update"]}
        )
    rbac = RbacAuthorizationV1Api(client)
    rbac.create_namespaced_role(NS, {"metadata": {"name": "op"}, "rules": rules})
    rbac.create_namespaced_role_binding(
        NS,
        {
            "metadata": {"name": "op"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "op"},
            "subjects": [{"kind": "ServiceAccount", "name": "operator", "namespace": NS}],
        },
    )


def _owned_secret(job: Any, *, block: bool) -> dict[str, Any]:
    owner = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": job.metadata.name,
        "uid": job.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": block,
    }
    return {"metadata": {"name": f"creds-{str(block).lower()}", "ownerReferences": [owner]}}


@pytest.mark.parametrize("enforced", [True, False])
def test_block_owner_deletion_needs_the_owners_finalizers(tmp_path: Path, enforced: bool) -> None:
    config = AdmissionConfig(owner_references_permission_enforcement=enforced)
    with custom_kube(tmp_path, admission=config) as (kube, admin):
        _operator_rbac(admin, finalizers=False)
        job = BatchV1Api(admin).create_namespaced_job(NS, job_body("owner", suspend=True))
        token = kube.service_account_token(NS, "operator")
        path = kube.write_kubeconfig(tmp_path / "operator", token=token)
        operator = new_client(str(path))
        try:
            secrets = CoreV1Api(operator)
            secrets.create_namespaced_secret(NS, _owned_secret(job, block=False))
            if not enforced:
                secrets.create_namespaced_secret(NS, _owned_secret(job, block=True))
                return
            with pytest.raises(ApiException) as refused:
                secrets.create_namespaced_secret(NS, _owned_secret(job, block=True))
            assert refused.value.status == 403
            assert json.loads(str(refused.value.body))["message"] == (
                'secrets "creds-true" is forbidden: cannot set blockOwnerDeletion if an '
                "ownerReference refers to a resource you can't set finalizers on: , <nil>"
            )
            RbacAuthorizationV1Api(admin).patch_namespaced_role(
                "op",
                NS,
                {
                    "rules": [
                        {
                            "apiGroups": [""],
                            "resources": ["secrets"],
                            "verbs": ["create", "delete", "get"],
                        },
                        {
                            "apiGroups": ["batch"],
                            "resources": ["jobs/finalizers"],
                            "verbs": ["update"],
                        },
                    ]
                },
            )
            secrets.create_namespaced_secret(NS, _owned_secret(job, block=True))
        finally:
            operator.close()
