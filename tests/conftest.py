"""Shared pytest wiring. Stand-in fixtures live next to the stand-ins, as pytest plugins."""

pytest_plugins = [
    "cpworker.sandbox.codepipeline.pytest_plugin",
    "cpworker.sandbox.kube.pytest_plugin",
]
