"""Small helpers shared by the stand-in's tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubernetes.client import ApiException


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    """Poll until `check` answers something truthy (the deadline only guards a hang);
    404s count as 'not yet'."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
        except ApiException as exc:
            if exc.status != 404:
                raise
            result = None
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def is_gone(read: Callable[[], Any]) -> bool:
    try:
        read()
    except ApiException as exc:
        return bool(exc.status == 404)
    return False
