"""Which callers AWS would turn away: expired or revoked access keys, roles that cannot be assumed.

moto accepts any credentials and lets any role be assumed, so on its own the sandbox cannot show
what a worker does when its identity fails. `Identities` holds what a test declares:

- `expire(key)`: requests signed with that access key id get `ExpiredTokenException`
  ("The security token included in the request is expired", HTTP 400) from CodePipeline and
  `ExpiredToken` from STS, as AWS answers a session whose credentials ran out;
- `revoke(key)`: `UnrecognizedClientException` ("The security token included in the request is
  invalid.", HTTP 400) from CodePipeline and `InvalidClientTokenId` (403) from STS, as AWS
  answers a deleted or deactivated key;
- `refuse_role(arn)`: STS AssumeRole of that role answers `AccessDenied` (403) "User: ... is not
  authorized to perform: sts:AssumeRole on resource: ARN", what STS says both for a role that
  does not exist and for one whose trust policy does not name the caller;
- `restore(key)` / `allow_role(arn)`: the credentials work again (a refreshed session, a fixed
  trust policy).

The CodePipeline stand-in checks every API request (before faults and validation: AWS
authenticates first); the STS front (`stsfront.py`) checks STS requests.
"""

from __future__ import annotations

import enum
import threading


class KeyState(enum.Enum):
    EXPIRED = "expired"
    REVOKED = "revoked"


class Identities:
    """Thread-safe: set from tests, read on the stand-ins' loops."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, KeyState] = {}
        self._refused_roles: set[str] = set()

    def expire(self, access_key_id: str) -> None:
        with self._lock:
            self._keys[access_key_id] = KeyState.EXPIRED

    def revoke(self, access_key_id: str) -> None:
        with self._lock:
            self._keys[access_key_id] = KeyState.REVOKED

    def restore(self, access_key_id: str | None = None) -> None:
        """That key (or every key) works again."""
        with self._lock:
            if access_key_id is None:
                self._keys.clear()
            else:
                self._keys.pop(access_key_id, None)

    def refuse_role(self, role_arn: str) -> None:
        with self._lock:
            self._refused_roles.add(role_arn)

    def allow_role(self, role_arn: str) -> None:
        with self._lock:
            self._refused_roles.discard(role_arn)

    def key_state(self, access_key_id: str | None) -> KeyState | None:
        if not access_key_id:
            return None
        with self._lock:
            return self._keys.get(access_key_id)

    def role_refused(self, role_arn: str) -> bool:
        with self._lock:
            return role_arn in self._refused_roles
