"""cpworker: a Kubernetes operator that runs AWS CodePipeline custom actions as Kubernetes Jobs."""

__version__ = "0.1.0"
