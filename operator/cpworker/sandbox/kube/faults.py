"""Fault injection: answers a real kube-apiserver gives under load, during a restart or a
rollout, injected per verb and resource with probabilities, counts and a seed.

A plan is a set of rules, each keyed by a target `VERBS:RESOURCES` (comma lists, `*` for
all; a resource is `plural[.group][/subresource]`, `plural/*` for every subresource) and
holding one fault, e.g. `create,patch:jobs` → `{"status": [500, 503], "probability": 0.1}`.
Rules are tried in the order they were set: latencies add up, the first fault that fires is
answered. Only requests for API resources are faulted, never discovery, health or the
stand-in's own controllers (they call the API layer directly, as the real controllers are
not behind the API server's filters either).

What each fault looks like, from kubernetes/kubernetes (staging/src/k8s.io/...):

- 409 `Conflict` (apimachinery/pkg/api/errors `NewConflict`): a contended ResourceQuota during
  admission of a create, or a *conditional* write whose condition no longer holds — an update
  or patch carrying `metadata.resourceVersion`, a delete with `preconditions`, a server-side
  apply. Other updates, patches and deletes are retried on conflict inside the API server
  (registry/generic/registry/store.go, `GuaranteedUpdate`), so they never get a 409 and the
  fault passes them over. Never for get, list or watch.
- 429 from API Priority and Fairness / max-in-flight (apiserver/pkg/server/filters/
  priority-and-fairness.go, maxinflight.go `tooManyRequests`): *plain text*
  "Too many requests, please try again later." with `Retry-After` (1 s there). With
  `as_status`, the Status form instead: reason `TooManyRequests`, `details.retryAfterSeconds`
  and the same header, as the watch cache answers while it initialises (storage/cacher/
  cacher.go `NewTooManyRequests`, KEP-4568; endpoints/handlers/responsewriters/status.go sets
  the header from the details).
- 500 `InternalError`, 503 `ServiceUnavailable`, 504 `Timeout` (the timeout filter,
  server/filters/timeout.go). With `after`, the request is carried out and *then* answered
  with the error: the timeout filter answers 504 while the handler goes on and may commit,
  so a client cannot tell whether its write happened.
- Watches (endpoints/handlers/watch.go serves whatever watch.Interface storage returns):
  `cut` ends the stream cleanly after `after_events` events or `after_seconds` (as the
  server's own timeout or a graceful shutdown does); `abort` drops the connection without the
  final chunk (a load balancer or node going away); `gone` answers a watch that resumes from
  a resourceVersion with HTTP 200 and an `ERROR` event carrying a 410 `Expired` Status
  "too old resource version: X (Y)" — the cacher (storage/cacher/cacher.go, `Watch` returns
  `newErrWatcher` for errors of `getAllEventsSinceLocked`, watch_cache.go) and etcd
  (storage/etcd3/errors.go `interpretWatchError`: "The resourceVersion for the provided watch
  is too old.") both answer this way, never with an HTTP 410; `error` sends an `ERROR` event
  with a 500 InternalError Status mid-stream (storage/etcd3/watcher.go
  `transformErrorToEvent`); `too-large` an `ERROR` event with the 504 "Too large resource
  version" Status a lagging watch cache sends to a client resuming from a newer
  resourceVersion than it has seen (several API servers behind a load balancer;
  cacher.go `waitUntilWatchCacheFreshAndForceAllEvents`, storage/errors.go).
"""

from __future__ import annotations

import dataclasses
import json
import random
import threading
import time
from collections import Counter, deque
from typing import Any

from aiohttp import web

from cpworker.sandbox.kube.errors import ApiError, conflict

VERBS = frozenset(
    {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
)
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
STATUSES = frozenset({409, 429, 500, 503, 504})
AFTER_STATUSES = frozenset({500, 503, 504})
WATCH_FAULTS = frozenset({"cut", "abort", "gone", "error", "too-large"})
# Watch faults answered before any event (the others use after_events / after_seconds).
AT_START = frozenset({"gone", "too-large"})
APF_MESSAGE = "Too many requests, please try again later."
INJECTED_LOG_SIZE = 10_000
Obj = dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class ResourcePattern:
    plural: str  # "*" for every resource
    group: str | None  # None: any group
    subresource: str | None  # None: the main resource only; "*": any (or none)

    @classmethod
    def parse(cls, text: str) -> ResourcePattern:
        if text == "*":
            return cls("*", None, "*")
        main, _, subresource = text.partition("/")
        plural, _, group = main.partition(".")
        if not plural or (subresource == "" and "/" in text):
            raise ValueError(f"bad resource {text!r}: expected plural[.group][/subresource]")
        return cls(plural, group or None, subresource or None)

    def matches(self, group: str, plural: str, subresource: str | None) -> bool:
        if self.plural not in {"*", plural}:
            return False
        if self.group is not None and self.group != group:
            return False
        return self.subresource in {"*", subresource}


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """Which requests a rule applies to: `VERBS:RESOURCES`, e.g. `create,patch:jobs,secrets`."""

    verbs: frozenset[str]
    resources: tuple[ResourcePattern, ...]

    @classmethod
    def parse(cls, key: str) -> Target:
        verbs_text, sep, resources_text = key.partition(":")
        if not sep or not verbs_text or not resources_text:
            raise ValueError(
                f"bad fault target {key!r}: expected VERBS:RESOURCES, e.g. create:jobs"
            )
        verbs = frozenset(v.strip() for v in verbs_text.split(","))
        if "*" in verbs:
            verbs = VERBS
        unknown = verbs - VERBS
        if unknown:
            raise ValueError(f"unknown verb(s) {sorted(unknown)}; known: {sorted(VERBS)}, *")
        resources = tuple(ResourcePattern.parse(r.strip()) for r in resources_text.split(","))
        return cls(verbs, resources)

    def matches(self, request: FaultRequest) -> bool:
        return request.verb in self.verbs and any(
            pattern.matches(request.group, request.plural, request.subresource)
            for pattern in self.resources
        )


@dataclasses.dataclass(frozen=True, slots=True)
class FaultRequest:
    """What the server knows of a request when it decides on a fault."""

    verb: str
    group: str
    plural: str
    subresource: str | None = None
    namespace: str | None = None
    name: str | None = None
    resuming: bool = False  # a watch from a resourceVersion (only those can be "gone")
    agent: str = ""  # the User-Agent header
    conditional: bool = True  # a write that can meet a 409 (see `is_conditional`)

    @property
    def resource(self) -> str:
        return self.plural + (f"/{self.subresource}" if self.subresource else "")


@dataclasses.dataclass
class FaultRule:
    """One fault for a target. Counted faults (`next`) are for tests; probabilities (with a
    seed) for reliability runs. `latency` is added to every matching request."""

    status: tuple[int, ...] = ()  # one is chosen at random when the fault fires
    watch: str | None = None
    probability: float = 0.0
    next: int = 0
    latency: float = 0.0
    retry_after: int = 1
    as_status: bool = False
    after: bool = False
    after_events: int = 1
    after_seconds: float | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any], target: Target) -> FaultRule:
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = set(raw) - names
        if unknown:
            raise ValueError(f"unknown fault setting(s) {sorted(unknown)}; known: {sorted(names)}")
        settings = dict(raw)
        status = settings.get("status", ())
        settings["status"] = tuple(status if isinstance(status, list | tuple) else (status,))
        try:
            rule = cls(**settings)
        except TypeError as exc:
            raise ValueError(str(exc)) from exc
        rule._check(target)
        return rule

    def _check(self, target: Target) -> None:
        if any(not isinstance(s, int) or s not in STATUSES for s in self.status):
            raise ValueError(f"status must be among {sorted(STATUSES)}, got {list(self.status)}")
        if self.status and self.watch:
            raise ValueError("a rule injects either a status or a watch fault, not both")
        if self.watch is not None:
            if self.watch not in WATCH_FAULTS:
                raise ValueError(f"watch must be one of {sorted(WATCH_FAULTS)}")
            if target.verbs != {"watch"}:
                raise ValueError("watch faults need the watch verb alone, e.g. watch:jobs")
        if 409 in self.status and not target.verbs <= WRITE_VERBS:
            raise ValueError(
                "409 Conflict is only answered to writes: name create, update, patch, delete "
                "or deletecollection (a real API server never answers 409 to get/list/watch)"
            )
        if self.after and not set(self.status) <= AFTER_STATUSES:
            raise ValueError("after applies to 500, 503 and 504 only (409 and 429 refuse)")
        if (self.status or self.watch) and self.probability <= 0 and self.next <= 0:
            raise ValueError("a fault needs probability > 0 or next > 0, or it never fires")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if min(self.next, self.after_events, self.retry_after) < 0 or self.latency < 0:
            raise ValueError("latency, next, after_events and retry_after must be >= 0")
        if self.after_seconds is not None and self.after_seconds <= 0:
            raise ValueError("after_seconds must be > 0")
        if not (self.status or self.watch) and self.latency == 0:
            raise ValueError("a rule needs a status, a watch fault or a latency")

    def as_dict(self) -> Obj:
        data = dataclasses.asdict(self)
        data["status"] = list(self.status)
        return data


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """What to inject into one request (`rule` names the rule whose fault fired)."""

    latency: float = 0.0
    status: int | None = None
    rule: str = ""
    retry_after: int = 1
    as_status: bool = False
    after: bool = False
    watch: str | None = None
    after_events: int = 1
    after_seconds: float | None = None

    @property
    def fault(self) -> str:
        """A short name of the fault: `500`, `429`, `watch:cut`, `` (latency only)."""
        if self.status is not None:
            return str(self.status)
        return f"watch:{self.watch}" if self.watch else ""


@dataclasses.dataclass(frozen=True, slots=True)
class Injected:
    """A fault the server injected (kept for tests and the control endpoint)."""

    time: float
    verb: str
    resource: str
    namespace: str
    name: str
    fault: str
    rule: str

    def as_dict(self) -> Obj:
        return dataclasses.asdict(self)


class KubeFaults:
    """The fault plan, thread-safe: set from tests or the control endpoint, applied on the
    server's loop."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: dict[str, tuple[Target, FaultRule]] = {}
        self._random = random.Random(seed)  # noqa: S311 - fault injection, not cryptography
        self._injected: deque[Injected] = deque(maxlen=INJECTED_LOG_SIZE)
        self._counts: Counter[str] = Counter()
        self._exempt: tuple[str, ...] = ()

    def set(self, target: str, **settings: Any) -> None:
        """Replace the rule of `target`: `set("create:jobs", status=500, next=2)`."""
        parsed = Target.parse(target)
        rule = FaultRule.from_dict(settings, parsed)
        with self._lock:
            self._rules.pop(target, None)  # a replaced rule moves to the end of the order
            self._rules[target] = (parsed, rule)

    @property
    def active(self) -> bool:
        """Whether any rule is set (the server skips all fault work when none is)."""
        return bool(self._rules)

    def remove(self, target: str) -> None:
        with self._lock:
            self._rules.pop(target, None)

    def clear(self) -> None:
        """Remove every rule (the log of injected faults is kept; see `clear_log`)."""
        with self._lock:
            self._rules.clear()

    def clear_log(self) -> None:
        with self._lock:
            self._injected.clear()
            self._counts.clear()

    def exempt(self, *agents: str) -> None:
        """Never fault requests whose User-Agent starts with one of `agents` (e.g. a test's
        own kubectl, `kubectl/`), so that only the system under test meets the faults."""
        with self._lock:
            self._exempt = tuple(agents)

    @property
    def exempt_agents(self) -> tuple[str, ...]:
        return self._exempt

    def seed(self, value: int | None) -> None:
        with self._lock:
            self._random.seed(value)

    def as_dict(self) -> dict[str, Obj]:
        with self._lock:
            return {key: rule.as_dict() for key, (_, rule) in self._rules.items()}

    def injected(self) -> list[Injected]:
        with self._lock:
            return list(self._injected)

    def counts(self) -> dict[str, int]:
        """Injected faults by kind (`500`, `watch:cut`, ...), since the last `clear_log`."""
        with self._lock:
            return dict(self._counts)

    def decide(self, request: FaultRequest) -> Decision:
        """Consume this request's share of the plan and say what to inject."""
        with self._lock:
            if self._exempt and request.agent.startswith(self._exempt):
                return Decision()
            latency = 0.0
            fired: Decision | None = None
            for key, (target, rule) in self._rules.items():
                if not target.matches(request):
                    continue
                latency += rule.latency
                if fired is None and self._fires(rule, request):
                    fired = Decision(
                        status=self._random.choice(_statuses(rule, request))
                        if rule.status
                        else None,
                        rule=key,
                        retry_after=rule.retry_after,
                        as_status=rule.as_status,
                        after=rule.after,
                        watch=rule.watch,
                        after_events=0 if rule.watch in AT_START else rule.after_events,
                        after_seconds=rule.after_seconds,
                    )
            if fired is None:
                return Decision(latency=latency)
            decision = dataclasses.replace(fired, latency=latency)
            self._injected.append(
                Injected(
                    time=time.time(),
                    verb=request.verb,
                    resource=request.resource,
                    namespace=request.namespace or "",
                    name=request.name or "",
                    fault=decision.fault,
                    rule=decision.rule,
                )
            )
            self._counts[decision.fault] += 1
            return decision

    def _fires(self, rule: FaultRule, request: FaultRequest) -> bool:
        if not (rule.status or rule.watch) or not _can_fire(rule, request):
            return False
        if rule.watch in AT_START and not request.resuming:
            return False  # only a watch resuming from a resourceVersion is too old (or new)
        if rule.next > 0:
            rule.next -= 1
            return True
        return rule.probability > 0 and self._random.random() < rule.probability


def _can_fire(rule: FaultRule, request: FaultRequest) -> bool:
    return rule.watch is not None or bool(_statuses(rule, request))


def _statuses(rule: FaultRule, request: FaultRequest) -> tuple[int, ...]:
    """The rule's statuses a real server could answer this request with; empty when none
    (then the rule passes the request over)."""
    if request.conditional or request.verb == "create":
        return rule.status
    return tuple(status for status in rule.status if status != 409)


def is_conditional(verb: str, content_type: str, body: Any) -> bool:
    """Whether a write can be refused with 409 Conflict by a real server: an update or patch
    that names the resourceVersion it expects, a delete with preconditions, any server-side
    apply (field-manager conflicts). Creates always can (ResourceQuota admission)."""
    if verb == "create" or content_type == "application/apply-patch+yaml":
        return True
    if verb in {"delete", "deletecollection"}:
        preconditions = body.get("preconditions") if isinstance(body, dict) else None
        return isinstance(preconditions, dict) and any(preconditions.values())
    if isinstance(body, list):  # a JSON patch
        return any(
            isinstance(op, dict) and op.get("path") == "/metadata/resourceVersion" for op in body
        )
    metadata = body.get("metadata") if isinstance(body, dict) else None
    return isinstance(metadata, dict) and bool(metadata.get("resourceVersion"))


# -- parsing `VERBS:RESOURCES:name=value,...` (CLI flags, fixture opt-in) -----------------------
_BOOLEANS = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}


def _value(name: str, raw: str) -> Any:
    raw = raw.strip()
    if name == "status":
        return [int(part) for part in raw.split("|")]
    if name == "watch":
        return raw
    if name in {"as_status", "after"}:
        if raw.lower() not in _BOOLEANS:
            raise ValueError(f"{name} takes true or false, got {raw!r}")
        return _BOOLEANS[raw.lower()]
    if name in {"next", "retry_after", "after_events"}:
        return int(raw)
    return float(raw)


def parse_fault(text: str) -> tuple[str, Obj]:
    """`create,patch:jobs:status=500|503,probability=0.1` → (`create,patch:jobs`, settings)."""
    target, sep, settings_text = text.rpartition(":")
    if not sep or not target or not settings_text or "=" not in settings_text:
        raise ValueError(
            f"expected VERBS:RESOURCES:name=value[,...], e.g. 'create:jobs:status=500,next=1', "
            f"got {text!r}"
        )
    settings: Obj = {}
    for item in settings_text.split(","):
        name, _, raw = item.partition("=")
        name = name.strip()
        try:
            settings[name] = _value(name, raw)
        except ValueError as exc:
            raise ValueError(f"fault setting {item!r} in {text!r}: {exc}") from exc
    try:  # fail here, with the flag's text, rather than when the rule is applied
        FaultRule.from_dict(settings, Target.parse(target))
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from exc
    return target, settings


def parse_faults(text: str) -> list[tuple[str, Obj]]:
    """Several rules separated by `;` or whitespace (an environment variable's form)."""
    return [parse_fault(part) for part in text.replace(";", " ").split() if part]


# -- the answers ---------------------------------------------------------------------------------
def _qualified(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def refusal(decision: Decision, request: FaultRequest) -> web.Response:
    """The HTTP answer for a status fault, worded as kube-apiserver words it."""
    status = decision.status
    retry_headers = {"Retry-After": str(decision.retry_after)}
    if status == 429 and not decision.as_status:
        # APF's own answer: plain text, not a Status (http.Error in maxinflight.go).
        return web.Response(
            text=APF_MESSAGE + "\n",
            status=429,
            content_type="text/plain",
            headers={
                **retry_headers,
                "X-Content-Type-Options": "nosniff",
                "X-Kubernetes-PF-FlowSchema-UID": "sandbox-fault",
                "X-Kubernetes-PF-PriorityLevel-UID": "sandbox-fault",
            },
        )
    headers: dict[str, str] = {}
    if status == 409:
        error = conflict(request.group, request.plural, request.name or "")
    elif status == 429:
        error = ApiError(
            429,
            "TooManyRequests",
            f"storage is (re)initializing (injected by the sandbox) for "
            f"{_qualified(request.group, request.plural)}",
            details={"retryAfterSeconds": decision.retry_after},
        )
        headers = retry_headers
    elif status == 500:
        error = ApiError(
            500,
            "InternalError",
            "Internal error occurred: etcdserver: leader changed (injected by the sandbox)",
            details={"causes": [{"message": "etcdserver: leader changed"}]},
        )
    elif status == 503:
        error = ApiError(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request (injected by the sandbox)",
        )
    else:
        error = ApiError(
            504,
            "Timeout",
            "Timeout: request did not complete within requested timeout - context deadline "
            "exceeded (injected by the sandbox)",
            details={},
        )
    return web.Response(
        text=json.dumps(error.status(), separators=(",", ":")),
        status=error.code,
        content_type="application/json",
        headers=headers,
    )


def _before(since: str, current: int) -> int:
    return int(since) - 1 if since.isdigit() and int(since) > 0 else current


def watch_error_event(decision: Decision, since: str, current: int) -> Obj:
    """The ERROR event of a watch fault (`gone`, `error`, `too-large`); `since` is the
    resourceVersion the watch resumes from, `current` the server's."""
    if decision.watch == "gone":
        error = ApiError(410, "Expired", f"too old resource version: {since} ({current})")
    elif decision.watch == "too-large":
        error = ApiError(
            504,
            "Timeout",
            # the lagging cache has seen less than the client: its current is older
            f"Timeout: Too large resource version: {since}, current: {_before(since, current)}",
            details={
                "causes": [
                    {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
                ],
                "retryAfterSeconds": 1,
            },
        )
    else:
        error = ApiError(
            500,
            "InternalError",
            "Internal error occurred: etcdserver: no leader (injected by the sandbox)",
            details={"causes": [{"message": "etcdserver: no leader"}]},
        )
    return {"type": "ERROR", "object": error.status()}


MID_STREAM = frozenset({"cut", "abort", "error"})


class WatchCut:
    """Where a mid-stream watch fault ends the stream: after a number of events (bookmarks
    do not count) or at a time on the loop's clock."""

    def __init__(self, decision: Decision, now: float) -> None:
        self.fault = decision.watch if decision.watch in MID_STREAM else None
        timed = self.fault is not None and decision.after_seconds is not None
        self.at = now + decision.after_seconds if timed and decision.after_seconds else None
        self.left = decision.after_events if self.fault is not None and not timed else None

    @property
    def due(self) -> bool:
        """The stream ends now (a count of 0 ends it before the first event)."""
        return self.fault is not None and self.left == 0

    def take(self, lines: list[str]) -> list[str]:
        """The event lines to send before the cut (the rest are lost to this stream: the
        client resumes from the last resourceVersion it saw, as after a real cut)."""
        if self.left is None:
            return lines
        sent = lines[: self.left]
        self.left -= len(sent)
        return sent
