"""The kubernetes Python client against the stand-in: CRUD, selectors, watches, patches,
optimistic concurrency, status subresource, finalizers, authentication."""

from __future__ import annotations

import json
import ssl
import threading
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import urllib3
from kubernetes.client import (
    ApiException,
    AppsV1Api,
    BatchV1Api,
    CoreV1Api,
    CustomObjectsApi,
)

from cpworker.sandbox.kube import KubeStandIn

NS = "default"
# The kubernetes client's models are Optional everywhere and partly untyped: use it as Any.
Watch: Any = kubernetes.watch.Watch
new_client: Any = kubernetes.config.new_client_from_config


def body(error: Any) -> str:
    """The Status body of a refused call."""
    return str(error.value.body)


def job_body(name: str, **annotations: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"app": "demo", "tier": name}},
        "spec": {
            "suspend": True,
            "template": {
                "metadata": {"annotations": annotations},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "main", "image": "busybox:1", "env": [{"name": "A", "value": "1"}]}
                    ],
                },
            },
        },
    }


def test_secret_crud_and_selectors(kube_api: kubernetes.client.ApiClient) -> None:
    core: Any = CoreV1Api(kube_api)
    created = core.create_namespaced_secret(
        NS,
        {
            "metadata": {"name": "one", "labels": {"app": "x", "env": "prod"}},
            "stringData": {"token": "s3cr3t"},
        },
    )
    assert created.metadata.uid
    assert created.metadata.resource_version
    assert created.data == {"token": "czNjcjN0"}
    core.create_namespaced_secret(NS, {"metadata": {"name": "two", "labels": {"app": "y"}}})
    core.create_namespaced_secret(NS, {"metadata": {"generateName": "gen-"}})

    def names(**kwargs: str) -> set[str]:
        return {s.metadata.name for s in core.list_namespaced_secret(NS, **kwargs).items}

    assert names(label_selector="app=x") == {"one"}
    assert names(label_selector="app in (x,y)") == {"one", "two"}
    assert names(label_selector="app notin (x)") - {"one"} == names() - {"one"}
    assert names(label_selector="app,!env") == {"two"}
    assert names(label_selector="env") == {"one"}
    assert names(label_selector="app!=x") == names() - {"one"}
    assert names(field_selector="metadata.name=two") == {"two"}
    assert len([n for n in names() if n.startswith("gen-")]) == 1

    with pytest.raises(ApiException) as exists:
        core.create_namespaced_secret(NS, {"metadata": {"name": "one"}})
    assert exists.value.status == 409
    assert '"reason":"AlreadyExists"' in body(exists)

    patched = core.patch_namespaced_secret("one", NS, {"metadata": {"labels": {"env": None}}})
    assert "env" not in patched.metadata.labels
    stale = core.read_namespaced_secret("two", NS)
    core.replace_namespaced_secret("two", NS, stale)
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_secret("two", NS, stale)
    assert conflict.value.status == 409

    core.delete_namespaced_secret("one", NS)
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_secret("one", NS)
    assert gone.value.status == 404


def test_unknown_namespace_and_bad_selector(kube_api: kubernetes.client.ApiClient) -> None:
    core: Any = CoreV1Api(kube_api)
    with pytest.raises(ApiException) as missing:
        core.create_namespaced_config_map("nowhere", {"metadata": {"name": "a"}})
    assert missing.value.status == 404
    with pytest.raises(ApiException) as bad:
        core.list_namespaced_secret(NS, label_selector="a in (b")
    assert bad.value.status == 400


def test_job_patch_generation_and_status_subresource(
    kube_api: kubernetes.client.ApiClient,
) -> None:
    batch: Any = BatchV1Api(kube_api)
    job = batch.create_namespaced_job(NS, job_body("gen"))
    assert job.metadata.generation == 1
    assert job.spec.template.metadata.labels["job-name"] == "gen"
    assert job.spec.backoff_limit == 6

    # status through the main endpoint is ignored; labels do not bump the generation
    labelled = batch.patch_namespaced_job(
        "gen", NS, {"metadata": {"labels": {"x": "1"}}, "status": {"active": 7}}
    )
    assert labelled.metadata.generation == 1
    assert not (labelled.status and labelled.status.active)

    # /status changes status only
    status = batch.patch_namespaced_job_status(
        "gen", NS, {"metadata": {"labels": {"y": "2"}}, "status": {"active": 3}}
    )
    assert status.status.active == 3
    assert "y" not in status.metadata.labels

    # a spec change bumps the generation (a suspended Job's template may change only its
    # scheduling directives, labels and annotations)
    scheduled = batch.patch_namespaced_job(
        "gen", NS, {"spec": {"template": {"spec": {"nodeSelector": {"pool": "b"}}}}}
    )
    assert scheduled.metadata.generation == 2
    # strategic merge keeps other env entries (on a Deployment, whose template may change)
    apps: Any = AppsV1Api(kube_api)
    template = job_body("dep")["spec"]["template"]
    template["metadata"]["labels"] = {"app": "dep"}
    template["spec"]["restartPolicy"] = "Always"
    apps.create_namespaced_deployment(
        NS,
        {
            "metadata": {"name": "dep"},
            "spec": {"selector": {"matchLabels": {"app": "dep"}}, "template": template},
        },
    )
    env_patch = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "main", "env": [{"name": "B", "value": "2"}]}]}
            }
        }
    }
    merged = apps.patch_namespaced_deployment("dep", NS, env_patch)
    assert {e.name for e in merged.spec.template.spec.containers[0].env} == {"A", "B"}


def test_json_patch_test_operation(kube_api: kubernetes.client.ApiClient) -> None:
    core: Any = CoreV1Api(kube_api)
    secret = core.create_namespaced_secret(NS, {"metadata": {"name": "jp"}})
    rv = secret.metadata.resource_version
    ok = core.patch_namespaced_secret(
        "jp",
        NS,
        [
            {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
            {"op": "add", "path": "/metadata/finalizers", "value": ["x.io/f"]},
        ],
    )
    assert ok.metadata.finalizers == ["x.io/f"]
    with pytest.raises(ApiException) as failed:
        core.patch_namespaced_secret(
            "jp",
            NS,
            [
                {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
                {"op": "remove", "path": "/metadata/finalizers"},
            ],
        )
    assert failed.value.status == 422


def test_finalizers_delay_deletion(kube_api: kubernetes.client.ApiClient) -> None:
    core: Any = CoreV1Api(kube_api)
    core.create_namespaced_config_map(
        NS, {"metadata": {"name": "fin", "finalizers": ["x.io/keep"]}}
    )
    core.delete_namespaced_config_map("fin", NS)
    marked = core.read_namespaced_config_map("fin", NS)
    assert marked.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("fin", NS, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("fin", NS)
    assert gone.value.status == 404


def test_watch_from_resource_version_and_selector(
    kube_api: kubernetes.client.ApiClient,
) -> None:
    core: Any = CoreV1Api(kube_api)
    listing = core.list_namespaced_config_map(NS)
    core.create_namespaced_config_map(NS, {"metadata": {"name": "w1", "labels": {"w": "yes"}}})
    core.create_namespaced_config_map(NS, {"metadata": {"name": "w2"}})
    core.patch_namespaced_config_map("w1", NS, {"data": {"k": "v"}})
    core.patch_namespaced_config_map("w1", NS, {"metadata": {"labels": {"w": "no"}}})
    seen = [
        (event["type"], event["object"].metadata.name)
        for event in Watch().stream(
            core.list_namespaced_config_map,
            NS,
            label_selector="w=yes",
            resource_version=listing.metadata.resource_version,
            timeout_seconds=1,
        )
    ]
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]


def test_watch_sees_live_changes(kube_api: kubernetes.client.ApiClient) -> None:
    core: Any = CoreV1Api(kube_api)
    rv = core.list_namespaced_secret(NS).metadata.resource_version
    seen: list[str] = []
    watch = Watch()

    def consume() -> None:
        for event in watch.stream(
            core.list_namespaced_secret, NS, resource_version=rv, timeout_seconds=10
        ):
            seen.append(event["type"])
            if event["type"] == "DELETED":
                watch.stop()

    thread = threading.Thread(target=consume)
    thread.start()
    core.create_namespaced_secret(NS, {"metadata": {"name": "live"}})
    core.delete_namespaced_secret("live", NS)
    thread.join(timeout=15)
    assert seen == ["ADDED", "DELETED"]


def test_watch_too_old_answers_410(tmp_path: Path) -> None:
    with KubeStandIn(history_size=3, job_runner=False) as stand_in:
        path = stand_in.write_kubeconfig(tmp_path / "config")
        client = new_client(str(path))
        core: Any = CoreV1Api(client)
        rv = core.list_namespaced_config_map(NS).metadata.resource_version
        for index in range(5):
            core.create_namespaced_config_map(NS, {"metadata": {"name": f"c{index}"}})
        with pytest.raises(ApiException) as gone:
            for _ in Watch().stream(
                core.list_namespaced_config_map, NS, resource_version=rv, timeout_seconds=1
            ):
                pass
        assert gone.value.status == 410
        client.close()


def test_unauthenticated_requests_get_401(kube: KubeStandIn, tmp_path: Any) -> None:
    for token in (None, "wrong"):
        configuration = kubernetes.client.Configuration()
        configuration.host = kube.url
        configuration.ssl_ca_cert = str(kube.ca_file)
        if token:
            configuration.api_key = {"authorization": f"Bearer {token}"}
        with kubernetes.client.ApiClient(configuration) as client:
            with pytest.raises(ApiException) as denied:
                CoreV1Api(client).list_namespace()
            assert denied.value.status == 401
    assert [r.code for r in kube.audit()][-2:] == [401, 401]


def test_audit_records_verbs(kube: KubeStandIn, kube_api: kubernetes.client.ApiClient) -> None:
    kube.clear_audit()
    core: Any = CoreV1Api(kube_api)
    core.create_namespaced_secret(NS, {"metadata": {"name": "aud"}})
    core.read_namespaced_secret("aud", NS)
    core.list_secret_for_all_namespaces()
    core.patch_namespaced_secret("aud", NS, {"metadata": {"labels": {"a": "b"}}})
    core.delete_namespaced_secret("aud", NS)
    records = [(r.verb, r.resource, r.namespace, r.name, r.code) for r in kube.audit()]
    assert records == [
        ("create", "secrets", NS, "", 201),
        ("get", "secrets", NS, "aud", 200),
        ("list", "secrets", "", "", 200),
        ("patch", "secrets", NS, "aud", 200),
        ("delete", "secrets", NS, "aud", 200),
    ]


def test_custom_resources_validated_pruned_defaulted(
    kube: KubeStandIn,
    kube_api: kubernetes.client.ApiClient,
) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.test.io"},
        "spec": {
            "group": "test.io",
            "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wg"]},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["size"],
                                    "x-kubernetes-validations": [
                                        {
                                            "rule": "self.size <= self.limit",
                                            "message": "size must not exceed limit",
                                        },
                                        {
                                            "rule": "self.color == oldSelf.color",
                                            "message": "color is immutable",
                                        },
                                    ],
                                    "properties": {
                                        "size": {"type": "integer", "minimum": 1},
                                        "limit": {"type": "integer", "default": 10},
                                        "color": {
                                            "type": "string",
                                            "enum": ["red", "blue"],
                                            "default": "red",
                                        },
                                        "name": {
                                            "type": "string",
                                            "pattern": "^[a-z]+$",
                                            "maxLength": 5,
                                        },
                                        "free": {
                                            "type": "object",
                                            "x-kubernetes-preserve-unknown-fields": True,
                                        },
                                    },
                                },
                                "status": {
                                    "type": "object",
                                    "properties": {"ok": {"type": "boolean"}},
                                },
                            },
                        }
                    },
                }
            ],
        },
    }
    kube.apply_manifests([crd])
    custom: Any = CustomObjectsApi(kube_api)

    def create(spec: Any, name: str = "w") -> Any:
        return custom.create_namespaced_custom_object(
            "test.io",
            "v1",
            NS,
            "widgets",
            {
                "apiVersion": "test.io/v1",
                "kind": "Widget",
                "metadata": {"name": name},
                "spec": spec,
            },
        )

    made = create({"size": 2, "junk": 1, "free": {"any": {"thing": 1}}})
    assert made["spec"] == {"size": 2, "limit": 10, "color": "red", "free": {"any": {"thing": 1}}}
    assert made["metadata"]["generation"] == 1

    cases = [
        ({"size": 0}, "spec.size", "greater than or equal to 1"),
        ({}, "spec.size", "Required value"),
        ({"size": 1, "color": "green"}, "spec.color", "Unsupported value"),
        ({"size": 1, "name": "ABC"}, "spec.name", "should match"),
        ({"size": 1, "name": "abcdefg"}, "spec.name", "Too long"),
        ({"size": "big"}, "spec.size", "must be of type integer"),
        ({"size": 20}, "spec", "size must not exceed limit"),
    ]
    for spec, field, message in cases:
        with pytest.raises(ApiException) as refused:
            create(spec, "bad")
        assert refused.value.status == 422, spec
        assert field in body(refused), body(refused)
        assert message in body(refused), body(refused)

    with pytest.raises(ApiException) as transition:
        custom.patch_namespaced_custom_object(
            "test.io", "v1", NS, "widgets", "w", {"spec": {"color": "blue"}}
        )
    assert transition.value.status == 422
    assert "color is immutable" in body(transition)
    status = custom.patch_namespaced_custom_object_status(
        "test.io", "v1", NS, "widgets", "w", {"status": {"ok": True, "extra": 1}}
    )
    assert status["status"] == {"ok": True}
    assert status["metadata"]["generation"] == 1


def test_watch_bookmarks_and_timeout(kube: KubeStandIn) -> None:
    pool = urllib3.HTTPSConnectionPool(
        "127.0.0.1",
        int(kube.url.rsplit(":", 1)[1]),
        ssl_context=ssl.create_default_context(cafile=str(kube.ca_file)),
    )
    response = pool.request(
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=true&allowWatchBookmarks=true"
        "&timeoutSeconds=2&resourceVersion=1",
        headers={"Authorization": f"Bearer {kube.token}"},
        preload_content=True,
    )
    assert response.headers["Content-Type"].startswith("application/json")
    events = [json.loads(line) for line in response.data.decode().splitlines()]
    assert {event["type"] for event in events} == {"BOOKMARK"}  # nothing else happened
    assert int(events[-1]["object"]["metadata"]["resourceVersion"]) >= 1
    pool.close()


def test_label_index_follows_relabels_and_deletes(kube_api: kubernetes.client.ApiClient) -> None:
    core: Any = CoreV1Api(kube_api)
    for index in range(30):
        core.create_namespaced_config_map(
            NS, {"metadata": {"name": f"l{index}", "labels": {"group": f"g{index % 3}"}}}
        )

    def names(selector: str) -> set[str]:
        listed = core.list_namespaced_config_map(NS, label_selector=selector).items
        return {item.metadata.name for item in listed}

    assert names("group=g1") == {f"l{i}" for i in range(1, 30, 3)}
    core.patch_namespaced_config_map("l1", NS, {"metadata": {"labels": {"group": "g2"}}})
    core.patch_namespaced_config_map("l4", NS, {"metadata": {"labels": None}})
    core.delete_namespaced_config_map("l7", NS)
    assert names("group=g1") == {f"l{i}" for i in range(10, 30, 3)}
    assert "l1" in names("group in (g2)")
    assert names("group=g1,group!=g1") == set()
    assert "l4" not in names("group")


def test_watch_list_sends_initial_events_then_a_bookmark(kube: KubeStandIn) -> None:
    kube.apply_manifests(
        [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "existing", "namespace": NS},
            }
        ]
    )
    pool = urllib3.HTTPSConnectionPool(
        "127.0.0.1",
        int(kube.url.rsplit(":", 1)[1]),
        ssl_context=ssl.create_default_context(cafile=str(kube.ca_file)),
    )
    response = pool.request(
        "GET",
        f"/api/v1/namespaces/{NS}/configmaps?watch=true&sendInitialEvents=true"
        "&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1",
        headers={"Authorization": f"Bearer {kube.token}"},
    )
    events = [json.loads(line) for line in response.data.decode().splitlines()]
    assert (events[0]["type"], events[0]["object"]["metadata"]["name"]) == ("ADDED", "existing")
    marker = events[1]
    assert marker["type"] == "BOOKMARK"
    assert marker["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    pool.close()


def test_deletecollection_preconditions_and_dry_run(
    kube_api: kubernetes.client.ApiClient,
) -> None:
    core: Any = CoreV1Api(kube_api)
    for index in range(4):
        core.create_namespaced_config_map(
            NS, {"metadata": {"name": f"dc{index}", "labels": {"batch": str(index % 2)}}}
        )
    core.delete_collection_namespaced_config_map(NS, label_selector="batch=0")
    left = {c.metadata.name for c in core.list_namespaced_config_map(NS).items}
    assert {"dc1", "dc3"} <= left
    assert not {"dc0", "dc2"} & left

    stale = core.read_namespaced_config_map("dc1", NS).metadata.resource_version
    core.patch_namespaced_config_map("dc1", NS, {"data": {"k": "v"}})
    with pytest.raises(ApiException) as conflict:
        core.delete_namespaced_config_map(
            "dc1", NS, body={"preconditions": {"resourceVersion": stale}}
        )
    assert conflict.value.status == 409
    core.delete_namespaced_config_map("dc3", NS, dry_run="All")
    assert core.read_namespaced_config_map("dc3", NS).metadata.name == "dc3"
    core.create_namespaced_config_map(NS, {"metadata": {"name": "ghost"}}, dry_run="All")
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("ghost", NS)
    assert missing.value.status == 404
