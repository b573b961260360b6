"""Is the operator alive, and what does it measure? `/healthz` and `/metrics` on one port.

kopf has a health endpoint of its own (`liveness_endpoint=`), but its server
(nolar/kopf, kopf/_core/engines/probing.py: `health_reporter`) builds its aiohttp application
inside the function with a single route, so no route can be added to it, and with port 0 the
port it bound is never told. The operator therefore serves both paths from this server:

- `GET /healthz`: kopf's semantics. Every probe runs (concurrently, each bounded by a
  timeout); all succeeded: 200 with `{probe: result}` as JSON; any failed: 500 with what failed.
  Successful results are reused for 10 s, as kopf does, so that frequent probes cannot load
  the Kubernetes API; a failure is probed again on the next request.
- `GET /metrics`: the Prometheus exposition of one registry (prometheus_client's aiohttp
  handler: text format, or OpenMetrics when the scraper asks for it).

The server runs on the operator's event loop. It binds `host:port`; port 0 picks a free one
and `url` tells which (tests and the sandbox scrape it).

`watch_loop_lag` measures that loop from the inside: a task that sleeps a quarter of a second
and records how late it wakes (`cpworker_event_loop_lag_seconds`). Answer times of `/healthz`
bound the lag only from above (probe results are cached, the HTTP round trip adds to it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from cpworker.kube import KubeClient

log = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[object]]
HEALTH_PATH: Final = "/healthz"
METRICS_PATH: Final = "/metrics"
# kopf's probing_max_age.
DEFAULT_CACHE_SECONDS: Final = 10.0
# Below the chart's default probe timeout (liveness.timeoutSeconds: 5), so the kubelet gets a
# 500 naming the slow probe rather than a timeout that names nothing.
DEFAULT_PROBE_TIMEOUT: Final = 4.0
_MAX_DETAIL: Final = 300
LOOP_LAG_INTERVAL: Final = 0.25


async def watch_loop_lag(
    observe: Callable[[float], None], interval: float = LOOP_LAG_INTERVAL
) -> None:
    """Until cancelled: sleep `interval`, tell `observe` how many seconds late the loop woke us."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        observe(max(0.0, loop.time() - due))


def kubernetes_api_probe(kube: KubeClient) -> Probe:
    """The API server answers `/version` through the operator's own client and executor."""

    async def probe() -> object:
        version = await kube.request("GET", "/version")
        return str(version.get("gitVersion", "ok"))

    return probe


def _plain(value: object) -> object:
    """A probe's result as JSON can carry it."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


class HealthServer:
    """The operator's HTTP endpoint: liveness probes and metrics. Start and stop it on the
    operator's event loop."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        probes: Mapping[str, Probe],
        registry: CollectorRegistry,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        probe_timeout: float = DEFAULT_PROBE_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.port = port
        self._probes = dict(probes)
        self._registry = registry
        self._cache_seconds = cache_seconds
        self._probe_timeout = probe_timeout
        self._clock = clock
        self._cached: dict[str, object] | None = None
        self._cached_at = 0.0
        self._lock: asyncio.Lock | None = None
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(HEALTH_PATH, self._healthz)
        app.router.add_get(METRICS_PATH, make_aiohttp_handler(self._registry))
        return app

    async def start(self) -> str:
        """Bind and serve; answers the base URL (`http://host:port`, the real port)."""
        runner = web.AppRunner(self.app(), handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        bound = runner.addresses[0]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{bound[1]}"
        log.info("serving %s and %s at %s", HEALTH_PATH, METRICS_PATH, self.url)
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await asyncio.shield(self._runner.cleanup())
            self._runner = None

    async def probe(self) -> tuple[bool, dict[str, object]]:
        """(healthy, results or failures by probe id): what `/healthz` answers."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            fresh = self._clock() - self._cached_at < self._cache_seconds
            if self._cached is not None and fresh:
                return True, self._cached
            names = list(self._probes)
            outcomes = await asyncio.gather(
                *(self._run_one(self._probes[name]) for name in names), return_exceptions=True
            )
            failures = {
                name: _describe(outcome)
                for name, outcome in zip(names, outcomes, strict=True)
                if isinstance(outcome, BaseException)
            }
            if failures:
                log.warning("liveness probes failed: %s", failures)
                return False, dict(failures)
            self._cached = {
                name: _plain(outcome) for name, outcome in zip(names, outcomes, strict=True)
            }
            self._cached_at = self._clock()
            return True, self._cached

    async def _run_one(self, probe: Probe) -> object:
        return await asyncio.wait_for(probe(), timeout=self._probe_timeout)

    async def _healthz(self, request: web.Request) -> web.Response:
        del request
        healthy, body = await self.probe()
        return web.json_response(body, status=200 if healthy else 500)


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    return f"{type(error).__name__}: {str(error)[:_MAX_DETAIL]}"
