"""Temporary artifact credentials, minted per job and per GetJobDetails call."""

from __future__ import annotations

import dataclasses
import secrets
import string
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


def mint(lifetime: float) -> SessionCredentials:
    """STS-shaped temporary credentials: an `ASIA` key id, a secret and a session token."""
    key_id = "ASIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))
    return SessionCredentials(
        access_key_id=key_id,
        secret_access_key=secrets.token_urlsafe(30)[:40],
        session_token=secrets.token_urlsafe(192),
        expires_at=time.time() + lifetime,
    )
