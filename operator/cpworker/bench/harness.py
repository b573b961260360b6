"""The stand-ins of one benchmark run, and the views of them that the measurements read.

One process holds moto, the local CodePipeline, the local Kubernetes API (each on its own
thread) and a counting SQS pass-through; the operator and the raw loop run as subprocesses
with identities of their own, so every figure can be attributed to the process that caused it.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3

from cpworker.bench.observer import KubeObserver, caller_kubeconfig
from cpworker.bench.sqsproxy import CountingSqsProxy
from cpworker.bench.workload import REGION, Workload
from cpworker.sandbox.codepipeline import StandInConfig
from cpworker.sandbox.codepipeline.engine import JobTimeline
from cpworker.sandbox.codepipeline.environment import (
    ACCESS_KEY_ID,
    SECRET_ACCESS_KEY,
    client_config,
)
from cpworker.sandbox.codepipeline.events import Subscription
from cpworker.sandbox.codepipeline.requestlog import RequestRecord
from cpworker.sandbox.kube import KubeStandIn
from cpworker.sandbox.kube.jobrunner import RunnerConfig
from cpworker.sandbox.kube.server import AuditRecord
from cpworker.sandbox.operatorimage import with_operator_image
from cpworker.sandbox.stack import SandboxStack

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

OPERATOR_USER = "cpworker-operator"
RAW_USER = "cpworker-raw-loop"
# Calls the benchmark itself makes to set up and drive the workload: never the operator's.
BENCH_OPERATIONS = frozenset(
    {"CreateCustomActionType", "CreatePipeline", "StartPipelineExecution", "GetPipelineExecution"}
)
# Test-only packages that the measured processes would import only because the benchmark
# runs in the development environment: kubernetes.dynamic imports kubernetes-validate when it
# is installed (and with it jsonschema's format checkers, which compile a grammar at import):
# about 30 MiB and 4 s of start-up that the operator's image, with its runtime dependencies
# only, does not have. A module that refuses to import hides each from the measured processes.
DEV_ONLY_MODULES = ("kubernetes_validate",)
# Request logs and the audit log hold a whole run (a 10,000-worker fleet writes a lot).
REQUEST_LOG_SIZE = 400_000
AUDIT_SIZE = 1_000_000


class BenchKube:
    """The local Kubernetes API as a stack component, with room for a whole run's audit log."""

    def __init__(self, runner_config: RunnerConfig) -> None:
        self.standin = KubeStandIn(runner_config=runner_config, audit_size=AUDIT_SIZE)

    def start(self, env: dict[str, str], directory: Path) -> dict[str, str]:
        del env
        self.standin.start()
        self.standin.load_crds()
        return {"KUBECONFIG": str(self.standin.write_kubeconfig(directory / "kubeconfig"))}

    def stop(self) -> None:
        self.standin.stop()


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=client_config(),
    )


@dataclass
class Harness:
    directory: Path
    stack: SandboxStack
    kube: KubeStandIn
    observer: KubeObserver
    sqs_proxy: CountingSqsProxy
    workload: Workload
    operator_kubeconfig: Path
    raw_kubeconfig: Path
    sqs: SQSClient
    kube_requests_before: int = 0  # audit records dropped by `clear_audit` so far
    # Another operator's source tree (its `operator/` directory), measured instead of this
    # one: `--operator-source`, for before/after figures with the same benchmark.
    operator_source: Path | None = None
    _queues: int = 0
    _identities: set[str] = field(default_factory=set)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(cls, directory: Path, job_duration: float) -> Harness:
        directory.mkdir(parents=True, exist_ok=True)
        # The operator's image known: job pods run the artifact containers, scripted.
        kube = BenchKube(with_operator_image(RunnerConfig(default_duration=job_duration)))
        stack = SandboxStack(
            directory / "stack",
            config=StandInConfig(request_log_size=REQUEST_LOG_SIZE, strict_conformance=False),
            components=[kube],
            eventbridge=False,
        )
        stack.start()
        proxy: CountingSqsProxy | None = None
        try:
            assert stack.moto is not None
            proxy = CountingSqsProxy(stack.moto.url).start()
            standin = kube.standin
            workload = Workload(
                _client("codepipeline", stack.env["AWS_ENDPOINT_URL_CODEPIPELINE"]),
                _client("s3", stack.env["AWS_ENDPOINT_URL_S3"]),
            )
            return cls(
                directory=directory,
                stack=stack,
                kube=standin,
                observer=KubeObserver(standin).start(),
                sqs_proxy=proxy,
                workload=workload,
                operator_kubeconfig=caller_kubeconfig(
                    standin, directory / "operator.kubeconfig", OPERATOR_USER
                ),
                raw_kubeconfig=caller_kubeconfig(standin, directory / "raw.kubeconfig", RAW_USER),
                sqs=_client("sqs", stack.moto.url),
            )
        except BaseException:
            if proxy is not None:
                proxy.stop()
            stack.stop()
            raise

    def stop(self) -> None:
        self.sqs_proxy.stop()
        self.stack.stop()

    # -- environments of the measured processes ------------------------------------------------
    def _base_env(self, kubeconfig: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CPWORKER_")}
        env.update(self.stack.env)
        env["AWS_ENDPOINT_URL_SQS"] = self.sqs_proxy.url
        env["KUBECONFIG"] = str(kubeconfig)
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(self._runtime_only()), env.get("PYTHONPATH", "")])
        )
        return env

    def _runtime_only(self) -> Path:
        """A directory whose modules hide the test-only packages (DEV_ONLY_MODULES)."""
        hidden = self.directory / "runtime-only"
        hidden.mkdir(exist_ok=True)
        for module in DEV_ONLY_MODULES:
            (hidden / f"{module}.py").write_text(
                f'raise ImportError("{module} is a test-only package: cpworker bench measures '
                'the operator with its runtime dependencies only")\n'
            )
        return hidden

    def identity(self, user: str) -> Path:
        """A kubeconfig for another identity of its own (one per shard, say), written by this
        run: a reused --workdir holds an earlier run's, which names that run's stand-in."""
        path = self.directory / f"{user}.kubeconfig"
        if user not in self._identities:
            caller_kubeconfig(self.kube, path, user)
            self._identities.add(user)
        return path

    def operator_env(self, settings: dict[str, Any], user: str = OPERATOR_USER) -> dict[str, str]:
        kubeconfig = self.operator_kubeconfig if user == OPERATOR_USER else self.identity(user)
        env = self._base_env(kubeconfig)
        if self.operator_source is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(self.operator_source), env["PYTHONPATH"]])
        env.update({f"CPWORKER_{key.upper()}": str(value) for key, value in settings.items()})
        return env

    def raw_env(self) -> dict[str, str]:
        return self._base_env(self.raw_kubeconfig)

    # -- what the stand-ins saw ----------------------------------------------------------------
    @property
    def codepipeline(self) -> Any:
        assert self.stack.codepipeline is not None
        return self.stack.codepipeline

    def cp_requests(self, start: float, end: float) -> list[RequestRecord]:
        """Requests answered in [start, end] that the benchmark did not make itself."""
        return [
            r
            for r in self.codepipeline.requests()
            if start <= r.at <= end and r.operation not in BENCH_OPERATIONS
        ]

    def cp_jobs(self, provider: str) -> list[JobTimeline]:
        """The timelines of one phase's jobs, built on the stand-in's loop: only those, since
        the benchmark asks often and a run holds thousands of jobs."""
        engine = self.codepipeline.engine
        return list(
            self.codepipeline.call(
                lambda: [
                    job.timeline()
                    for job in engine.jobs.values()
                    if job.action_type.provider == provider
                ]
            )
        )

    def clear_audit(self) -> None:
        self.kube_requests_before += len(self.kube.audit())
        self.kube.clear_audit()

    def audit(self) -> list[AuditRecord]:
        return self.kube.audit()

    def kube_requests_total(self) -> int:
        return self.kube_requests_before + len(self.kube.audit())

    # -- action execution events ---------------------------------------------------------------
    def events_queue(self) -> str:
        """A fresh SQS queue that receives the stand-in's action execution events from now on."""
        self._queues += 1
        url: str = self.sqs.create_queue(QueueName=f"cpworker-bench-events-{self._queues}")[
            "QueueUrl"
        ]
        self.codepipeline.events.subscribe(Subscription(queue_url=url))
        return url

    def stop_events(self) -> None:
        self.codepipeline.events.clear()

    # -- the stand-ins' own CPU ----------------------------------------------------------------
    @staticmethod
    def standin_threads() -> dict[str, int]:
        """Native thread ids of the stand-ins' event loops."""
        wanted = {"codepipeline-standin": "codepipeline", "kube-stand-in": "kubernetes"}
        return {
            wanted[t.name]: t.native_id
            for t in threading.enumerate()
            if t.name in wanted and t.native_id is not None
        }
