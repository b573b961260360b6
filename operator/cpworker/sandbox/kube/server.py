"""HTTP front of the stand-in: routing, authentication, content negotiation, watch streams
and the audit log. All API semantics live in `api.py`."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import json
import logging
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

import yaml
from aiohttp import web

from cpworker.sandbox.kube import discovery, events, eviction, faults, rbac, tables
from cpworker.sandbox.kube.admission import REQUEST_IDENTITY, Admission, AdmissionConfig
from cpworker.sandbox.kube.api import STRICT_FIELDS, Api, DeleteOptions
from cpworker.sandbox.kube.control import PREFIX, Compactor, Control
from cpworker.sandbox.kube.errors import ApiError, bad_request
from cpworker.sandbox.kube.gc import GarbageCollector
from cpworker.sandbox.kube.namespaces import NamespaceController
from cpworker.sandbox.kube.protobuf import ProtobufError, decode_body
from cpworker.sandbox.kube.resources import Registry, ResourceType
from cpworker.sandbox.kube.selectors import (
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)
from cpworker.sandbox.kube.store import Store, TooOldError, Watcher

logger = logging.getLogger(__name__)
USER_KEY = web.RequestKey("user", str)  # who sent the request, for the audit of watches
IDENTITY_KEY = web.RequestKey("identity", rbac.Identity)
FAULT_KEY = web.RequestKey("fault", faults.Decision)  # what to inject into this request
Obj = dict[str, Any]
USER = "sandbox-admin"
# The User-Agent of the request being handled (each aiohttp request runs in its own task).
REQUEST_AGENT: contextvars.ContextVar[str] = contextvars.ContextVar("agent", default="")
PATCH_TYPES = frozenset(
    {
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
    }
)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    verb: str
    apiGroup: str  # noqa: N815 - named as in Kubernetes audit events
    resource: str
    subresource: str
    namespace: str
    name: str
    user: str
    code: int
    # As a real audit event's userAgent and stageTimestamp: who sent it and when (epoch
    # seconds), so that a test can tell the operator's requests from its own and bound their
    # rate.
    userAgent: str = ""  # noqa: N815 - named as in Kubernetes audit events
    at: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Route:
    group: str
    version: str
    plural: str
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    watch_path: bool = False


def parse_route(path: str) -> Route | None:
    parts = [p for p in path.strip("/").split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    watch_path = bool(rest) and rest[0] == "watch"
    if watch_path:
        rest = rest[1:]
    namespace = None
    if not rest:
        return None
    if (
        rest[0] == "namespaces"
        and len(rest) >= 3
        and not (group == "" and len(rest) == 3 and rest[2] in {"status", "finalize"})
    ):
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        return None
    return Route(
        group=group,
        version=version,
        plural=rest[0],
        namespace=namespace,
        name=rest[1] if len(rest) > 1 else None,
        subresource=rest[2] if len(rest) > 2 else None,
        watch_path=watch_path,
    )


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(text=_dumps(obj), status=status, content_type="application/json")


class KubeServer:
    def __init__(
        self,
        token: str,
        *,
        history_size: int = 10_000,
        audit_size: int = 20_000,
        bookmark_interval: float = 5.0,
        default_watch_timeout: float = 1800.0,
        admission: AdmissionConfig | None = None,
        gc_delay: float = 0.0,
    ) -> None:
        self.token = token
        # bearer token -> identity; the admin's token is unrestricted (system:masters)
        self.identities: dict[str, rbac.Identity] = {
            token: rbac.Identity(USER, (rbac.MASTERS, "system:authenticated"))
        }
        self.store = Store(history_size=history_size)
        self.registry = Registry()
        self.api = Api(self.store, self.registry)
        self.api.admission = Admission(
            self.store,
            lambda identity, ask: rbac.allowed(identity, ask, self._read),
            self._resolve_kind,
            admission or AdmissionConfig(),
        )
        # controllers every cluster runs (the job runner is optional, in standin.py)
        self.controllers = (
            GarbageCollector(self.api, delay=gc_delay),
            NamespaceController(self.api),
        )
        self.address = ""
        self.bookmark_interval = bookmark_interval
        self.default_watch_timeout = default_watch_timeout
        self._audit: deque[AuditRecord] = deque(maxlen=audit_size)
        self._audit_lock = threading.Lock()
        self._stopping = asyncio.Event()
        self.faults = faults.KubeFaults()
        self.compactor = Compactor(self.store)
        self.control = Control(self.faults, self.store, self.compactor)

    # -- audit ---------------------------------------------------------------------------
    def audit(self) -> list[AuditRecord]:
        with self._audit_lock:
            return list(self._audit)

    def clear_audit(self) -> None:
        with self._audit_lock:
            self._audit.clear()

    def _record(self, verb: str, route: Route | None, code: int, user: str = USER) -> None:
        record = AuditRecord(
            verb=verb,
            apiGroup=route.group if route else "",
            resource=route.plural if route else "",
            subresource=(route.subresource or "") if route else "",
            namespace=(route.namespace or "") if route else "",
            name=(route.name or "") if route else "",
            user=user,
            code=code,
            userAgent=REQUEST_AGENT.get(),
            at=time.time(),
        )
        with self._audit_lock:
            self._audit.append(record)

    # -- application ---------------------------------------------------------------------
    def app(self) -> web.Application:
        application = web.Application(client_max_size=16 * 1024 * 1024)
        application.router.add_route("*", "/{tail:.*}", self.handle)
        return application

    def stop_watches(self) -> None:
        self._stopping.set()
        self.store.close_watches()

    async def handle(self, request: web.Request) -> web.StreamResponse:  # noqa: PLR0911,PLR0912 - one branch per case of the protocol
        if request.path in {"/healthz", "/readyz", "/livez"}:
            return web.Response(text="ok")
        REQUEST_AGENT.set(request.headers.get("User-Agent", ""))  # each request is its own task
        identity = self._authenticate(request)
        if not isinstance(identity, rbac.Identity):
            return identity
        if request.path.startswith(PREFIX):
            if not identity.unrestricted:
                refusal = ApiError(403, "Forbidden", "the sandbox control endpoint is admin only")
                return _json(refusal.status(), 403)
            return await self.control.handle(request)
        static = self._static(request)
        if static is not None:
            return static
        route = parse_route(request.path)
        if route is None:
            return _json(
                ApiError(
                    404, "NotFound", "the server could not find the requested resource"
                ).status(),
                404,
            )
        verb = _verb(request, route)
        request[USER_KEY] = identity.user
        request[IDENTITY_KEY] = identity
        if not identity.unrestricted:
            ask = rbac.Request(
                verb=verb,
                group=route.group,
                resource=route.plural + (f"/{route.subresource}" if route.subresource else ""),
                namespace=route.namespace,
                name=route.name,
            )
            if not rbac.allowed(identity, ask, self._read):
                self._record(verb, route, 403, identity.user)
                failure = ApiError(
                    403,
                    "Forbidden",
                    rbac.denial(identity, ask),
                    details={"name": route.name or "", "group": route.group, "kind": route.plural},
                )
                return _json(failure.status(), 403)
        fault, target = await self._fault(request, route, verb)
        if fault.status is not None and not fault.after:  # refused before it took effect
            self._record(verb, route, fault.status, identity.user)
            return faults.refusal(fault, target)
        strict = STRICT_FIELDS.set(request.query.get("fieldValidation") == "Strict")
        who = REQUEST_IDENTITY.set(identity)
        try:
            response = await self._dispatch(request, route, verb)
        except ApiError as exc:
            self._record(verb, route, exc.code, identity.user)
            return _json(exc.status(), exc.code)
        except SelectorError as exc:
            self._record(verb, route, 400, identity.user)
            return _json(bad_request(str(exc)).status(), 400)
        except ConnectionResetError:
            # The client went away while sending its body (a killed process): nothing was
            # done and nobody waits for an answer; not a failure of the server.
            logger.debug("client went away during %s %s", request.method, request.path)
            self._record(verb, route, 400, identity.user)
            return _json(bad_request("the request body could not be read").status(), 400)
        except Exception:  # a bug in the stand-in: answer like the real server, and say so
            logger.exception("kube stand-in failed on %s %s", request.method, request.path)
            self._record(verb, route, 500, identity.user)
            failure = ApiError(
                500,
                "InternalError",
                "an error on the server (the stand-in) has prevented the request from succeeding",
            )
            return _json(failure.status(), 500)
        finally:
            REQUEST_IDENTITY.reset(who)
            STRICT_FIELDS.reset(strict)
        if fault.status is not None and response.status < 400:  # `after`: done, yet "failed"
            response = faults.refusal(fault, target)
        if verb != "watch":  # a watch is recorded when its stream opens
            self._record(verb, route, response.status, identity.user)
        return response

    async def _fault(
        self, request: web.Request, route: Route, verb: str
    ) -> tuple[faults.Decision, faults.FaultRequest]:
        """Decide this request's fault (see faults.py) and wait out its latency."""
        target = faults.FaultRequest(verb, route.group, route.plural, route.subresource)
        if not self.faults.active:
            return faults.Decision(), target
        name, body = route.name, None
        other_format = any(kind in request.content_type for kind in ("protobuf", "yaml"))
        if verb in faults.WRITE_VERBS and not other_format:
            with contextlib.suppress(ValueError):
                body = json.loads(await request.read() or b"null")  # aiohttp caches the body
        if name is None and isinstance(body, dict):
            metadata = body.get("metadata")
            name = metadata.get("name") if isinstance(metadata, dict) else None
        raw_since = request.query.get("resourceVersion", "")
        resuming = raw_since not in {"", "0"} and request.query.get("sendInitialEvents") != "true"
        target = dataclasses.replace(
            target,
            namespace=route.namespace,
            name=name,
            resuming=resuming,
            agent=request.headers.get("User-Agent", ""),
            conditional=faults.is_conditional(verb, request.content_type, body),
        )
        fault = self.faults.decide(target)
        if fault.latency > 0:
            await asyncio.sleep(fault.latency)
        request[FAULT_KEY] = fault
        return fault, target

    def _authenticate(self, request: web.Request) -> rbac.Identity | web.Response:
        """The caller's identity (impersonation honoured for the admin), or a refusal."""
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        identity = self.identities.get(bearer)
        if identity is None:
            self._record(request.method.lower(), parse_route(request.path), 401, "")
            return _json(ApiError(401, "Unauthorized", "Unauthorized").status(), 401)
        if "Impersonate-User" not in request.headers:  # `kubectl --as=...`
            return identity
        if not identity.unrestricted:
            self._record("impersonate", None, 403, identity.user)
            refusal = ApiError(
                403, "Forbidden", f'users "{identity.user}" is forbidden: cannot impersonate'
            )
            return _json(refusal.status(), 403)
        return _impersonated(request)

    def _review(self, rtype: ResourceType, body: Any, asker: rbac.Identity) -> web.Response:
        """Answer a (Self)SubjectAccessReview from the stored RBAC objects."""
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be an object")
        spec = body.get("spec") or {}
        if rtype.kind == "SubjectAccessReview":
            user = str(spec.get("user", ""))
            groups = tuple(spec.get("groups") or ())
            subject = (
                rbac.Identity(user, groups)
                if groups or not user.startswith("system:serviceaccount:")
                else rbac.Identity.service_account(
                    *user.removeprefix("system:serviceaccount:").split(":", 1)
                )
            )
        else:
            subject = asker
        attributes = spec.get("resourceAttributes")
        if attributes is None:  # nonResourceAttributes: discovery is open to everyone
            allowed = True
        else:
            resource = str(attributes.get("resource", ""))
            if attributes.get("subresource"):
                resource += f"/{attributes['subresource']}"
            ask = rbac.Request(
                verb=str(attributes.get("verb", "")),
                group=str(attributes.get("group", "")),
                resource=resource,
                namespace=attributes.get("namespace") or None,
                name=attributes.get("name") or None,
            )
            allowed = rbac.allowed(subject, ask, self._read)
        answer = {
            "apiVersion": rtype.api_version,
            "kind": rtype.kind,
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": {"allowed": allowed},
        }
        return _json(answer, 201)

    def _resolve_kind(self, api_version: str, kind: str) -> tuple[str, str] | None:
        rtype = self.registry.by_kind(api_version, kind)
        return None if rtype is None else (rtype.group, rtype.plural)

    def _read(self, group: str, plural: str, namespace: str | None) -> list[Obj]:
        return list(self.store.iterate((group, plural), namespace))

    def _static(self, request: web.Request) -> web.StreamResponse | None:  # noqa: PLR0911 - one branch per case of the protocol
        path = request.path.rstrip("/") or "/"
        if path == "/version":
            return _json(discovery.version_info())
        if path == "/api":
            return _json(discovery.core_versions(self.address))
        if path == "/apis":
            return _json(discovery.group_list(self.registry))
        if path == "/openapi/v3":
            return _json(discovery.openapi_root(self.registry))
        if path.startswith("/openapi/v3/"):
            parts = path.removeprefix("/openapi/v3/").split("/")
            group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
            if not self.registry.in_group_version(group, version):
                return _json(ApiError(404, "NotFound", "not found").status(), 404)
            return _json(discovery.openapi_group_version(self.registry, group, version))
        if path in {"/openapi/v2", "/swagger.json"}:
            return _json(
                ApiError(404, "NotFound", "OpenAPI v2 is not served; use /openapi/v3").status(), 404
            )
        parts = path.strip("/").split("/")
        document = None
        if len(parts) == 2 and parts[0] == "api":
            document = discovery.resource_list(self.registry, "", parts[1])
        elif len(parts) == 2 and parts[0] == "apis":
            document = discovery.group(self.registry, parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            document = discovery.resource_list(self.registry, parts[1], parts[2])
        else:
            return None
        if document is None:
            return _json(
                ApiError(
                    404, "NotFound", "the server could not find the requested resource"
                ).status(),
                404,
            )
        return _json(document)

    # -- resources -----------------------------------------------------------------------
    def _resource_type(self, route: Route) -> ResourceType:
        rtype = self.registry.get(route.group, route.version, route.plural)
        if rtype is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if route.subresource and route.subresource not in rtype.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if route.namespace is not None and not rtype.namespaced:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if route.namespace is None and rtype.namespaced and route.name is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return rtype

    async def _dispatch(self, request: web.Request, route: Route, verb: str) -> web.StreamResponse:  # noqa: PLR0911,PLR0912 - one branch per case of the protocol
        rtype = self._resource_type(route)
        query = request.query
        if rtype.group == "authorization.k8s.io":
            if verb != "create":
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
            return self._review(rtype, await _read_body(request), request[IDENTITY_KEY])
        if verb == "watch":
            return await self._watch(request, route, rtype)
        if verb == "list":
            return self._list(request, route, rtype)
        if verb == "get":
            if route.subresource == "log":
                pod = self.api.get(rtype, route.namespace, route.name or "")
                text = self._pod_log(pod, query.get("container"))
                return web.Response(text=text, content_type="text/plain")
            obj = self.api.get(rtype, route.namespace, route.name or "")
            return self._object_response(request, rtype, obj)
        dry_run = "dryRun" in query
        if verb == "create" and route.subresource == "eviction":
            answer = eviction.evict(
                self.api, route.namespace or "", route.name or "", await _read_body(request)
            )
            return _json(answer, 201)
        if verb == "create":
            if route.name is not None:
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
            body = await _read_body(request)
            obj = self.api.create(
                rtype,
                route.namespace,
                body,
                dry_run=dry_run,
                field_manager=query.get("fieldManager"),
            )
            return self._object_response(request, rtype, obj, 201)
        if verb == "update":
            body = await _read_body(request)
            obj = self.api.update(
                rtype,
                route.namespace,
                route.name or "",
                body,
                subresource=route.subresource,
                dry_run=dry_run,
            )
            return self._object_response(request, rtype, obj)
        if verb == "patch":
            content_type = request.content_type
            if content_type not in PATCH_TYPES:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - "
                    f"accepted media types include: {', '.join(sorted(PATCH_TYPES))}",
                )
            body = await _read_body(request)
            obj, created = self.api.patch(
                rtype,
                route.namespace,
                route.name or "",
                content_type,
                body,
                subresource=route.subresource,
                field_manager=query.get("fieldManager"),
                dry_run=dry_run,
            )
            return self._object_response(request, rtype, obj, 201 if created else 200)
        if verb == "delete":
            body = await _read_body(request, optional=True)
            options = DeleteOptions.from_body(body if isinstance(body, dict) else None, dict(query))
            obj, removed = self.api.delete(rtype, route.namespace, route.name or "", options)
            if rtype.returns_deleted_object or not removed:
                return self._object_response(request, rtype, obj, 200 if removed else 202)
            return _json(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {
                        "name": obj["metadata"]["name"],
                        "group": rtype.group,
                        "kind": rtype.plural,
                        "uid": obj["metadata"]["uid"],
                    },
                }
            )
        if verb == "deletecollection":
            body = await _read_body(request, optional=True)
            options = DeleteOptions.from_body(body if isinstance(body, dict) else None, dict(query))
            deleted = []
            for obj in self.api.list(rtype, route.namespace, *self._selectors(request, rtype)):
                with contextlib.suppress(ApiError):
                    deleted.append(
                        self.api.delete(
                            rtype,
                            obj["metadata"].get("namespace"),
                            obj["metadata"]["name"],
                            options,
                        )[0]
                    )
            return _json(self._list_body(rtype, deleted))
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")

    def _pod_log(self, pod: Obj, container: str | None) -> str:
        """Local-exec output when the pod ran locally, else the scripted log annotation."""
        meta = pod["metadata"]
        logs = self.api.pod_logs.get((meta["namespace"], meta["name"]))
        if logs:
            names = [c["name"] for c in pod["spec"].get("containers") or []]
            chosen = container or (names[0] if names else "")
            if chosen not in logs:
                raise ApiError(
                    400, "BadRequest", f"container {chosen} is not valid for pod {meta['name']}"
                )
            return logs[chosen]
        return str((meta.get("annotations") or {}).get("sandbox.cpworker.io/log", ""))

    def _selectors(self, request: web.Request, rtype: ResourceType) -> tuple[Any, Any]:
        fields = request.query.get("fieldSelector")
        if rtype.stored_as:
            fields = events.core_field_selector(fields)
        return (
            parse_label_selector(request.query.get("labelSelector")),
            parse_field_selector(fields, rtype.kind),
        )

    def _list_body(self, rtype: ResourceType, items: list[Obj], cont: str = "") -> Obj:
        metadata: Obj = {"resourceVersion": str(self.store.resource_version)}
        if cont:
            metadata["continue"] = cont
        return {
            "kind": f"{rtype.kind}List",
            "apiVersion": rtype.api_version,
            "metadata": metadata,
            "items": items,
        }

    def _list(self, request: web.Request, route: Route, rtype: ResourceType) -> web.Response:
        items = self.api.list(rtype, route.namespace, *self._selectors(request, rtype))
        offset = 0
        if request.query.get("continue"):
            try:
                offset = int(request.query["continue"])
            except ValueError as exc:
                raise bad_request("invalid continue token") from exc
        cont = ""
        limit = int(request.query.get("limit") or 0)
        if offset or limit:
            end = offset + limit if limit else len(items)
            cont = str(end) if end < len(items) else ""
            items = items[offset:end]
        table = _table_include(request)
        if table is not None:
            extra = {"continue": cont} if cont else None
            return _json(
                tables.table(
                    rtype, items, str(self.store.resource_version), table, extra_metadata=extra
                )
            )
        return _json(self._list_body(rtype, items, cont))

    def _object_response(
        self, request: web.Request, rtype: ResourceType, obj: Obj, status: int = 200
    ) -> web.Response:
        include = _table_include(request)
        if include is not None and request.method == "GET":
            return _json(
                tables.table(rtype, [obj], obj["metadata"].get("resourceVersion", ""), include),
                status,
            )
        return _json(obj, status)

    async def _watch(  # noqa: PLR0912,PLR0915 - one branch per case of the protocol
        self, request: web.Request, route: Route, rtype: ResourceType
    ) -> web.StreamResponse:
        query = request.query
        labels, fields = self._selectors(request, rtype)
        if route.name:
            fields = (*fields, *parse_field_selector(f"metadata.name={route.name}", rtype.kind))
        raw_since = query.get("resourceVersion", "")
        initial = query.get("sendInitialEvents") == "true"
        since = None if raw_since in {"", "0"} or initial else int(raw_since)
        timeout = float(query.get("timeoutSeconds") or self.default_watch_timeout)
        bookmarks = query.get("allowWatchBookmarks") == "true"
        include = _table_include(request)
        watcher = Watcher(route.namespace, labels, fields)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        self._record("watch", route, 200, request.get(USER_KEY, USER))
        fault = request.get(FAULT_KEY) or faults.Decision()
        if fault.watch in faults.AT_START:
            gone = faults.watch_error_event(fault, raw_since, self.store.resource_version)
            await response.write((_dumps(gone) + "\n").encode())
            return response
        key = rtype.storage_key
        try:
            self.store.watch(key, watcher, since)
        except TooOldError as exc:
            gone = ApiError(410, "Expired", str(exc)).status()
            await response.write((_dumps({"type": "ERROR", "object": gone}) + "\n").encode())
            return response

        def event(kind: str, obj: Obj) -> str:
            shown = self.api.present(rtype, obj)
            if include is not None and kind != "BOOKMARK":
                shown = tables.table(rtype, [shown], shown["metadata"]["resourceVersion"], include)
            return _dumps({"type": kind, "object": shown}) + "\n"

        def bookmark(annotations: dict[str, str] | None = None) -> str:
            meta: Obj = {"resourceVersion": str(self.store.resource_version)}
            if annotations:
                meta["annotations"] = annotations
            return (
                _dumps(
                    {
                        "type": "BOOKMARK",
                        "object": {
                            "kind": rtype.kind,
                            "apiVersion": rtype.api_version,
                            "metadata": meta,
                        },
                    }
                )
                + "\n"
            )

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        cut = faults.WatchCut(fault, loop.time())
        deadline = min(deadline, cut.at or deadline)
        try:
            if initial:
                lines = []
                while not watcher.queue.empty():
                    lines.append(event(*watcher.queue.get_nowait()))
                lines = cut.take(lines)
                if not cut.due:
                    lines.append(bookmark({"k8s.io/initial-events-end": "true"}))
                await response.write("".join(lines).encode())
            while not self._stopping.is_set() and not cut.due:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    first = await asyncio.wait_for(
                        watcher.queue.get(), min(remaining, self.bookmark_interval)
                    )
                except TimeoutError:
                    if bookmarks:
                        await response.write(bookmark().encode())
                    continue
                pending = [first]
                while not watcher.queue.empty():
                    pending.append(watcher.queue.get_nowait())
                lines = [event(kind, obj) for kind, obj in pending if kind != "STOP"]
                stopped = len(lines) != len(pending)
                lines = cut.take(lines)
                if lines:
                    await response.write("".join(lines).encode())
                if stopped:
                    break
            if cut.due or (cut.at is not None and loop.time() >= cut.at):
                await self._cut(request, response, fault)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.store.unwatch(key, watcher)
        return response

    async def _cut(
        self, request: web.Request, response: web.StreamResponse, fault: faults.Decision
    ) -> None:
        """End a watch stream the way its fault says (a clean `cut` just returns)."""
        if fault.watch == "error":
            error = faults.watch_error_event(fault, "", self.store.resource_version)
            await response.write((_dumps(error) + "\n").encode())
        elif fault.watch == "abort" and request.transport is not None:
            request.transport.abort()  # no final chunk: the client sees a broken stream


def _impersonated(request: web.Request) -> rbac.Identity:
    user = request.headers["Impersonate-User"]
    groups = tuple(request.headers.getall("Impersonate-Group", []))
    if user.startswith("system:serviceaccount:") and not groups:
        namespace, _, name = user.removeprefix("system:serviceaccount:").partition(":")
        return rbac.Identity.service_account(namespace, name)
    return rbac.Identity(user, (*groups, "system:authenticated"))


def _table_include(request: web.Request) -> str | None:
    accept = request.headers.get("Accept", "")
    first = accept.split(",")[0]
    if "as=Table" not in first:
        return None
    return request.query.get("includeObject", "Metadata")


def _verb(request: web.Request, route: Route) -> str:
    method = request.method
    watching = route.watch_path or request.query.get("watch") in {"true", "1"}
    if method == "GET":
        if watching:
            return "watch"
        return "get" if route.name else "list"
    return {
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if route.name else "deletecollection",
    }.get(method, method.lower())


async def _read_body(request: web.Request, *, optional: bool = False) -> Any:
    raw = await request.read()
    if not raw:
        if optional:
            return None
        raise bad_request("the request requires a body")
    content_type = request.content_type
    if content_type == "application/vnd.kubernetes.protobuf":
        try:
            return decode_body(raw)
        except ProtobufError as exc:
            raise ApiError(415, "UnsupportedMediaType", str(exc)) from exc
    try:
        if content_type in {"application/yaml", "application/apply-patch+yaml"}:
            return yaml.safe_load(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise bad_request(f"the body of the request could not be decoded: {exc}") from exc
