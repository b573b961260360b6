"""Runtime-tunable timing knobs and fault injection settings of the stand-in.

Both are plain mutable objects: tests change them in place (`standin.config.job_timeout = 2`),
the control endpoint and CLI flags set them by field name. Unknown names are rejected so a typo
never silently does nothing.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from typing import Any

# Timing defaults follow AWS where AWS documents them, otherwise what keeps tests fast and
# still exercises the worker's recovery paths. All are in seconds.
DEFAULT_REDELIVERY_WINDOW = 30.0
DEFAULT_JOB_TIMEOUT = 3600.0
DEFAULT_CREDENTIAL_LIFETIME = 900.0  # what the Jenkins plugin assumes; AWS documents none
DEFAULT_CONTINUATION_DELAY = 1.0


@dataclasses.dataclass
class StandInConfig:
    """Timing knobs and limits, read on every request (so changes apply at once)."""

    redelivery_window: float = DEFAULT_REDELIVERY_WINDOW
    job_timeout: float = DEFAULT_JOB_TIMEOUT
    credential_lifetime: float = DEFAULT_CREDENTIAL_LIFETIME
    continuation_delay: float = DEFAULT_CONTINUATION_DELAY
    max_custom_action_types: int = 50
    list_page_size: int = 20
    request_log_size: int = 10_000
    strict_conformance: bool = False

    def update(self, changes: dict[str, Any]) -> None:
        """Apply `changes` by field name; raise ValueError on unknown names or bad values."""
        fields = {field.name: field for field in dataclasses.fields(self)}
        for name, value in changes.items():
            if name not in fields:
                raise ValueError(
                    f"unknown config knob {name!r}; known: {', '.join(sorted(fields))}"
                )
            current = getattr(self, name)
            if isinstance(current, bool):
                if not isinstance(value, bool):
                    raise TypeError(f"config knob {name!r} takes true or false")
            elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise TypeError(f"config knob {name!r} takes a non-negative number")
            setattr(self, name, type(current)(value))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class OperationFaults:
    """Faults for one operation (or for every operation, under the name "*").

    Counted faults (`throttle_next`, `error_next`) are deterministic and meant for tests;
    probabilities and the rate limit are meant for reliability runs and benchmarks.
    """

    throttle_probability: float = 0.0
    throttle_rate: float | None = None  # requests per second allowed before ThrottlingException
    throttle_next: int = 0
    error_probability: float = 0.0
    error_next: int = 0
    error_status: int = 500
    latency: float = 0.0  # seconds added before the answer

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> OperationFaults:
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = set(raw) - names
        if unknown:
            raise ValueError(f"unknown fault setting(s) {sorted(unknown)}; known: {sorted(names)}")
        faults = cls(**raw)
        for probability in (faults.throttle_probability, faults.error_probability):
            if not 0.0 <= probability <= 1.0:
                raise ValueError("fault probabilities must be between 0 and 1")
        if faults.error_status not in {500, 502, 503, 504}:
            raise ValueError("error_status must be one of 500, 502, 503, 504")
        if faults.latency < 0 or faults.throttle_next < 0 or faults.error_next < 0:
            raise ValueError("latency and counts must be non-negative")
        return faults


@dataclasses.dataclass(frozen=True)
class FaultDecision:
    latency: float = 0.0
    throttle: bool = False
    error_status: int | None = None


class Faults:
    """Per-operation fault plan, thread-safe (set from tests, applied on the server loop)."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._plans: dict[str, OperationFaults] = {}
        self._windows: dict[str, list[float]] = {}
        self._random = random.Random(seed)  # noqa: S311 - fault injection, not cryptography
        self._exempt: tuple[str, ...] = ()

    def exempt(self, *agents: str) -> None:
        """Never fault requests whose User-Agent contains one of these (a test's own client)."""
        with self._lock:
            self._exempt = tuple(dict.fromkeys([*self._exempt, *agents]))

    def seed(self, value: int | None) -> None:
        with self._lock:
            self._random.seed(value)

    def set(self, operation: str, **settings: Any) -> None:
        """Replace the faults of `operation` ("*": all): `set("PollForJobs", throttle_next=2)`."""
        plan = OperationFaults.from_dict(settings)
        with self._lock:
            self._plans[operation] = plan
            self._windows.pop(operation, None)

    def clear(self) -> None:
        with self._lock:
            self._plans.clear()
            self._windows.clear()

    def as_dict(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {name: dataclasses.asdict(plan) for name, plan in self._plans.items()}

    def decide(self, operation: str, user_agent: str = "") -> FaultDecision:
        """Consume this request's share of the plan and say what to inject."""
        with self._lock:
            if any(agent in user_agent for agent in self._exempt):
                return FaultDecision()
            latency = 0.0
            throttle = False
            error_status: int | None = None
            for name in (operation, "*"):
                plan = self._plans.get(name)
                if plan is None:
                    continue
                latency += plan.latency
                if not throttle:
                    throttle = self._throttle(name, plan)
                if not throttle and error_status is None:
                    error_status = self._error(plan)
            return FaultDecision(latency=latency, throttle=throttle, error_status=error_status)

    def _throttle(self, name: str, plan: OperationFaults) -> bool:
        if plan.throttle_next > 0:
            plan.throttle_next -= 1
            return True
        if plan.throttle_rate is not None:
            # Sliding one-second window: simple, exact and easy to reason about in tests.
            now = time.monotonic()
            window = [stamp for stamp in self._windows.get(name, []) if now - stamp < 1.0]
            if len(window) >= plan.throttle_rate:
                self._windows[name] = window
                return True
            window.append(now)
            self._windows[name] = window
        return plan.throttle_probability > 0 and self._random.random() < plan.throttle_probability

    def _error(self, plan: OperationFaults) -> int | None:
        if plan.error_next > 0:
            plan.error_next -= 1
            return plan.error_status
        if plan.error_probability > 0 and self._random.random() < plan.error_probability:
            return plan.error_status
        return None


def parse_fault(text: str) -> tuple[str, dict[str, Any]]:
    """`OPERATION:name=value[,name=value...]`, e.g. `PollForJobs:throttle_probability=0.2`.

    Raises ValueError naming what is wrong; the settings themselves are checked by `set`.
    """
    operation, _, settings = text.partition(":")
    if not operation or not settings:
        raise ValueError(f"expected OPERATION:name=value[,...], got {text!r}")
    parsed: dict[str, Any] = {}
    for item in settings.split(","):
        name, _, raw = item.partition("=")
        try:
            parsed[name.strip()] = int(raw) if raw.strip().isdigit() else float(raw)
        except ValueError:
            raise ValueError(f"fault setting {item!r} needs a number") from None
    return operation, parsed


def parse_faults(text: str) -> list[tuple[str, dict[str, Any]]]:
    """Several `parse_fault` rules separated by `;` or whitespace (an environment variable)."""
    return [parse_fault(rule) for rule in text.replace(";", " ").split()]
