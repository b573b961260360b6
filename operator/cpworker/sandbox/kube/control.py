"""The stand-in's control endpoint, `/_sandbox/...` on the API server's own URL, for tests, the
CLI and people: faults, history compaction, open watches. JSON in and out; admin token only
(other identities get 403), so `kubectl --raw` with the sandbox kubeconfig is the client:

    kubectl get --raw /_sandbox/faults
    kubectl create --raw /_sandbox/faults -f f.json  # {"create:jobs": {"status": 500, "next": 1}}
    kubectl delete --raw /_sandbox/faults

- `GET /_sandbox/faults`: the fault plan, in the order rules are tried; `POST` with
  `{"TARGET": {settings}, ...}` sets (replaces) those rules (400 on a bad rule, nothing changed);
  `DELETE` removes every rule.
- `GET /_sandbox/faults/injected`: faults injected so far (`counts` by kind, `items`); `DELETE`
  clears that log.
- `GET /_sandbox/config`, `POST /_sandbox/config`: `compaction_interval` (seconds, or null),
  `fault_seed`, `exempt_agents` (User-Agent prefixes never faulted).
- `POST /_sandbox/compact` (optional body `{"resourceVersion": "N"}`): compact the watch history.
- `DELETE /_sandbox/watches[?resource=jobs]`: end open watch streams now.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cpworker.sandbox.kube.faults import KubeFaults, ResourcePattern
from cpworker.sandbox.kube.store import Store

PREFIX = "/_sandbox/"
Obj = dict[str, Any]


@dataclasses.dataclass
class Compactor:
    """Periodic compaction of the watch history, as kube-apiserver compacts etcd every
    `--etcd-compaction-interval` (5 min by default) and its watch cache keeps a bounded
    window: after it, a watch resuming from an older resourceVersion is answered 410 Gone.
    None (the default) never compacts."""

    store: Store
    interval: float | None = None
    runs: int = 0
    _changed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def set_interval(self, interval: float | None) -> None:
        if interval is not None and interval <= 0:
            raise ValueError("compaction_interval must be > 0 seconds, or null to stop")
        self.interval = interval
        self._changed.set()  # a sleeping loop starts over with the new interval

    async def run(self) -> None:
        while True:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.interval)
                continue  # the interval changed (or compaction was switched off/on)
            if self.interval is not None:
                self.store.compact()
                self.runs += 1


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(body, separators=(",", ":")), status=status, content_type="application/json"
    )


def _bad(message: str) -> web.Response:
    return _json({"kind": "Status", "status": "Failure", "message": message, "code": 400}, 400)


async def _body(request: web.Request) -> Obj:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"expected a JSON object: {exc}") from exc
    if not isinstance(body, dict):
        raise TypeError("expected a JSON object")
    return body


class Control:
    """Runs on the server's loop, where the store lives."""

    def __init__(self, faults: KubeFaults, store: Store, compactor: Compactor) -> None:
        self.faults = faults
        self.store = store
        self.compactor = compactor

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path.removeprefix(PREFIX).strip("/")
        handler = self._routes().get((request.method, path))
        if handler is None:
            return _json(
                {
                    "kind": "Status",
                    "status": "Failure",
                    "message": f"no control endpoint {request.method} {request.path}; see "
                    "docs/sandbox-kubernetes.md (Faults)",
                    "code": 404,
                },
                404,
            )
        try:
            return await handler(request)
        except (TypeError, ValueError) as exc:
            return _bad(str(exc))

    def _routes(self) -> dict[tuple[str, str], Callable[[web.Request], Awaitable[web.Response]]]:
        return {
            ("GET", "faults"): self._get_faults,
            ("POST", "faults"): self._post_faults,
            ("DELETE", "faults"): self._delete_faults,
            ("GET", "faults/injected"): self._get_injected,
            ("DELETE", "faults/injected"): self._delete_injected,
            ("GET", "config"): self._get_config,
            ("POST", "config"): self._post_config,
            ("POST", "compact"): self._compact,
            ("DELETE", "watches"): self._close_watches,
        }

    async def _get_faults(self, _: web.Request) -> web.Response:
        return _json(self.faults.as_dict())

    async def _post_faults(self, request: web.Request) -> web.Response:
        body = await _body(request)
        for target, settings in body.items():
            if not isinstance(settings, dict):
                raise TypeError(f"the settings of {target!r} must be a JSON object")
        scratch = KubeFaults()  # check every rule first: a bad request changes nothing
        for target, settings in body.items():
            scratch.set(target, **settings)
        for target, settings in body.items():
            self.faults.set(target, **settings)
        return _json(self.faults.as_dict())

    async def _delete_faults(self, _: web.Request) -> web.Response:
        self.faults.clear()
        return _json({})

    async def _get_injected(self, _: web.Request) -> web.Response:
        items = [item.as_dict() for item in self.faults.injected()]
        return _json({"counts": self.faults.counts(), "items": items})

    async def _delete_injected(self, _: web.Request) -> web.Response:
        self.faults.clear_log()
        return _json({"counts": {}, "items": []})

    def _config(self) -> Obj:
        return {
            "compaction_interval": self.compactor.interval,
            "compactions": self.compactor.runs,
            "exempt_agents": list(self.faults.exempt_agents),
        }

    async def _get_config(self, _: web.Request) -> web.Response:
        return _json(self._config())

    async def _post_config(self, request: web.Request) -> web.Response:
        body = await _body(request)
        unknown = set(body) - {"compaction_interval", "fault_seed", "exempt_agents"}
        if unknown:
            raise ValueError(
                f"unknown setting(s) {sorted(unknown)}; known: compaction_interval, "
                "exempt_agents, fault_seed"
            )
        if "exempt_agents" in body:
            agents = body["exempt_agents"]
            if not isinstance(agents, list) or not all(isinstance(a, str) for a in agents):
                raise TypeError("exempt_agents takes a list of User-Agent prefixes")
            self.faults.exempt(*agents)
        if "compaction_interval" in body:
            interval = body["compaction_interval"]
            if interval is not None and (
                isinstance(interval, bool) or not isinstance(interval, int | float)
            ):
                raise TypeError("compaction_interval takes seconds or null")
            self.compactor.set_interval(None if interval is None else float(interval))
        if "fault_seed" in body:
            seed = body["fault_seed"]
            if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
                raise TypeError("fault_seed takes an integer or null")
            self.faults.seed(seed)
        return _json(self._config())

    async def _compact(self, request: web.Request) -> web.Response:
        body = await _body(request)
        raw = body.get("resourceVersion")
        if raw is not None and not str(raw).isdigit():
            raise ValueError("resourceVersion must be a number")
        compacted = self.store.compact(None if raw is None else int(raw))
        return _json({"resourceVersion": str(compacted)})

    async def _close_watches(self, request: web.Request) -> web.Response:
        resource = request.query.get("resource")
        pattern = ResourcePattern.parse(resource) if resource else None
        closed = self.store.drop_watches(
            None if pattern is None else lambda key: pattern.matches(key[0], key[1], None)
        )
        return _json({"closed": closed})
