"""Local stand-ins for CodePipeline, S3 and the Kubernetes API, and the demo built on them.

Test and demo infrastructure only: the operator never imports this package.
"""
