"""An optional S3 front for moto that refuses expired job credentials, as S3 would.

moto accepts any credentials, so on its own it cannot show that a worker renews artifact
credentials in time. The guard forwards every request to moto unchanged, except one signed
(header or presigned URL) with job credentials the stand-in minted and that have expired:
those get S3's `400 ExpiredToken` answer. Requests signed with any other key pass through.
"""

from __future__ import annotations

import re
import time

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

    def refusal(self, request: web.Request, body: bytes) -> web.Response | None:  # noqa: ARG002
        key_id = signing_key_id(request)
        expires_at = self._ledger.expires_at(key_id) if key_id else None
        if expires_at is not None and time.time() >= expires_at:
            return web.Response(status=400, text=_EXPIRED, content_type="application/xml")
        return None


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
