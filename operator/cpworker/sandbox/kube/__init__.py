"""A local Kubernetes API stand-in (aiohttp) with a simulated job runner, for tests and the
sandbox: kopf, the kubernetes client, kubectl and the Helm engine accept it."""

from cpworker.sandbox.kube.jobrunner import RunnerConfig
from cpworker.sandbox.kube.server import AuditRecord
from cpworker.sandbox.kube.standin import KubeStandIn

__all__ = ["AuditRecord", "KubeStandIn", "RunnerConfig"]
