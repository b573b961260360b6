"""Local-exec mode: the pod's commands run as local processes, with Secret and emptyDir
volumes mapped to temporary directories, env from Secrets, termination messages and logs."""

from __future__ import annotations

import sys
from typing import Any

from kubernetes.client import BatchV1Api, CoreV1Api

from cpworker.sandbox.kube.pytest_plugin import Kubectl
from tests.integration.kube.helpers import wait_for

NS = "default"
STAGE = "import pathlib; pathlib.Path('/work/staged.txt').write_text('inputs')"
MAIN = """
import os, pathlib, sys
token = pathlib.Path('/secrets/token').read_text()
staged = pathlib.Path('/work/staged.txt').read_text()
print('building with', len(token), 'byte token; staged:', staged, flush=True)
pathlib.Path('/dev/termination-log').write_text('{"summary": "built ' + os.environ['TARGET'] + '"}')
sys.exit(int(os.environ['EXIT']))
"""


def job(name: str, exit_code: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": {"sandbox.cpworker.io/exec": "local"}},
                "spec": {
                    "restartPolicy": "Never",
                    "volumes": [
                        {"name": "creds", "secret": {"secretName": "creds"}},
                        {"name": "work", "emptyDir": {}},
                    ],
                    "initContainers": [
                        {
                            "name": "stage",
                            "image": "helper:1",
                            "command": [
                                sys.executable,
                                "-c",
                                STAGE,
                            ],
                            "volumeMounts": [{"name": "work", "mountPath": "/work"}],
                        }
                    ],
                    "containers": [
                        {
                            "name": "build",
                            "image": "builder:1",
                            "command": [sys.executable, "-c", MAIN],
                            "env": [
                                {"name": "EXIT", "value": str(exit_code)},
                                {
                                    "name": "TARGET",
                                    "valueFrom": {
                                        "secretKeyRef": {"name": "creds", "key": "target"}
                                    },
                                },
                            ],
                            "volumeMounts": [
                                {"name": "creds", "mountPath": "/secrets", "readOnly": True},
                                {"name": "work", "mountPath": "/work"},
                            ],
                        }
                    ],
                },
            },
        },
    }


def test_local_exec_success_and_failure(kube_api: Any, kubectl: Kubectl) -> None:
    core: Any = CoreV1Api(kube_api)
    batch: Any = BatchV1Api(kube_api)
    core.create_namespaced_secret(
        NS, {"metadata": {"name": "creds"}, "stringData": {"token": "s3cr3t", "target": "app"}}
    )
    for name, code in (("ok", 0), ("bad", 3)):
        batch.create_namespaced_job(NS, job(name, code))

    def pod_of(name: str) -> Any:
        pods = core.list_namespaced_pod(NS, label_selector=f"job-name={name}").items
        return pods[0] if pods and pods[0].status.phase in {"Succeeded", "Failed"} else None

    ok = wait_for(lambda: pod_of("ok"), "the local pod to finish")
    terminated = ok.status.container_statuses[0].state.terminated
    assert (ok.status.phase, terminated.exit_code) == ("Succeeded", 0)
    assert terminated.message == '{"summary": "built app"}'
    assert ok.status.init_container_statuses[0].state.terminated.exit_code == 0
    log = kubectl("logs", ok.metadata.name).stdout
    assert log == "building with 6 byte token; staged: inputs\n"

    bad = wait_for(lambda: pod_of("bad"), "the failing pod")
    assert bad.status.container_statuses[0].state.terminated.exit_code == 3
    wait_for(
        lambda: any(
            c.type == "Failed" for c in batch.read_namespaced_job("bad", NS).status.conditions or []
        ),
        "the Job failed",
    )
