"""Fixtures of the local CodePipeline.

The project registers `cpworker.sandbox.codepipeline.pytest_plugin` for the whole suite in
tests/conftest.py; importing the fixtures here as well keeps this directory runnable on its own.
"""

from cpworker.sandbox.codepipeline.pytest_plugin import (  # noqa: F401
    aws_env,
    codepipeline,
    cp_client,
    cp_scenario,
    moto_server,
    s3_client,
)
