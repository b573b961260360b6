"""What kopf compares to tell a change: the workers' essence, and nothing for Jobs and Pods.

On every watch event of every resource, kopf builds the object's "essence" (a deep copy of
the whole body, status included, then a second deep copy without its own annotations) and
diffs it with the last handled one, whether or not any handler of that resource reacts to
changes. Only CustomActionWorkers have such handlers (create/update/resume/delete); Jobs and
Pods have index and event handlers, which never see the essence. A Job with its pod template
is about 9 KB, and a burst brings about 18 Job and Pod events per job: those copies were the
largest single cost of a dispatched job (`cpworker bench --profile`, docs/benchmarks).

So Jobs and Pods get an empty essence. Their diff is then always empty, which nothing reads:
kopf uses it for change handlers (none) and to reset daemons' idle timers (none on them).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import kopf

from cpworker import names

# The only kind whose changes kopf handlers react to (handlers.py).
_CHANGE_HANDLED_API_VERSION = f"{names.GROUP}/{names.VERSION}"


class WorkerDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf's annotations diff-base storage, building essences only for our workers."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        if body.get("apiVersion") != _CHANGE_HANDLED_API_VERSION:
            return kopf.BodyEssence()
        return super().build(body=body, extra_fields=extra_fields)
