"""The few Kubernetes calls the stages make, async, over aiohttp on the operator's event loop.

Requests carry plain JSON dicts both ways: the stages build manifests as dicts (manifests.py)
and kopf hands bodies over as dicts, so the kubernetes client's generated models would only
add a place for fields to get lost. The client itself is not used at all: importing it costs
the operator about 40 MiB of resident memory (its thousand model classes), and its blocking
calls needed a thread hand-over per request, about a quarter of the operator's CPU in a burst
(docs/benchmarks/README.md). The API server and credentials come from `kubeconn` (kubeconfig
or the pod's ServiceAccount), the same ones kopf logs in with.

Kubernetes answers are mapped to a few exceptions the stages decide on: `AlreadyExistsError`
(deterministic names make this "already dispatched"), `NotFoundError`, `ConflictError`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
import weakref
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import aiohttp
import yarl

from cpworker import jsoncodec, kubeconn, names, timestamps

log = logging.getLogger(__name__)

Body = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"


class KubeError(Exception):
    """A Kubernetes API call failed (the message carries the API's reason, never bodies)."""

    def __init__(self, method: str, path: str, status: int, reason: str, message: str) -> None:
        super().__init__(f"{method} {path}: {status} {reason}: {message}")
        self.method = method
        self.path = path
        self.status = status
        self.reason = reason
        self.detail = message


class NotFoundError(KubeError):
    """404: the object does not exist (anymore)."""


class AlreadyExistsError(KubeError):
    """409 AlreadyExists: an object of that name exists."""


class ConflictError(KubeError):
    """409 Conflict: a resourceVersion precondition failed."""


class RetryableKubeError(KubeError):
    """429 or 5xx after our retries ran out."""


def _error(method: str, path: str, status: int, raw: bytes | str | None) -> KubeError:
    reason, message = "", ""
    try:
        payload = jsoncodec.loads(raw or b"{}")
        reason = str(payload.get("reason", ""))
        message = str(payload.get("message", ""))
    except (ValueError, AttributeError):
        message = "unparseable error body"
    if status == 404:
        return NotFoundError(method, path, status, reason or "NotFound", message)
    if status == 409 and reason == "AlreadyExists":
        return AlreadyExistsError(method, path, status, reason, message)
    if status == 409:
        return ConflictError(method, path, status, reason or "Conflict", message)
    if status == 429 or status >= 500:
        return RetryableKubeError(method, path, status, reason, message)
    return KubeError(method, path, status, reason, message)


class RequestOutcome(StrEnum):
    """How one attempt of a request ended (what an observer is told)."""

    OK = "ok"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"  # 409: AlreadyExists or a failed resourceVersion precondition
    THROTTLED = "throttled"  # 429
    ERROR = "error"  # any other 4xx/5xx, or no answer at all


class RequestObserver(Protocol):
    """Told about every request attempt (metrics.Metrics is one)."""

    def kubernetes_request(self, *, verb: str, resource: str, outcome: RequestOutcome) -> None: ...


def outcome_of(error: BaseException | None) -> RequestOutcome:
    """The outcome of an attempt that raised `error` (None: it succeeded)."""
    if error is None:
        return RequestOutcome.OK
    if isinstance(error, NotFoundError):
        return RequestOutcome.NOT_FOUND
    if isinstance(error, AlreadyExistsError | ConflictError):
        return RequestOutcome.CONFLICT
    if isinstance(error, KubeError) and error.status == 429:
        return RequestOutcome.THROTTLED
    return RequestOutcome.ERROR


def rbac_attributes(
    method: str, path: str, query: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """(verb, resource[/subresource]) of a request, as Kubernetes' RBAC names them.

    Paths are `/api/v1[/namespaces/NS]/RESOURCE[/NAME[/SUB]]` or the same under
    `/apis/GROUP/VERSION`; anything else (`/version`, discovery) is "nonresource".
    """
    parts = [part for part in path.split("?", maxsplit=1)[0].split("/") if part]
    if parts[:1] == ["api"]:
        rest = parts[2:]
    elif parts[:1] == ["apis"]:
        rest = parts[3:]
    else:
        return (method.lower(), "nonresource")
    # As apiserver's RequestInfoFactory reads it: `/namespaces/NS/RESOURCE...` is namespaced,
    # while `/namespaces/NS`, `/namespaces/NS/status` and `/namespaces/NS/finalize` are about
    # the namespace itself.
    if rest[:1] == ["namespaces"] and len(rest) > 2 and rest[2] not in {"status", "finalize"}:
        rest = rest[2:]
    if not rest:
        return (method.lower(), "nonresource")
    resource, named = rest[0], len(rest) >= 2
    if len(rest) >= 3:
        resource += f"/{rest[2]}"
    verb = {
        "GET": "get" if named else "list",
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if named else "deletecollection",
    }.get(method.upper(), method.lower())
    if verb == "list" and (query or {}).get("watch") in {"true", "1"}:
        verb = "watch"
    return (verb, resource)


class KubeClient:
    """Async JSON calls for Jobs, Secrets, Pods, Events and the worker's status.

    One aiohttp session per event loop (the operator has one; tests and `cpworker check` run
    others), opened on first use: a session is bound to the loop it was made in.
    """

    def __init__(
        self,
        connection: kubeconn.Connection,
        *,
        attempts: int = 4,
        request_timeout: float = 30.0,
        observer: RequestObserver | None = None,
        pool_size: int = 100,
    ) -> None:
        self._connection = connection
        self._attempts = attempts
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._observer = observer
        self._pool_size = max(pool_size, 1)
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession]
        self._sessions = weakref.WeakKeyDictionary()

    @property
    def connection(self) -> kubeconn.Connection:
        """The API server and the identity the requests use (kopf logs in with the same)."""
        return self._connection

    async def close(self) -> None:
        """Close this event loop's connections (the operator's cleanup)."""
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()

    # ---- transport ------------------------------------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._pool_size, ssl=self._connection.ssl_context() or False
            )
            # The API server's JSON is decoded by `jsoncodec` below, never by aiohttp, and
            # no proxy or .netrc from the environment applies (the connection says it all).
            session = aiohttp.ClientSession(connector=connector, trust_env=False)
            self._sessions[loop] = session
        return session

    async def _send(
        self,
        method: str,
        url: yarl.URL,
        data: bytes | None,
        content_type: str,
        *,
        refresh: bool,
    ) -> tuple[int, bytes]:
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        authorization = await self._connection.authorization(refresh=refresh)
        if authorization:
            headers["Authorization"] = authorization
        session = self._session()  # may raise ConfigError (an unreadable CA or client key)
        async with session.request(
            method,
            url,
            data=data,
            headers=headers,
            timeout=self._timeout,
            server_hostname=self._connection.server_hostname,
        ) as response:
            return response.status, await response.read()

    async def _exchange(
        self,
        method: str,
        path: str,
        body: Any,
        query: Mapping[str, str] | None,
        content_type: str,
    ) -> Body:
        # The paths are quoted already (quote() of every name): tell yarl not to quote again.
        target = path + ("?" + urlencode(dict(query)) if query else "")
        url = yarl.URL(self._connection.server + target, encoded=True)
        data = None if body is None else jsoncodec.dumps(body)
        try:
            status, raw = await self._send(method, url, data, content_type, refresh=False)
            if status == 401:
                # A rotated service-account token or an expired exec credential: read it
                # again once, as kopf does for its own requests.
                status, raw = await self._send(method, url, data, content_type, refresh=True)
        except (aiohttp.ClientError, TimeoutError) as exc:
            # No answer at all (refused, reset, timed out): as retryable as a 503.
            raise RetryableKubeError(method, path, 0, "Unreachable", type(exc).__name__) from None
        except kubeconn.ConfigError as exc:
            raise KubeError(method, path, 0, "NoCredentials", str(exc)) from None
        if status >= 400:
            raise _error(method, path, status, raw)
        if not raw:
            return {}
        result: Body = jsoncodec.loads(raw)
        return result

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Body:
        """One API call; 429/5xx and connection errors are retried with jittered backoff."""
        for attempt in range(1, self._attempts + 1):
            try:
                return await self._attempt(method, path, body, query, content_type)
            except RetryableKubeError:
                if attempt == self._attempts:
                    raise
            jitter = random.uniform(0, min(2.0, 0.1 * 2**attempt))  # noqa: S311 - not crypto
            await asyncio.sleep(jitter)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self,
        method: str,
        path: str,
        body: Any,
        query: Mapping[str, str] | None,
        content_type: str,
    ) -> Body:
        """One try of a request, told to the observer with its outcome."""
        error: BaseException | None = None
        try:
            return await self._exchange(method, path, body, query, content_type)
        except BaseException as exc:
            error = exc
            raise
        finally:
            if self._observer is not None and not isinstance(error, asyncio.CancelledError):
                verb, resource = rbac_attributes(method, path, query)
                self._observer.kubernetes_request(
                    verb=verb, resource=resource, outcome=outcome_of(error)
                )

    # ---- Jobs -----------------------------------------------------------------------------

    @staticmethod
    def _jobs(namespace: str, name: str = "") -> str:
        base = f"/apis/batch/v1/namespaces/{quote(namespace)}/jobs"
        return f"{base}/{quote(name)}" if name else base

    async def create_job(self, namespace: str, manifest: Body) -> Body:
        return await self.request("POST", self._jobs(namespace), manifest)

    async def get_job(self, namespace: str, name: str) -> Body:
        return await self.request("GET", self._jobs(namespace, name))

    async def patch_job(self, namespace: str, name: str, patch: Body) -> Body:
        return await self.request(
            "PATCH", self._jobs(namespace, name), patch, content_type=MERGE_PATCH
        )

    async def delete_job(
        self, namespace: str, name: str, *, resource_version: str | None = None
    ) -> None:
        """Delete a Job and (in the background) its pods and owned Secret. Gone is fine.

        With `resource_version`, the delete happens only if nobody changed the Job since it
        was read (ConflictError otherwise).
        """
        options: Body = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": "Background",
        }
        if resource_version:
            options["preconditions"] = {"resourceVersion": resource_version}
        try:
            await self.request("DELETE", self._jobs(namespace, name), options)
        except NotFoundError:
            return

    async def list_jobs(
        self, namespace: str | None, label_selector: str, *, resource_version: str | None = None
    ) -> list[Body]:
        """Jobs by label. `resource_version="0"` lets the API server answer from its watch
        cache (cheap, possibly a moment old) instead of a quorum read of etcd."""
        path = self._jobs(namespace) if namespace else "/apis/batch/v1/jobs"
        query = {"labelSelector": label_selector}
        if resource_version is not None:
            query["resourceVersion"] = resource_version
        return await self._items(path, query)

    async def _items(self, path: str, query: Mapping[str, str]) -> list[Body]:
        """The items of one list call."""
        result = await self.request("GET", path, query=query)
        return list(result.get("items", []))

    # ---- Secrets --------------------------------------------------------------------------

    @staticmethod
    def _secrets(namespace: str, name: str = "") -> str:
        base = f"/api/v1/namespaces/{quote(namespace)}/secrets"
        return f"{base}/{quote(name)}" if name else base

    async def create_secret(self, namespace: str, manifest: Body) -> Body:
        return await self.request("POST", self._secrets(namespace), manifest)

    async def get_secret(self, namespace: str, name: str) -> Body:
        return await self.request("GET", self._secrets(namespace, name))

    async def patch_secret(self, namespace: str, name: str, patch: Body) -> Body:
        return await self.request(
            "PATCH", self._secrets(namespace, name), patch, content_type=MERGE_PATCH
        )

    async def delete_secret(
        self,
        namespace: str,
        name: str,
        *,
        uid: str | None = None,
        resource_version: str | None = None,
    ) -> None:
        """Delete a Secret; gone is fine. With `uid`/`resource_version`, only that very Secret,
        unchanged since it was read (ConflictError otherwise)."""
        options: Body | None = None
        preconditions = {
            key: value
            for key, value in (("uid", uid), ("resourceVersion", resource_version))
            if value
        }
        if preconditions:
            options = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": preconditions}
        try:
            await self.request("DELETE", self._secrets(namespace, name), options)
        except NotFoundError:
            return

    # ---- Pods -----------------------------------------------------------------------------

    async def list_pods(self, namespace: str, label_selector: str) -> list[Body]:
        path = f"/api/v1/namespaces/{quote(namespace)}/pods"
        return await self._items(path, {"labelSelector": label_selector})

    # ---- Events ---------------------------------------------------------------------------

    async def list_events(self, namespace: str, field_selector: str) -> list[Body]:
        """core/v1 Events selected by fields (involvedObject.*, reason, type)."""
        path = f"/api/v1/namespaces/{quote(namespace)}/events"
        return await self._items(path, {"fieldSelector": field_selector})

    # ---- CustomActionWorker ---------------------------------------------------------------

    @staticmethod
    def _workers(namespace: str, name: str) -> str:
        return (
            f"/apis/{names.GROUP}/{names.VERSION}/namespaces/{quote(namespace)}/"
            f"{names.PLURAL}/{quote(name)}"
        )

    async def get_worker(self, namespace: str, name: str) -> Body:
        return await self.request("GET", self._workers(namespace, name))

    async def patch_worker_metadata(
        self, namespace: str, name: str, metadata: Body, *, resource_version: str
    ) -> Body:
        """Merge-patch the worker's metadata, only if it is unchanged since `resource_version`
        (ConflictError otherwise): lists such as finalizers are replaced whole."""
        patch: Body = {"metadata": {**metadata, "resourceVersion": resource_version}}
        return await self.request(
            "PATCH", self._workers(namespace, name), patch, content_type=MERGE_PATCH
        )

    async def patch_worker_status(
        self, namespace: str, name: str, status: Body, *, resource_version: str | None = None
    ) -> Body:
        """Merge-patch the status subresource (lists such as conditions are replaced whole).

        With `resource_version`, the patch applies only if the worker is unchanged since it was
        read (ConflictError otherwise): read-modify-write of the counters.
        """
        patch: Body = {"status": status}
        if resource_version:
            patch["metadata"] = {"resourceVersion": resource_version}
        return await self.request(
            "PATCH", self._workers(namespace, name) + "/status", patch, content_type=MERGE_PATCH
        )

    # ---- Events ---------------------------------------------------------------------------

    async def post_event(
        self,
        involved: Mapping[str, Any],
        reason: str,
        message: str,
        *,
        type_: str = "Normal",
        component: str = "cpworker",
    ) -> None:
        """Record a core/v1 Event on `involved` (a body or a reference). Best effort."""
        metadata = involved.get("metadata", involved)
        namespace = str(metadata.get("namespace") or "default")
        now = timestamps.now()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{str(metadata.get('name', 'obj'))[:200]}.{uuid.uuid4().hex[:12]}",
                "namespace": namespace,
            },
            "involvedObject": {
                "apiVersion": str(involved.get("apiVersion", names.API_VERSION)),
                "kind": str(involved.get("kind", names.KIND)),
                "name": str(metadata.get("name", "")),
                "namespace": namespace,
                "uid": str(metadata.get("uid", "")),
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "source": {"component": component},
            "firstTimestamp": timestamps.rfc3339(now),
            "lastTimestamp": timestamps.rfc3339(now),
            "count": 1,
            "reportingComponent": component,
        }
        try:
            await self.request("POST", f"/api/v1/namespaces/{quote(namespace)}/events", event)
        except KubeError as exc:
            # Events are informational; failing to post one must not fail a job.
            log.warning("could not post event %s: %s", reason, exc)
