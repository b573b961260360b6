"""kopf against the stand-in: in-process (KopfRunner, all namespaces) and as a subprocess
(`kopf run --standalone -n NS`): create/update/delete handlers, finalizers, status patches,
timers, daemons, an index and event handlers on labelled Jobs, and Events."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubernetes.client import ApiException, BatchV1Api, CoreV1Api, CustomObjectsApi

from cpworker.sandbox.kube import KubeStandIn
from tests.integration.kube.helpers import wait_for

HANDLERS = Path(__file__).with_name("kopf_handlers.py")
NS = "kopf-test"
WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.test.io"},
    "spec": {
        "group": "test.io",
        "names": {"plural": "widgets", "kind": "Widget"},
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
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                        },
                    }
                },
            }
        ],
    },
}


def prepare(kube: KubeStandIn, client: Any) -> None:
    kube.apply_manifests(
        [WIDGET_CRD, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}]
    )


def exercise_operator(client: Any) -> None:
    """Drive the handlers through the API and observe each effect."""
    core: Any = CoreV1Api(client)
    batch: Any = BatchV1Api(client)
    custom: Any = CustomObjectsApi(client)
    wait_for(lambda: core.read_namespaced_service_account("default", NS), "default account")
    custom.create_namespaced_custom_object(
        "test.io",
        "v1",
        NS,
        "widgets",
        {
            "apiVersion": "test.io/v1",
            "kind": "Widget",
            "metadata": {"name": "w1"},
            "spec": {"size": 3},
        },
    )

    def widget() -> Any:
        return custom.get_namespaced_custom_object("test.io", "v1", NS, "widgets", "w1")

    wait_for(lambda: widget().get("status", {}).get("created") == 3, "create handler")
    assert "test.io/kopf-finalizer" in widget()["metadata"]["finalizers"]
    custom.patch_namespaced_custom_object(
        "test.io", "v1", NS, "widgets", "w1", {"spec": {"size": 5}}
    )
    wait_for(lambda: widget().get("status", {}).get("updated") == 5, "update handler")
    wait_for(lambda: widget().get("status", {}).get("ticks", 0) >= 2, "timer ticks")
    wait_for(lambda: core.read_namespaced_config_map("daemon-w1", NS), "daemon start")

    template = {
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox:1"}]}
    }
    batch.create_namespaced_job(
        NS,
        {
            "metadata": {"name": "labelled", "labels": {"app": "demo"}},
            "spec": {"template": template},
        },
    )
    batch.create_namespaced_job(
        NS, {"metadata": {"name": "unlabelled"}, "spec": {"template": template}}
    )
    wait_for(lambda: core.read_namespaced_config_map("seen-labelled", NS), "job event handler")
    wait_for(lambda: batch.read_namespaced_job("unlabelled", NS).status.succeeded, "job 2")
    names = {c.metadata.name for c in core.list_namespaced_config_map(NS).items}
    assert "seen-unlabelled" not in names
    # kopf only adds its finalizer to resources it has change handlers for, never to Jobs
    assert not batch.read_namespaced_job("labelled", NS).metadata.finalizers

    def events_of(name: str) -> list[Any]:
        selected = core.list_namespaced_event(NS, field_selector=f"involvedObject.name={name}")
        return list(selected.items)

    # kopf posts events in the background: wait for it
    wait_for(lambda: any(e.reason == "Seen" for e in events_of("labelled")), "Seen event")

    custom.delete_namespaced_custom_object("test.io", "v1", NS, "widgets", "w1")
    wait_for(lambda: core.read_namespaced_config_map("deleted-w1", NS), "delete handler")

    def gone() -> bool:
        try:
            widget()
        except ApiException as exc:
            return bool(exc.status == 404)
        return False

    wait_for(gone, "finalizer released")


def test_kopf_in_process_all_namespaces(
    kube: KubeStandIn, kubeconfig: Path, kube_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepare(kube, kube_api)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    args = ["run", "--standalone", "--all-namespaces", "--verbose", str(HANDLERS)]
    with KopfRunner(args, timeout=60) as runner:
        exercise_operator(kube_api)
    assert runner.exit_code == 0, runner.output
    assert "Traceback" not in runner.output, runner.output
    assert runner.exception is None


def test_kopf_subprocess_one_namespace(
    kube: KubeStandIn, kubeconfig: Path, kube_api: Any, tmp_path: Path
) -> None:
    prepare(kube, kube_api)
    log = tmp_path / "kopf.log"
    environment = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kopf",
                "run",
                "--standalone",
                "-n",
                NS,
                "--verbose",
                str(HANDLERS),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
        )
        try:
            exercise_operator(kube_api)
        finally:
            process.terminate()
            process.wait(timeout=30)
    text = log.read_text()
    assert "Traceback" not in text, text
    audited = {(r.verb, r.resource) for r in kube.audit() if r.namespace == NS}
    assert ("watch", "widgets") in audited
    assert ("patch", "widgets") in audited


PEERING_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "kopfpeerings.kopf.dev"},
    "spec": {
        "scope": "Namespaced",
        "group": "kopf.dev",
        "names": {"kind": "KopfPeering", "plural": "kopfpeerings", "singular": "kopfpeering"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                        },
                    }
                },
            }
        ],
    },
}


def test_kopf_with_peering(
    kube: KubeStandIn, kubeconfig: Path, kube_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepare(kube, kube_api)
    kube.apply_manifests(
        [
            PEERING_CRD,
            {
                "apiVersion": "kopf.dev/v1",
                "kind": "KopfPeering",
                "metadata": {"name": "cpw", "namespace": NS},
            },
        ]
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    custom: Any = CustomObjectsApi(kube_api)

    def peers() -> Any:
        peering = custom.get_namespaced_custom_object("kopf.dev", "v1", NS, "kopfpeerings", "cpw")
        return peering.get("status") or {}

    args = ["run", "--peering=cpw", "-n", NS, "--priority=10", str(HANDLERS)]
    with KopfRunner(args, timeout=60) as runner:
        announced = wait_for(peers, "the operator announcing itself in the peering")
        custom.create_namespaced_custom_object(
            "test.io",
            "v1",
            NS,
            "widgets",
            {
                "apiVersion": "test.io/v1",
                "kind": "Widget",
                "metadata": {"name": "peered"},
                "spec": {"size": 1},
            },
        )
        wait_for(
            lambda: (
                custom.get_namespaced_custom_object("test.io", "v1", NS, "widgets", "peered")
                .get("status", {})
                .get("created")
                == 1
            ),
            "create handler with peering",
        )
    assert [peer["priority"] for peer in announced.values()] == [10]
    assert runner.exit_code == 0, runner.output
