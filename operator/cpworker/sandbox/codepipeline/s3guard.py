"""An optional S3 front for moto that refuses expired job credentials, as S3 would.

moto accepts any credentials, so on its own it cannot show that a worker renews artifact
credentials in time. The guard forwards every request to moto unchanged, except one signed
(header or presigned URL) with job credentials the stand-in minted and that have expired:
those get S3's `400 ExpiredToken` answer. Requests signed with any other key pass through.

Two more things S3 does that moto cannot show:

- `deny(bucket, key_prefix, methods)`: an explicit Deny for the job's credentials (a bucket
  policy or KMS key policy that does not let the pipeline's role write, say): S3 answers
  `403 AccessDenied` ("Access Denied", the classic message S3 still sends where it does not
  name the policy). Other keys (the test's own) pass, so a test can still look at the bucket.
- `requests()`: a log of the S3 requests it answered (method, bucket, key, status, when the
  answer was complete), without headers or bodies, so tests can order uploads against the
  CodePipeline stand-in's request log.
"""

from __future__ import annotations

import collections
import dataclasses
import re
import threading
import time
from collections.abc import Collection

import aiohttp
from aiohttp import web

from cpworker.sandbox.codepipeline.credentials import CredentialLedger

_HEADER_CREDENTIAL = re.compile(r"Credential=([A-Z0-9]+)/")  # SigV4
_HEADER_V2 = re.compile(r"^AWS ([A-Z0-9]+):")  # SigV2, still used by some S3 clients
# Hop-by-hop and framing headers that aiohttp recomputes on each side. Content-Encoding passes
# through untouched (S3 uploads may be `aws-chunked`; bodies are never decompressed here).
_DROPPED = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host"})
_EXPIRED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ExpiredToken</Code>'
    "<Message>The provided token has expired.</Message></Error>"
)


def signing_key_id(request: web.Request) -> str | None:
    """The access key id that signed the request (header, or presigned URL; SigV4 or SigV2)."""
    authorization = request.headers.get("Authorization", "")
    match = _HEADER_CREDENTIAL.search(authorization) or _HEADER_V2.match(authorization)
    if match:
        return match.group(1)
    credential = request.query.get("X-Amz-Credential", "")
    return credential.split("/", 1)[0] or request.query.get("AWSAccessKeyId") or None


_ACCESS_DENIED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    "<Message>Access Denied</Message></Error>"
)
LOG_SIZE = 10_000


@dataclasses.dataclass(frozen=True)
class S3Request:
    """One answered S3 request (no headers, no body: nothing secret)."""

    method: str
    bucket: str
    key: str
    query: str  # the subresource, e.g. "uploads" or "uploadId=..." (multipart)
    status: int
    job_credentials: bool  # signed with credentials the stand-in minted for a job
    at: float  # wall clock when the answer was complete, epoch seconds


@dataclasses.dataclass(frozen=True)
class Denial:
    bucket: str
    key_prefix: str
    methods: frozenset[str]

    def covers(self, method: str, bucket: str, key: str) -> bool:
        return method in self.methods and bucket == self.bucket and key.startswith(self.key_prefix)


def _bucket_and_key(path: str) -> tuple[str, str]:
    """Path-style addressing (the only one a loopback endpoint gets): /bucket/key."""
    bucket, _, key = path.lstrip("/").partition("/")
    return bucket, key


class Front:
    """A loopback front that relays requests to moto unless `refusal` answers them itself."""

    def __init__(self, upstream: str) -> None:
        self._upstream = upstream.rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self.refused = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", self.forward)
        app.on_cleanup.append(self._close)
        return app

    async def _close(self, _: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    def refusal(self, request: web.Request, body: bytes) -> web.Response | None:
        """The answer AWS would give instead of moto's, if any."""
        raise NotImplementedError

    async def forward(self, request: web.Request) -> web.StreamResponse:
        # The body is sent before AWS answers, even a refusal: always read it first.
        body = await request.read()
        refused = self.refusal(request, body)
        if refused is not None:
            self.refused += 1
            return refused
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=False)
        return await relay(self._session, self._upstream, request, body)


class S3Guard(Front):
    def __init__(self, upstream: str, ledger: CredentialLedger) -> None:
        super().__init__(upstream)
        self._ledger = ledger
        self.expired = 0  # refusals for expired job credentials
        self._lock = threading.Lock()
        self._denials: list[Denial] = []
        self._log: collections.deque[S3Request] = collections.deque(maxlen=LOG_SIZE)

    def deny(
        self, bucket: str, key_prefix: str = "", methods: Collection[str] = ("PUT", "POST")
    ) -> None:
        """Refuse the job's credentials these requests with 403 AccessDenied (PUT and POST:
        PutObject and every multipart step)."""
        with self._lock:
            self._denials.append(Denial(bucket, key_prefix, frozenset(methods)))

    def requests(self) -> list[S3Request]:
        with self._lock:
            return list(self._log)

    def _denied(self, method: str, bucket: str, key: str) -> bool:
        with self._lock:
            return any(denial.covers(method, bucket, key) for denial in self._denials)

    def _expires_at(self, request: web.Request) -> float | None:
        key_id = signing_key_id(request)
        return self._ledger.expires_at(key_id) if key_id else None

    def refusal(self, request: web.Request, body: bytes) -> web.Response | None:  # noqa: ARG002
        expires_at = self._expires_at(request)
        if expires_at is None:
            return None
        if time.time() >= expires_at:
            self.expired += 1
            return web.Response(status=400, text=_EXPIRED, content_type="application/xml")
        if self._denied(request.method, *_bucket_and_key(request.path)):
            return web.Response(status=403, text=_ACCESS_DENIED, content_type="application/xml")
        return None

    async def forward(self, request: web.Request) -> web.StreamResponse:
        answer = await super().forward(request)
        bucket, key = _bucket_and_key(request.path)
        entry = S3Request(
            request.method,
            bucket,
            key,
            request.query_string,
            answer.status,
            self._expires_at(request) is not None,
            time.time(),
        )
        with self._lock:
            self._log.append(entry)
        return answer


async def relay(
    session: aiohttp.ClientSession, upstream: str, request: web.Request, body: bytes
) -> web.StreamResponse:
    """Send `request` (its `body` already read) to `upstream` unchanged; answer as it did."""
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROPPED}
    async with session.request(
        request.method,
        f"{upstream}{request.rel_url}",
        headers=headers,
        data=body,
        allow_redirects=False,
    ) as answer_from_upstream:
        payload = await answer_from_upstream.read()
        answer_headers = {
            k: v for k, v in answer_from_upstream.headers.items() if k.lower() not in _DROPPED
        }
        if request.method == "HEAD":
            # A HEAD answer has no body but must still say how long the object is.
            answer = web.StreamResponse(status=answer_from_upstream.status, headers=answer_headers)
            length = answer_from_upstream.headers.get("Content-Length")
            if length is not None:
                answer.content_length = int(length)
            await answer.prepare(request)
            return answer
        return web.Response(
            status=answer_from_upstream.status, body=payload, headers=answer_headers
        )
