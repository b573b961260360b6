"""Temporary artifact credentials, minted per job and per GetJobDetails call."""

from __future__ import annotations

import collections
import dataclasses
import secrets
import string
import threading
import time

_KEY_ALPHABET = string.ascii_uppercase + string.digits


@dataclasses.dataclass(frozen=True)
class SessionCredentials:
    access_key_id: str
    secret_access_key: str = dataclasses.field(repr=False)
    session_token: str = dataclasses.field(repr=False)
    expires_at: float  # epoch seconds; AWS does not send it, the stand-in keeps it for tests

    def as_wire(self) -> dict[str, str]:
        return {
            "accessKeyId": self.access_key_id,
            "secretAccessKey": self.secret_access_key,
            "sessionToken": self.session_token,
        }


def mint(lifetime: float, markers: tuple[str, str] = ("", "")) -> SessionCredentials:
    """STS-shaped temporary credentials: an `ASIA` key id, a secret and a session token.

    `markers` start the secret and the token (canaries a test suite looks for everywhere a
    secret must never appear); the rest stays random, so every minting is unique.
    """
    key_id = "ASIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))
    secret_marker, token_marker = markers
    return SessionCredentials(
        access_key_id=key_id,
        secret_access_key=secret_marker + secrets.token_urlsafe(30)[: 40 - len(secret_marker)],
        session_token=token_marker + secrets.token_urlsafe(192),
        expires_at=time.time() + lifetime,
    )


class CredentialLedger:
    """Expiry times of the credentials the stand-in minted (bounded; oldest forgotten first).

    Lets the optional S3 guard refuse expired job credentials the way S3 would, which moto alone
    cannot do (it accepts any credentials).
    """

    def __init__(self, size: int = 100_000, markers: tuple[str, str] = ("", "")) -> None:
        self._lock = threading.Lock()
        self._expiry: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._size = size
        self.markers = markers

    def mint(self, lifetime: float) -> SessionCredentials:
        credentials = mint(lifetime, self.markers)
        with self._lock:
            self._expiry[credentials.access_key_id] = credentials.expires_at
            while len(self._expiry) > self._size:
                self._expiry.popitem(last=False)
        return credentials

    def expires_at(self, access_key_id: str) -> float | None:
        """When credentials minted here expire (epoch seconds); None for any other key id."""
        with self._lock:
            return self._expiry.get(access_key_id)
