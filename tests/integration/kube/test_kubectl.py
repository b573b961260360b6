"""The real kubectl against the stand-in: CRD then custom resource, printer columns, -o yaml,
-l, -w, apply --server-side, patch --subresource=status, delete waiting for finalizers,
invalid resources refused with the field path, protobuf bodies, 401 without credentials."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from cpworker.sandbox.kube import KubeStandIn
from cpworker.sandbox.kube.pytest_plugin import Kubectl
from cpworker.sandbox.kube.standin import PROJECT_CRDS
from tests.integration.kube.helpers import wait_for

WORKER = {
    "apiVersion": "cpworker.io/v1alpha1",
    "kind": "CustomActionWorker",
    "metadata": {"name": "gpu-builds", "labels": {"team": "gpu"}},
    "spec": {
        "actionTypeId": {
            "category": "Build",
            "owner": "Custom",
            "provider": "AcmeGpuBuild",
            "version": "1",
        },
        "queryParam": {"Pool": "gpu-a100"},
        "maxInFlight": 20,
        "jobTemplate": {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "build",
                                "image": "ghcr.io/acme/builder:2026.11",
                                "command": ["./ci/build.sh"],
                            }
                        ]
                    }
                }
            }
        },
    },
}


def worker(name: str = "gpu-builds", **spec: Any) -> str:
    document = json.loads(json.dumps(WORKER))
    document["metadata"]["name"] = name
    document["spec"].update(spec)
    return yaml.safe_dump(document)


def crd_file() -> str:
    return str(next(iter(sorted(PROJECT_CRDS.glob("*.yaml")))))


def test_apply_crd_then_resource_and_read_it(kubectl: Kubectl, kube: KubeStandIn) -> None:
    # the fixture pre-loads the project CRD; applying it again must be accepted as a change
    assert "customactionworkers.cpworker.io" in kubectl("apply", "-f", crd_file()).stdout
    assert "created" in kubectl("apply", "-f", "-", stdin=worker()).stdout
    kubectl("apply", "-f", "-", stdin=worker("cpu-builds").replace("gpu", "cpu", 1))

    header, *rows = kubectl("get", "caw").stdout.splitlines()
    assert header.split() == [
        "NAME",
        "READY",
        "REASON",
        "IN-FLIGHT",
        "SUCCEEDED",
        "FAILED",
        "LAST",
        "POLL",
        "AGE",
    ]
    assert {row.split()[0] for row in rows} == {"gpu-builds", "cpu-builds"}
    assert "AcmeGpuBuild" in kubectl("get", "caw", "-o", "wide").stdout

    selected = kubectl("get", "caw", "-l", "team=gpu", "-o", "name").stdout.split()
    assert selected == ["customactionworker.cpworker.io/gpu-builds"]
    document = yaml.safe_load(kubectl("get", "caw", "gpu-builds", "-o", "yaml").stdout)
    assert document["spec"]["queryParam"] == {"Pool": "gpu-a100"}
    assert document["metadata"]["generation"] == 1
    assert "unchanged" in kubectl("apply", "-f", "-", stdin=worker()).stdout


def test_server_side_apply_and_status_patch(kubectl: Kubectl) -> None:
    kubectl("apply", "--server-side", "-f", "-", stdin=worker())
    kubectl("apply", "--server-side", "-f", "-", stdin=worker(queryParam={"Pool": "gpu-h100"}))
    shown = kubectl("get", "caw", "gpu-builds", "-o", "jsonpath={.spec.queryParam.Pool}")
    assert shown.stdout == "gpu-h100"
    status = {
        "status": {
            "inFlight": 3,
            "succeeded": 5,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Polling",
                    "message": "polling",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
        }
    }
    kubectl(
        "patch",
        "caw",
        "gpu-builds",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    row = kubectl("get", "caw", "gpu-builds", "--no-headers").stdout.split()
    assert row[:5] == ["gpu-builds", "True", "Polling", "3", "5"]
    # configmaps too: a field dropped from the applied configuration is removed
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "ssa"},
        "data": {"a": "1", "b": "2"},
    }
    kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(configmap))
    configmap["data"] = {"a": "1"}
    kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(configmap))
    data = kubectl("get", "cm", "ssa", "-o", "jsonpath={.data}").stdout
    assert json.loads(data) == {"a": "1"}
    stored = json.loads(kubectl("get", "cm", "ssa", "-o", "json", "--show-managed-fields").stdout)
    assert [(e["manager"], e["operation"]) for e in stored["metadata"]["managedFields"]] == [
        ("kubectl", "Apply")
    ]


def test_invalid_resource_is_refused_with_field_path(kubectl: Kubectl) -> None:
    refused = kubectl(
        "apply", "-f", "-", stdin=worker(queryParam={"Pool": "no spaces!"}), check=False
    )
    assert refused.returncode != 0
    assert "spec.queryParam[Pool]" in refused.stderr
    too_many = kubectl("apply", "-f", "-", stdin=worker(maxInFlight=0), check=False)
    assert "spec.maxInFlight" in too_many.stderr


def test_watch_streams_changes(kubectl: Kubectl, kubeconfig: Path, tmp_path: Path) -> None:
    kubectl("apply", "-f", "-", stdin=worker())
    out = tmp_path / "watch.out"
    with out.open("w") as sink:
        watcher = subprocess.Popen(
            [
                "kubectl",
                "--kubeconfig",
                str(kubeconfig),
                "--cache-dir",
                str(tmp_path / "c"),
                "get",
                "caw",
                "-w",
                "-o",
                "name",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: "gpu-builds" in out.read_text(), "initial listing")
            kubectl("apply", "-f", "-", stdin=worker("second"))
            wait_for(lambda: "second" in out.read_text(), "watched creation")
        finally:
            watcher.terminate()
            watcher.wait(timeout=10)


def test_delete_waits_for_finalizers(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", stdin=worker())
    kubectl(
        "patch",
        "caw",
        "gpu-builds",
        "--type=merge",
        "-p",
        '{"metadata":{"finalizers":["cpworker.io/test"]}}',
    )
    result: dict[str, subprocess.CompletedProcess[str]] = {}
    deleting = threading.Thread(
        target=lambda: result.setdefault("delete", kubectl("delete", "caw", "gpu-builds"))
    )
    deleting.start()

    def marked() -> bool:
        shown = kubectl(
            "get", "caw", "gpu-builds", "-o", "jsonpath={.metadata.deletionTimestamp}"
        ).stdout
        return bool(shown)

    wait_for(marked, "deletionTimestamp")
    time.sleep(0.3)  # give a non-waiting delete the chance to (wrongly) return
    assert deleting.is_alive()
    kubectl(
        "patch",
        "caw",
        "gpu-builds",
        "--type=json",
        "-p",
        '[{"op":"remove","path":"/metadata/finalizers"}]',
    )
    deleting.join(timeout=30)
    assert "deleted" in result["delete"].stdout
    assert "NotFound" in kubectl("get", "caw", "gpu-builds", check=False).stderr


def test_protobuf_secret_and_builtin_tables(kubectl: Kubectl) -> None:
    kubectl("create", "secret", "generic", "creds", "--from-literal=token=abc")
    assert kubectl("get", "secret", "creds", "-o", "jsonpath={.data.token}").stdout == "YWJj"
    kubectl("create", "configmap", "settings", "--from-literal=a=b")
    kubectl("run", "once", "--image=busybox:1", "--restart=Never")
    wait_for(lambda: "Completed" in kubectl("get", "pod", "once").stdout, "pod success")
    kubectl("delete", "secret", "creds")
    assert "NotFound" in kubectl("get", "secret", "creds", check=False).stderr
    header = kubectl("get", "ns").stdout.splitlines()[0].split()
    assert header == ["NAME", "STATUS", "AGE"]


def test_kubectl_without_credentials_is_refused(
    kube: KubeStandIn, tmp_path: Path, kubectl: Kubectl
) -> None:
    config = yaml.safe_load((tmp_path / "kubeconfig").read_text())
    config["users"][0]["user"]["token"] = "wrong"
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(config))
    denied = kubectl("get", "ns", check=False)
    assert denied.returncode != 0
    assert "Unauthorized" in denied.stderr or "credentials" in denied.stderr


def test_unknown_fields_refused_strictly_dropped_otherwise(kubectl: Kubectl) -> None:
    job: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "typo"},
        "spec": {
            "suspend": True,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox:1", "imagePullPolicyy": "x"}],
                }
            },
        },
    }
    refused = kubectl("apply", "-f", "-", stdin=json.dumps(job), check=False)
    assert refused.returncode != 0
    assert "spec.template.spec.containers[0].imagePullPolicyy" in refused.stderr
    custom = kubectl("apply", "-f", "-", stdin=worker(colour="blue"), check=False)
    assert 'unknown field "spec.colour"' in custom.stderr

    # without strict validation (--validate=false), unknown fields are dropped silently
    kubectl("create", "--validate=false", "-f", "-", stdin=json.dumps(job))
    stored = json.loads(kubectl("get", "job", "typo", "-o", "json").stdout)
    container = stored["spec"]["template"]["spec"]["containers"][0]
    assert "imagePullPolicyy" not in container
    assert container["imagePullPolicy"] == "IfNotPresent"
    wrong_type = kubectl(
        "create",
        "-f",
        "-",
        stdin=json.dumps(
            {**job, "metadata": {"name": "typed"}, "spec": {**job["spec"], "backoffLimit": "six"}}
        ),
        check=False,
    )
    assert "backoffLimit" in wrong_type.stderr


def test_core_and_events_k8s_io_events_are_one_store(kubectl: Kubectl) -> None:
    event = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "dispatch.1"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "cpworker.io/op",
        "reportingInstance": "op-1",
        "action": "Dispatch",
        "reason": "Dispatched",
        "note": "dispatched job 42",
        "type": "Normal",
        "regarding": {
            "kind": "Job",
            "name": "cpw-42",
            "namespace": "default",
            "apiVersion": "batch/v1",
        },
    }
    kubectl("create", "-f", "-", stdin=json.dumps(event))
    core = json.loads(kubectl("get", "events.v1.", "dispatch.1", "-o", "json").stdout)
    assert (core["apiVersion"], core["message"]) == ("v1", "dispatched job 42")
    assert core["involvedObject"]["name"] == "cpw-42"
    core_event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "core.1"},
        "involvedObject": {
            "kind": "Job",
            "name": "cpw-42",
            "namespace": "default",
            "apiVersion": "batch/v1",
        },
        "reason": "Finished",
        "message": "job 42 finished",
        "type": "Normal",
        "firstTimestamp": "2026-01-01T00:00:01Z",
        "lastTimestamp": "2026-01-01T00:00:01Z",
    }
    kubectl("create", "-f", "-", stdin=json.dumps(core_event))
    listed = kubectl("events", "--for", "job/cpw-42").stdout
    assert "dispatched job 42" in listed
    assert "job 42 finished" in listed
    selected = json.loads(
        kubectl(
            "get",
            "events.v1.events.k8s.io",
            "--field-selector",
            "regarding.name=cpw-42",
            "-o",
            "json",
        ).stdout
    )
    assert sorted(item["note"] for item in selected["items"]) == [
        "dispatched job 42",
        "job 42 finished",
    ]


def test_rollout_status_of_a_deployment(kubectl: Kubectl) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "x:1"}]},
            },
        },
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(deployment))
    status = kubectl("rollout", "status", "deployment/web", "--timeout=20s")
    assert "successfully rolled out" in status.stdout
    shown = json.loads(kubectl("get", "deployment", "web", "-o", "json").stdout)["status"]
    assert (shown["readyReplicas"], shown["observedGeneration"]) == (2, 1)


def test_namespace_lifecycle(kubectl: Kubectl) -> None:
    kubectl("create", "namespace", "team")
    assert "default" in kubectl("get", "serviceaccounts", "-n", "team", "-o", "name").stdout
    kubectl("create", "configmap", "settings", "-n", "team", "--from-literal=a=b")
    kubectl("delete", "namespace", "team", "--timeout=30s")  # waits until it is gone
    assert "NotFound" in kubectl("get", "namespace", "team", check=False).stderr
    assert "NotFound" in kubectl("get", "cm", "settings", "-n", "team", check=False).stderr
    refused = kubectl("create", "configmap", "late", "-n", "team", check=False)
    assert 'namespaces "team" not found' in refused.stderr


def test_client_side_apply_uses_strategic_merge_for_builtins(kubectl: Kubectl) -> None:
    def deployment(env: list[dict[str, str]]) -> str:
        return json.dumps(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "app"},
                "spec": {
                    "selector": {"matchLabels": {"app": "app"}},
                    "template": {
                        "metadata": {"labels": {"app": "app"}},
                        "spec": {"containers": [{"name": "c", "image": "x:1", "env": env}]},
                    },
                },
            }
        )

    kubectl(
        "apply",
        "-f",
        "-",
        stdin=deployment([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
    )
    # someone else adds a sidecar; our next apply must keep it and only drop env B
    kubectl(
        "patch",
        "deployment",
        "app",
        "--type=strategic",
        "-p",
        json.dumps(
            {"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "y:1"}]}}}}
        ),
    )
    kubectl(
        "apply",
        "-f",
        "-",
        stdin=deployment([{"name": "A", "value": "1"}, {"name": "C", "value": "3"}]),
    )
    shown = json.loads(kubectl("get", "deployment", "app", "-o", "json").stdout)
    containers = {c["name"]: c for c in shown["spec"]["template"]["spec"]["containers"]}
    assert set(containers) == {"c", "side"}
    assert containers["c"]["env"] == [{"name": "A", "value": "1"}, {"name": "C", "value": "3"}]
    assert shown["metadata"]["generation"] == 3


def test_pod_spec_rules_of_the_api_server(kubectl: Kubectl) -> None:
    def job(name: str, pod_spec: dict[str, Any]) -> str:
        return json.dumps(
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": name},
                "spec": {"template": {"spec": {"restartPolicy": "Never", **pod_spec}}},
            }
        )

    missing_volume = kubectl(
        "create",
        "-f",
        "-",
        check=False,
        stdin=job(
            "a",
            {
                "containers": [
                    {
                        "name": "main",
                        "image": "x:1",
                        "volumeMounts": [{"name": "creds", "mountPath": "/c"}],
                    }
                ]
            },
        ),
    )
    assert (
        'spec.template.spec.containers[0].volumeMounts[0].name: Not found: "creds"'
        in missing_volume.stderr
    )
    duplicate = kubectl(
        "create",
        "-f",
        "-",
        check=False,
        stdin=job(
            "b",
            {"containers": [{"name": "main", "image": "x:1"}, {"name": "main", "image": "y:1"}]},
        ),
    )
    assert "spec.template.spec.containers[1].name: Duplicate value" in duplicate.stderr
    bad_container = kubectl(
        "create",
        "-f",
        "-",
        check=False,
        stdin=job(
            "c",
            {
                "containers": [
                    {
                        "name": "main",
                        "image": "x:1",
                        "env": [{"name": "1X", "value": "v"}],
                        "resources": {"limits": {"cpu": "lots"}},
                        "ports": [{"containerPort": 70000}],
                    }
                ]
            },
        ),
    )
    for field in (
        "containers[0].env[0].name",
        "containers[0].resources.limits[cpu]",
        "containers[0].ports[0].containerPort",
    ):
        assert f"spec.template.spec.{field}" in bad_container.stderr
    long_name = "j" * 64
    too_long = kubectl(
        "create",
        "-f",
        "-",
        check=False,
        stdin=job(long_name, {"containers": [{"name": "main", "image": "x:1"}]}),
    )
    assert "must be no more than 63 characters" in too_long.stderr
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"a/b": "MQ=="},
    }
    bad_key = kubectl("create", "-f", "-", stdin=json.dumps(secret), check=False)
    assert "a valid config key must consist of alphanumeric characters" in bad_key.stderr
