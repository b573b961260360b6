"""The stack's further stand-ins: the local Kubernetes API and, on request, the operator itself.

Both follow `stack.StackComponent`: started after moto and the local CodePipeline, given their
environment, answering the variables they add to the env file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cpworker.sandbox.kube import KubeStandIn
from cpworker.sandbox.kube.jobrunner import RunnerConfig
from cpworker.sandbox.operatorimage import with_operator_image
from cpworker.sandbox.stack import EVENTS_QUEUE_VARIABLE

if TYPE_CHECKING:
    from cpworker.runner import OperatorThread

SANDBOX_NAMESPACE = "default"
# The operator's Prometheus endpoint, written to the env file.
METRICS_URL_VARIABLE = "CPWORKER_SANDBOX_METRICS_URL"

# Short probes and grace periods: the sandbox should show a whole pipeline in seconds.
SANDBOX_OPERATOR_SETTINGS: Mapping[str, Any] = {
    "cancel_probe_seconds": 2.0,
    "never_started_grace_seconds": 10.0,
    "log_format": "text",
    "log_level": "WARNING",
    "health_host": "127.0.0.1",
    "health_port": 0,
}


class KubeComponent:
    """The local Kubernetes API with the project's CRDs installed and a kubeconfig written;
    its kubelet knows the operator's image (the artifact containers of every job pod);
    optionally with faults (`faults`: (target, settings) pairs, see kube/faults.py) and a
    periodic compaction of its watch history."""

    def __init__(
        self,
        runner_config: RunnerConfig | None = None,
        *,
        faults: Sequence[tuple[str, Mapping[str, Any]]] = (),
        fault_seed: int | None = None,
        compaction_interval: float | None = None,
    ) -> None:
        self.standin = KubeStandIn(
            runner_config=with_operator_image(runner_config or RunnerConfig()),
            compaction_interval=compaction_interval,
        )
        self.standin.faults.seed(fault_seed)
        for target, settings in faults:
            self.standin.faults.set(target, **settings)
        self.kubeconfig: Path | None = None

    def start(self, env: dict[str, str], directory: Path) -> dict[str, str]:
        del env  # the API server needs nothing from the AWS side
        self.standin.start()
        self.standin.load_crds()
        self.kubeconfig = self.standin.write_kubeconfig(directory / "kubeconfig")
        return {"KUBECONFIG": str(self.kubeconfig)}

    def stop(self) -> None:
        self.standin.stop()


class OperatorComponent:
    """The operator, in-process, against the stand-ins started before it. Its `/metrics` (and
    `/healthz`) listen on a free loopback port, written to the env file as
    CPWORKER_SANDBOX_METRICS_URL.

    boto3 and kopf read their endpoints from the process environment, so the stack's variables
    are exported into this (sandbox) process before the operator starts.
    """

    def __init__(
        self,
        namespaces: Sequence[str] = (),
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        """`namespaces`: the namespaces to serve; none (the default) serves every namespace,
        so a worker applied in a new namespace is served at once."""
        self.namespaces = list(namespaces)
        self.settings = dict(settings or SANDBOX_OPERATOR_SETTINGS)
        self.operator: OperatorThread | None = None

    def start(self, env: dict[str, str], directory: Path) -> dict[str, str]:
        del directory
        from cpworker.runner import OperatorThread  # noqa: PLC0415 - only `--operator` needs it

        os.environ.update(env)
        # With `--events-queue`, the operator consumes the queue the stack delivers events to.
        events = (
            {"events_queue_url": env[EVENTS_QUEUE_VARIABLE]} if EVENTS_QUEUE_VARIABLE in env else {}
        )
        # The job pods' artifact containers reach the sandbox's S3 (the guard when it is on)
        # the way they would reach a VPC endpoint: through the operator's setting.
        endpoint = {"artifacts_s3_endpoint_url": env["AWS_ENDPOINT_URL_S3"]}
        self.operator = OperatorThread(
            {"default_region": env["AWS_DEFAULT_REGION"], **events, **endpoint, **self.settings},
            namespaces=self.namespaces,
            kubeconfig=env["KUBECONFIG"],
        ).start()
        return {METRICS_URL_VARIABLE: str(self.operator.metrics_url)}

    def stop(self) -> None:
        if self.operator is not None:
            self.operator.stop()
            self.operator = None
