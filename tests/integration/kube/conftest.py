"""The stand-in's own fixtures (the lead may also register the plugin project-wide)."""

from cpworker.sandbox.kube.pytest_plugin import kube, kube_api, kubeconfig, kubectl

__all__ = ["kube", "kube_api", "kubeconfig", "kubectl"]
