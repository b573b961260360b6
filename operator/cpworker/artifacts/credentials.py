"""The job's artifact credentials, read from the mounted shared-credentials file as it changes.

The operator refreshes the job's Secret (GetJobDetails) before the credentials expire, and the
kubelet updates the mounted file some time later (its sync period plus cache TTL: up to about
two minutes). botocore reads a shared-credentials file once, so a long transfer would keep
signing with expired credentials. `FileCredentials` instead:

- re-reads the file every few seconds while requests are signed, so refreshed credentials are
  used as soon as the kubelet has written them;
- after S3 answered that the credentials of a request expired, waits (bounded) for a version of
  the file newer than the one that request was signed with (`renew_after_expiry`); the caller
  then retries the request, signed anew.

Each request's signer runs in the thread that sends it, so the version a request was signed
with is remembered per thread. Secret values are registered with the log redaction and never
appear in a message.
"""

from __future__ import annotations

import configparser
import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from botocore.credentials import CredentialProvider, Credentials, ReadOnlyCredentials

from cpworker.artifacts.failures import ArtifactFailure
from cpworker.logging_setup import SECRETS

logger = logging.getLogger(__name__)

PROFILE: Final = "default"
_POLL_SECONDS: Final = 1.0


@dataclasses.dataclass(frozen=True)
class _Version:
    generation: int
    fingerprint: str  # sha256 of the file: tells versions apart without comparing secrets
    frozen: ReadOnlyCredentials = dataclasses.field(repr=False)


def parse_credentials_file(text: str, path: Path) -> ReadOnlyCredentials:
    """The `[default]` profile of a shared-credentials file; ArtifactFailure if it has none."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error:
        raise ArtifactFailure(
            "PermissionError",
            f"The job's credentials file {path} is not an AWS shared-credentials file, so the "
            "artifacts cannot be read or written. It is written by the cpworker operator: "
            "check that the operator is running and up to date.",
        ) from None
    section = parser[PROFILE] if parser.has_section(PROFILE) else None
    key_id = section.get("aws_access_key_id", "").strip() if section else ""
    secret = section.get("aws_secret_access_key", "").strip() if section else ""
    token = section.get("aws_session_token", "").strip() if section else ""
    if not key_id or not secret:
        raise ArtifactFailure(
            "PermissionError",
            "CodePipeline sent no artifact credentials for this job (the credentials file "
            f"{path} has no [default] profile with keys), so its artifacts cannot be read or "
            "written.",
        )
    SECRETS.add([secret, token])
    return ReadOnlyCredentials(key_id, secret, token or None)


class FileCredentials(Credentials):
    """botocore credentials backed by a file that is replaced while transfers run."""

    def __init__(
        self,
        path: Path,
        *,
        recheck_seconds: float,
        wait_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._path = path
        self._recheck = recheck_seconds
        self._wait = wait_seconds
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()  # guards _version and _checked_at
        self._renewing = threading.Lock()  # one thread waits for the file; others queue
        self._signed_with = threading.local()
        self._gave_up_on = -1  # a generation no newer file replaced in time
        self._version = self._read(generation=1)
        self._checked_at = clock()
        frozen = self._version.frozen
        super().__init__(
            frozen.access_key or "", frozen.secret_key or "", frozen.token, method="cpworker-file"
        )

    @property
    def generation(self) -> int:
        """How many distinct versions of the file have been loaded (1 = the first)."""
        with self._lock:
            return self._version.generation

    def _read(self, generation: int) -> _Version:
        try:
            raw = self._path.read_bytes()
        except OSError as error:
            raise ArtifactFailure(
                "ConfigurationError",
                f"Cannot read the job's credentials file {self._path} ({error.strerror}): the "
                "artifact helper expects the job volume that the cpworker operator mounts.",
            ) from None
        text = raw.decode("utf-8", errors="replace")
        return _Version(
            generation=generation,
            fingerprint=hashlib.sha256(raw).hexdigest(),
            frozen=parse_credentials_file(text, self._path),
        )

    def _install(self, version: _Version) -> None:
        """Make `version` current (caller holds _lock)."""
        self._version = version
        self.access_key = version.frozen.access_key or ""
        self.secret_key = version.frozen.secret_key or ""
        self.token = version.frozen.token
        logger.info(
            "artifact credentials loaded: generation=%d file=%s", version.generation, self._path
        )

    def _reload_if_changed(self) -> bool:
        """Re-read the file; install it when it changed. Never raises for a half-written file."""
        try:
            candidate = self._read(generation=0)
        except ArtifactFailure:
            # The kubelet swaps the file atomically, but an operator bug must not stop a
            # transfer that still has valid credentials: keep the current ones.
            return False
        with self._lock:
            if candidate.fingerprint == self._version.fingerprint:
                return False
            self._install(dataclasses.replace(candidate, generation=self._version.generation + 1))
            return True

    def get_frozen_credentials(self) -> ReadOnlyCredentials:
        """What the signer uses for one request; rechecks the file when due."""
        with self._lock:
            due = self._clock() - self._checked_at >= self._recheck
            if due:
                self._checked_at = self._clock()
        if due:
            self._reload_if_changed()
        with self._lock:
            version = self._version
        self._signed_with.generation = version.generation
        return version.frozen

    def renew_after_expiry(self) -> bool:
        """S3 said this thread's last request carried expired credentials: wait for newer ones.

        True when a version newer than the one that request was signed with is current (it may
        already have been loaded by another thread); False when none appeared within the wait.
        """
        stale = getattr(self._signed_with, "generation", self.generation)
        deadline = self._clock() + self._wait
        with self._renewing:
            while True:
                if self.generation > stale or self._reload_if_changed():
                    return True
                if self._gave_up_on >= stale:
                    return False  # another thread waited the whole time for this version
                remaining = deadline - self._clock()
                if remaining <= 0:
                    self._gave_up_on = stale
                    logger.warning(
                        "artifact credentials expired and no newer %s appeared within %.0f s",
                        self._path,
                        self._wait,
                    )
                    return False
                self._sleep(min(_POLL_SECONDS, remaining))


class FileCredentialProvider(CredentialProvider):
    """The only credential source of the helper's botocore session (no environment, no IMDS)."""

    METHOD = "cpworker-file"
    CANONICAL_NAME = "custom-cpworker-file"

    def __init__(self, credentials: FileCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> FileCredentials:
        return self._credentials
