"""Whether the Kubernetes API lets a worker do its work: the errors its claims and supervision met.

Kubernetes errors never stop a worker's loop: a claim that fails is left to recovery or to
CodePipeline's redelivery, a supervision step that fails is retried next round. So without
this they never reached the worker's status: Ready stayed True "Polling" while every Job
create was refused (found by the fault tests of docs/reliability.md). A worker keeps one
`KubernetesHealth`; its claims and its supervision rounds tell it how they went, and the
Ready policy (workerstatus) shows the error it holds. Pure: no I/O, a clock passed in.

- A claim batch in which a Kubernetes call failed (after the client's own retries) records the
  error; the next poll backs off as after a poll error. A batch that claimed a job clears it.
  Polled jobs a failed claim leaves behind come back by redelivery, whose claim then clears
  it, or (acknowledged already) are recovered by supervision, whose release clears it too;
  an error older than `claim_memory_seconds` is forgotten (no job came back to prove it).
- A supervision round records its last Kubernetes error, or clears it when it met none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from cpworker.kube import KubeError

# How long a failed claim keeps the worker's condition when no later claim proves recovery.
CLAIM_MEMORY_SECONDS: Final = 300.0
# 401/403: the operator's identity may not do this here (RBAC, an expired token).
FORBIDDEN_STATUSES: Final = frozenset({401, 403})


@dataclass
class KubernetesHealth:
    clock: Callable[[], float]
    claim_memory_seconds: float = CLAIM_MEMORY_SECONDS
    _claim_error: tuple[float, KubeError] | None = field(default=None, repr=False)
    _supervision_error: KubeError | None = field(default=None, repr=False)

    def claims_failed(self, error: KubeError) -> None:
        self._claim_error = (self.clock(), error)

    def claims_succeeded(self) -> None:
        self._claim_error = None

    def supervision_round(self, error: KubeError | None) -> None:
        """A supervision round ended; `error` is the last Kubernetes error it met, if any."""
        self._supervision_error = error

    @property
    def supervision_failed(self) -> bool:
        """The last supervision round met a Kubernetes error: only another round clears it."""
        return self._supervision_error is not None

    def problem(self) -> KubeError | None:
        """The Kubernetes error the worker's condition should show now, if any."""
        if self._claim_error is not None:
            since, error = self._claim_error
            if self.clock() - since < self.claim_memory_seconds:
                return error
            self._claim_error = None
        return self._supervision_error


def is_forbidden(error: KubeError) -> bool:
    return error.status in FORBIDDEN_STATUSES
