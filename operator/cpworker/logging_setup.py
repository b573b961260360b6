"""Structured logging (json or text) with a redaction filter as belt and braces.

Secrets are kept out of log calls by construction (jobdata holds them as SecretStr; the
stages log ids, never payloads). The filter is the second line: anything that looks like an
AWS secret key, session token or a value registered as secret (the secret configuration
values of jobs in flight) is replaced by `***` before a record is formatted.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
import threading
from collections.abc import Iterable
from typing import Any, Final, TextIO

REDACTED: Final = "***"

# Shapes of AWS secrets: a 40-character secret access key next to its name, session tokens,
# and `"secretAccessKey": "..."`-style pairs in any serialized payload.
_PATTERNS: Final = [
    re.compile(
        r"(?i)(secret_?access_?key|session_?token|aws_secret_access_key|aws_session_token)"
        r"([\"']?\s*[:=]\s*[\"']?)([^\s\"',}]+)"
    ),
    re.compile(r"(?i)(\"?(?:sessionToken|secretAccessKey)\"?\s*:\s*\")([^\"]+)(\")"),
]


class SecretRegistry:
    """Secret values known at runtime (e.g. secret configuration of jobs in flight).

    Values are only ever compared, never logged. Thread-safe: boto3 calls log from the
    executor's threads.
    """

    # Values this short are too likely to occur by chance in harmless text.
    MIN_LENGTH: Final = 4
    # Bounded: the oldest values are forgotten first (jobs long finished).
    MAX_VALUES: Final = 10_000

    def __init__(self) -> None:
        self._values: dict[str, None] = {}
        self._lock = threading.Lock()

    def add(self, values: Iterable[str]) -> None:
        with self._lock:
            for value in values:
                if value and len(value) >= self.MIN_LENGTH:
                    self._values.pop(value, None)
                    self._values[value] = None
            while len(self._values) > self.MAX_VALUES:
                self._values.pop(next(iter(self._values)))

    def discard(self, values: Iterable[str]) -> None:
        with self._lock:
            for value in values:
                self._values.pop(value, None)

    def redact(self, text: str) -> str:
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for value in values:
            if value in text:
                text = text.replace(value, REDACTED)
        return text


SECRETS: Final = SecretRegistry()


def redact(text: str, registry: SecretRegistry = SECRETS) -> str:
    """`text` with secret-looking parts and registered secret values replaced by ***."""
    text = registry.redact(text)
    text = _PATTERNS[0].sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return _PATTERNS[1].sub(lambda m: f"{m.group(1)}{REDACTED}{m.group(3)}", text)


class RedactingFilter(logging.Filter):
    """Renders each record's message once, redacted, so no handler sees the raw arguments."""

    def __init__(self, registry: SecretRegistry = SECRETS) -> None:
        super().__init__()
        self._registry = registry

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg = redact(message, self._registry)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            # Format the traceback now, redacted, and drop the live exception object.
            formatter = logging.Formatter()
            record.exc_text = redact(formatter.formatException(record.exc_info), self._registry)
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, plus kopf's object context."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # kopf's per-object loggers carry the object's reference in `k8s_ref`.
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict):
            payload["object"] = {k: ref.get(k) for k in ("namespace", "name", "kind")}
        if record.exc_text:
            payload["exception"] = record.exc_text
        elif record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure(
    log_format: str = "json", level: str = "INFO", stream: TextIO | None = None
) -> logging.Handler:
    """Install one redacting handler on the root logger; returns it (tests detach it)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    # botocore at DEBUG logs request and response bodies (credentials included): never.
    for noisy in ("botocore", "boto3", "urllib3", "kubernetes"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, logging.getLevelName(level)))
    return handler
