"""The suite-wide canary watch: secrets never appear in logs, events, statuses or exceptions.

tests/conftest.py plants canaries where the stand-ins hand out secrets by default (every job
credential minted by the CodePipeline stand-in starts with one; a scenario's default secret
configuration value is one; the protocol fakes' jobs carry tests/unit/operator/samples.py's),
and feeds this watch with everything the suite produces: every log record (message and
traceback), every Event and CustomActionWorker the Kubernetes stand-ins and fakes store, the
output of every operator subprocess, and every failure report. Any hit fails the session.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from tests.unit.operator import samples

# The access key id grants nothing alone and may be logged; the rest never.
WATCHED = (samples.CANARY_SECRET_KEY, samples.CANARY_SESSION_TOKEN, samples.CANARY_CONFIG_VALUE)
EVENT_RESOURCES = frozenset({"events"})
WORKER_RESOURCES = frozenset({"customactionworkers"})


@dataclass
class Watch:
    test: str = "(collection)"
    hits: list[tuple[str, str]] = field(default_factory=list)  # (test, where)
    scanned: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def scan(self, where: str, text: str, test: str | None = None) -> None:
        with self._lock:
            self.scanned += 1
        if any(canary in text for canary in WATCHED):
            with self._lock:
                self.hits.append((test or self.test, where))

    def merge(self, hits: list[list[str]], scanned: int) -> None:
        """What another watch found (an xdist worker's, its hits as lists after the wire)."""
        with self._lock:
            self.hits.extend((test, where) for test, where in hits)
            self.scanned += scanned

    def scan_object(self, where: str, obj: Any) -> None:
        self.scan(where, json.dumps(obj, default=str))


WATCH = Watch()


class CanaryHandler(logging.Handler):
    """Sees every record that reaches the root logger, as emitted (before any redaction a
    handler of its own may apply: a secret in a log call is a bug even when masked)."""

    def __init__(self, watch: Watch = WATCH) -> None:
        super().__init__()
        self.watch = watch

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except (TypeError, ValueError):
            text = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            text += logging.Formatter().formatException(record.exc_info)
        elif record.exc_text:
            text += record.exc_text
        self.watch.scan(f"log record of {record.name}", text)


def watch_store(kube: Any, watch: Watch = WATCH) -> None:
    """Scan every Event and CustomActionWorker a Kubernetes stand-in stores, as it stores it."""

    def heard(key: tuple[str, str], change: Any) -> None:
        if key[1] in EVENT_RESOURCES:
            event = change.obj
            text = f"{event.get('reason')} {event.get('message')} {event.get('note')}"
            watch.scan("an Event", text)
        elif key[1] in WORKER_RESOURCES:
            watch.scan_object("a worker's status", change.obj.get("status") or {})

    kube.call(lambda: kube.server.store.subscribe(heard))


def watch_fake(fake_kube: Any, watch: Watch = WATCH) -> None:
    """Scan what the operator wrote to a protocol test's FakeKube: Events and statuses."""
    for request in fake_kube.requests:
        if request.resource == "events" or request.subresource == "status":
            watch.scan_object(f"{request.method} {request.resource}", request.body)
