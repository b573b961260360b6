"""Local-exec mode as a real kubelet runs containers (issue 13): native sidecars started first
and SIGTERMed after the main container (SIGKILL when the grace period runs out), the
termination-message cuts, and a mounted Secret that changes while the pod runs."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from kubernetes.client import BatchV1Api, CoreV1Api

from tests.integration.kube.helpers import conditions_of, wait_for

NS = "default"
LOCAL = {"sandbox.cpworker.io/exec": "local"}
SIDECAR = """
import pathlib, signal, sys, time
def stop(*_):
    pathlib.Path('/dev/termination-log').write_text('sidecar drained')
    sys.exit(0)
if sys.argv[1] == 'graceful':
    signal.signal(signal.SIGTERM, stop)
else:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
pathlib.Path('/shared/ready').write_text('up')
while True:
    time.sleep(0.05)
"""
MAIN = """
import pathlib, sys
sys.exit(0 if pathlib.Path('/shared/ready').exists() else 7)
"""
WATCH_SECRET = """
import pathlib, sys, time
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    if pathlib.Path('/creds/token').read_text() == 'v2':
        print('refreshed', flush=True)
        sys.exit(0)
    time.sleep(0.05)
sys.exit(9)
"""


@pytest.fixture
def batch(kube_api: Any) -> Any:
    return BatchV1Api(kube_api)


@pytest.fixture
def core(kube_api: Any) -> Any:
    return CoreV1Api(kube_api)


def local_job(name: str, pod: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": LOCAL},
                "spec": {"restartPolicy": "Never", **pod},
            },
        },
    }


def finished_pod(core: Any, name: str) -> Any:
    pods = core.list_namespaced_pod(NS, label_selector=f"job-name={name}").items
    done = [p for p in pods if p.status.phase in {"Succeeded", "Failed"}]
    return done[0] if done else None


@pytest.mark.parametrize(
    ("mode", "exit_code", "message"), [("graceful", 0, "sidecar drained"), ("stubborn", 137, None)]
)
def test_native_sidecar_processes(
    batch: Any, core: Any, mode: str, exit_code: int, message: str | None
) -> None:
    """The sidecar runs before the main container starts (the main one checks its marker),
    gets SIGTERM once the main container exited, and SIGKILL after the grace period."""
    pod = {
        "terminationGracePeriodSeconds": 1,
        "volumes": [{"name": "shared", "emptyDir": {}}],
        "initContainers": [
            {
                "name": "proxy",
                "image": "proxy:1",
                "restartPolicy": "Always",
                "command": [sys.executable, "-c", SIDECAR, mode],
                "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
            }
        ],
        "containers": [
            {
                "name": "main",
                "image": "builder:1",
                "command": [sys.executable, "-c", MAIN],
                "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
            }
        ],
    }
    batch.create_namespaced_job(NS, local_job(f"side-{mode}", pod))
    finished = wait_for(lambda: finished_pod(core, f"side-{mode}"), "the pod to finish")
    main = finished.status.container_statuses[0].state.terminated
    proxy = finished.status.init_container_statuses[0].state.terminated
    assert (finished.status.phase, main.exit_code) == ("Succeeded", 0)
    assert proxy.exit_code == exit_code
    assert proxy.message == message
    wait_for(
        lambda: conditions_of(batch.read_namespaced_job(f"side-{mode}", NS)).get("Complete"),
        "the Job to complete",
    )


def test_termination_message_file_keeps_its_last_4096_bytes(batch: Any, core: Any) -> None:
    write = (
        "import pathlib; "
        "pathlib.Path('/dev/termination-log').write_text('HEAD' + 'x' * 6000 + 'TAIL')"
    )
    pod = {
        "containers": [{"name": "main", "image": "b:1", "command": [sys.executable, "-c", write]}]
    }
    batch.create_namespaced_job(NS, local_job("report", pod))
    finished = wait_for(lambda: finished_pod(core, "report"), "the pod to finish")
    message = finished.status.container_statuses[0].state.terminated.message
    assert message == ("HEAD" + "x" * 6000 + "TAIL")[-4096:]


def test_fallback_to_logs_keeps_the_tail(batch: Any, core: Any) -> None:
    noisy = "import sys\nfor i in range(200): print(f'line {i:03d} ' + '.' * 20)\nsys.exit(4)"
    container = {
        "name": "main",
        "image": "b:1",
        "command": [sys.executable, "-c", noisy],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    batch.create_namespaced_job(NS, local_job("noisy", {"containers": [container]}))
    finished = wait_for(lambda: finished_pod(core, "noisy"), "the pod to fail")
    terminated = finished.status.container_statuses[0].state.terminated
    lines = "".join(f"line {i:03d} {'.' * 20}\n" for i in range(120, 200))
    assert (terminated.exit_code, terminated.message) == (4, lines[-2048:])


def test_a_refreshed_secret_reaches_the_mounted_file(batch: Any, core: Any) -> None:
    core.create_namespaced_secret(
        NS, {"metadata": {"name": "creds"}, "stringData": {"token": "v1"}}
    )
    pod = {
        "volumes": [{"name": "creds", "secret": {"secretName": "creds"}}],
        "containers": [
            {
                "name": "main",
                "image": "b:1",
                "command": [sys.executable, "-c", WATCH_SECRET],
                "volumeMounts": [{"name": "creds", "mountPath": "/creds"}],
            }
        ],
    }
    batch.create_namespaced_job(NS, local_job("refresh", pod))
    wait_for(
        lambda: any(
            p.status.phase == "Running"
            for p in core.list_namespaced_pod(NS, label_selector="job-name=refresh").items
        ),
        "the pod to run",
    )
    core.patch_namespaced_secret("creds", NS, {"stringData": {"token": "v2"}})
    finished = wait_for(lambda: finished_pod(core, "refresh"), "the pod to see the new token")
    assert finished.status.container_statuses[0].state.terminated.exit_code == 0
    assert core.read_namespaced_pod_log(finished.metadata.name, NS) == "refreshed\n"


IMAGE_ENV = "import os, sys; print(os.environ['PATH'].split(os.pathsep)[0], os.environ['TOOL'])"


@pytest.mark.kube_standin(
    runner={
        "image_env": {
            "example.com/tools:1": {"PATH": "/opt/tools/bin:/usr/bin", "TOOL": "from-image"}
        }
    }
)
def test_the_images_env_comes_first_and_the_containers_env_wins(batch: Any, core: Any) -> None:
    """containerd puts the image config's Env first; the container's env overrides it."""
    env_py = [sys.executable, "-c", IMAGE_ENV]
    pod = {
        "containers": [
            {"name": "image", "image": "example.com/tools:1", "command": env_py},
            {
                "name": "override",
                "image": "example.com/tools:1",
                "command": env_py,
                "env": [{"name": "TOOL", "value": "from-pod"}],
            },
        ]
    }
    batch.create_namespaced_job(NS, local_job("image-env", pod))
    wait_for(lambda: finished_pod(core, "image-env"), "the pod finished")
    name = finished_pod(core, "image-env").metadata.name
    image = core.read_namespaced_pod_log(name, NS, container="image")
    override = core.read_namespaced_pod_log(name, NS, container="override")
    assert image.split() == ["/opt/tools/bin", "from-image"]
    assert override.split() == ["/opt/tools/bin", "from-pod"]


SUBPATHS = """
import os, pathlib, stat, sys
inputs, outputs = pathlib.Path('/work/in'), pathlib.Path('/elsewhere/out')
assert inputs.is_dir() and outputs.is_dir(), 'the kubelet creates missing subPaths'
(outputs / 'made').write_text(oct(stat.S_IMODE(outputs.stat().st_mode)))
"""
READ_BACK = "import pathlib; print(pathlib.Path('/all/out/made').read_text())"


def test_subpaths_of_an_emptydir_are_created_with_its_mode(batch: Any, core: Any) -> None:
    """makeMounts creates a missing subPath with the volume's mode; an emptyDir is 0777."""
    mounts = [
        {"name": "scratch", "mountPath": "/work/in", "subPath": "in"},
        {"name": "scratch", "mountPath": "/elsewhere/out", "subPath": "out"},
    ]
    pod = {
        "initContainers": [
            {
                "name": "writer",
                "image": "x",
                "command": [sys.executable, "-c", SUBPATHS],
                "volumeMounts": mounts,
            }
        ],
        "containers": [
            {
                "name": "reader",
                "image": "x",
                "command": [sys.executable, "-c", READ_BACK],
                "volumeMounts": [{"name": "scratch", "mountPath": "/all"}],
            }
        ],
        "volumes": [{"name": "scratch", "emptyDir": {}}],
    }
    batch.create_namespaced_job(NS, local_job("subpaths", pod))
    wait_for(lambda: finished_pod(core, "subpaths"), "the pod finished")
    done = finished_pod(core, "subpaths")
    assert done.status.phase == "Succeeded", done.status
    log = core.read_namespaced_pod_log(done.metadata.name, NS, container="reader")
    assert log.strip() == "0o777"
