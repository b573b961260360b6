"""cpworker.health: /healthz with kopf's semantics and /metrics, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Counter

from cpworker.health import HealthServer, Probe
from tests.scrape import Scrape


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def counting(result: object, calls: list[str], name: str) -> Probe:
    async def probe() -> object:
        calls.append(name)
        return result

    return probe


async def failing() -> object:
    raise RuntimeError("the API said no")


async def hanging() -> object:
    await asyncio.sleep(60)
    return "never"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Any]]:
    servers: list[HealthServer] = []

    async def start(
        probes: Mapping[str, Probe], registry: CollectorRegistry | None = None, **options: Any
    ) -> HealthServer:
        server = HealthServer(
            "127.0.0.1", 0, probes=probes, registry=registry or CollectorRegistry(), **options
        )
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


async def get(url: str, **headers: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return response.status, response.headers["Content-Type"], await response.text()


async def test_healthy_probes_answer_200_with_their_results(serve: Any) -> None:
    calls: list[str] = []
    server = await serve(
        {"api": counting("v1.31.0", calls, "api"), "workers": counting(3, calls, "w")}
    )
    assert server.url is not None
    assert server.url.startswith("http://127.0.0.1:")
    assert not server.url.endswith(":0")
    async with aiohttp.ClientSession() as session, session.get(f"{server.url}/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"api": "v1.31.0", "workers": 3}


async def test_any_failing_or_hanging_probe_answers_500_naming_it(serve: Any) -> None:
    calls: list[str] = []
    server = await serve(
        {"api": failing, "slow": hanging, "fine": counting("ok", calls, "fine")},
        probe_timeout=0.2,
    )
    async with aiohttp.ClientSession() as session, session.get(f"{server.url}/healthz") as response:
        assert response.status == 500
        assert await response.json() == {
            "api": "RuntimeError: the API said no",
            "slow": "timed out",
        }


async def test_results_are_cached_like_kopf_and_failures_are_not(serve: Any) -> None:
    clock = Clock()
    calls: list[str] = []
    state = {"fail": True}

    async def flaky() -> object:
        calls.append("flaky")
        if state["fail"]:
            raise RuntimeError("down")
        return "up"

    server = await serve({"flaky": flaky}, clock=clock)
    assert (await server.probe())[0] is False
    assert (await server.probe())[0] is False  # a failure is probed again at once
    state["fail"] = False
    assert await server.probe() == (True, {"flaky": "up"})
    clock.now += 5
    assert await server.probe() == (True, {"flaky": "up"})
    assert len(calls) == 3  # the second success came from the cache
    clock.now += 10
    await server.probe()
    assert len(calls) == 4


async def test_metrics_are_the_registrys_exposition(serve: Any) -> None:
    registry = CollectorRegistry()
    counter = Counter("cpworker_test_things", "Things.", ["kind"], registry=registry)
    counter.labels("a").inc(3)
    server = await serve({}, registry)
    status, content_type, text = await get(f"{server.url}/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    assert Scrape(text).value("cpworker_test_things_total", kind="a") == 3
    # Scrapers that ask for OpenMetrics get it.
    status, content_type, text = await get(
        f"{server.url}/metrics", Accept="application/openmetrics-text; version=1.0.0"
    )
    assert content_type.startswith("application/openmetrics-text")
    assert text.rstrip().endswith("# EOF")


async def test_a_port_in_use_fails_the_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = HealthServer("127.0.0.1", port, probes={}, registry=CollectorRegistry())
        with pytest.raises(OSError, match=r"in use"):
            await server.start()
        assert server.url is None
