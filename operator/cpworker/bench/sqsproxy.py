"""A counting pass-through in front of moto's SQS: how many SQS calls the operator makes.

moto keeps no per-caller request log, so the operator's `AWS_ENDPOINT_URL_SQS` points here:
each request is forwarded unchanged (moto checks no signatures) and its operation noted. The
stand-in's own event deliveries go to moto directly and are not counted. Long polls (up to
20 s, more with a slow moto) are held open as long as moto holds them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
import urllib.parse
from dataclasses import dataclass

import aiohttp
from aiohttp import web

HOP_BY_HOP = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "accept-encoding"}
)


@dataclass(frozen=True)
class SqsCall:
    operation: str
    at: float  # wall clock, epoch seconds, when the answer went back


def operation_of(target: str | None, body: bytes) -> str:
    """`AmazonSQS.ReceiveMessage` (JSON protocol) or `Action=ReceiveMessage` (query protocol)."""
    if target:
        return target.rpartition(".")[2]
    form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
    return (form.get("Action") or ["Unknown"])[0]


class CountingSqsProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._calls: list[SqsCall] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    def calls(self, since: float = 0.0) -> list[SqsCall]:
        with self._lock:
            return [call for call in self._calls if call.at >= since]

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=body, headers=headers
        ) as answer:
            payload = await answer.read()
            reply_headers = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
        with self._lock:
            self._calls.append(
                SqsCall(operation_of(request.headers.get("X-Amz-Target"), body), time.time())
            )
        return web.Response(status=answer.status, body=payload, headers=reply_headers)

    async def _open(self) -> str:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    def start(self) -> CountingSqsProxy:
        ready: concurrent.futures.Future[str] = concurrent.futures.Future()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                ready.set_result(loop.run_until_complete(self._open()))
            except Exception as exc:  # noqa: BLE001 - handed to the starting thread
                ready.set_exception(exc)
                return
            loop.run_forever()
            loop.run_until_complete(self._close())
            loop.close()

        self._thread = threading.Thread(target=serve, name="bench-sqs-proxy", daemon=True)
        self._thread.start()
        self.url = ready.result(timeout=30)
        return self

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop = self._thread = None
