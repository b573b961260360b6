"""In-memory fakes of the operator's two clients, for the protocol unit tests.

`FakeKube` is the Kubernetes API *behind* the real `cpworker.kube.KubeClient`: it replaces the
client's transport (`request`) and nothing else, so every method the stages call (create_job,
patch_job, delete_job with its DeleteOptions, patch_worker_status with its resourceVersion,
post_event, ...) is the production code, and errors come out of the client's own mapping
(`kube._error`) from the Status body a real API server would send. What it models, because the
protocol depends on it (k8s.io/apiserver pkg/endpoints/handlers/patch.go and rest/update.go,
pkg/registry/generic/registry/store.go):

- bodies cross the wire as JSON (kubernetes/client/rest.py `json.dumps`): nothing is shared
  with the caller, and what JSON cannot carry fails as it would in production;
- create: 409 AlreadyExists for a taken name; uid, resourceVersion, creationTimestamp set;
  a Job's or worker's `status` dropped (status subresource);
- JSON merge patch (RFC 7386; null deletes a key); a `metadata.resourceVersion` in the
  patched object is a precondition (409 Conflict); a no-op patch does not change the
  resourceVersion; a Job's `spec.template` is immutable; the status subresource changes only
  `status`, the main resource never changes `status`;
- delete: `preconditions.resourceVersion` / `uid` (409 Conflict); Background propagation
  removes the object at once and leaves its dependents to the garbage collector, which runs
  only when a test calls `collect_garbage()`;
- label values and annotation values are validated as the API server does (apimachinery
  validation.IsValidLabelValue; annotations must be strings); Secret data must be base64;
- 404 NotFound for a missing object (the client's delete_job/delete_secret swallow it);
- every request yields to the event loop once, as a real one does, so concurrent tasks
  interleave.

Every request the operator makes is recorded (`requests`, `writes`), so tests assert "no
write" or "exactly these writes". What other actors do (the Job controller, another replica, a
user) goes through `external_*` and is not recorded as the operator's write. The merge patch,
label and field selectors are the Kubernetes stand-in's pure functions
(cpworker/sandbox/kube/patching.py, selectors.py), not its server. Not modelled, because no
protocol step depends on it here: watches (tests build the index from the store, or pass a
stale summary on purpose; a watch gap is a summary of a Job no longer stored), the Job
controller and kubelet (world.py plays them), finalizers, generation, and the client's retries
of 429/5xx (an injected error is the one its caller sees once they ran out).

`FakeCodePipeline` models the job protocol as the CodePipeline stand-in engine does
(cpworker/sandbox/codepipeline/engine.py, itself from the service model): one nonce per
delivery and only the latest is valid (InvalidNonceException otherwise); acknowledging a
dispatched job makes it InProgress and answers the job's current status afterwards; a result
is accepted only for an InProgress job (InvalidJobStateException otherwise); a success with a
continuation token queues a new job carrying the token. Tests can script answers on top
(`script_ack`, `fail_next_put`, `fail_next_details`), hold an accepted result's answer
(`answer_gate`), and read every call and every accepted result. Errors are raised as the real
client raises them once its own retries are exhausted.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import datetime as dt
import itertools
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import unquote

from cpworker import codepipeline, names, timestamps
from cpworker.codepipeline import CodePipelineClient, CodePipelineClients, CodePipelineError
from cpworker.jobdata import SecretProperties
from cpworker.kube import MERGE_PATCH, Body, KubeClient, KubeError
from cpworker.kube import _error as kube_error
from cpworker.results import ReportCall
from cpworker.sandbox.kube.patching import merge_patch
from cpworker.sandbox.kube.selectors import (
    SelectorError,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)

if TYPE_CHECKING:
    from mypy_boto3_codepipeline.type_defs import ActionTypeIdTypeDef, JobDetailsTypeDef

# --------------------------------------------------------------------------------------------
# Kubernetes
# --------------------------------------------------------------------------------------------

_PATHS: Final = [
    re.compile(r"^/apis/batch/v1/namespaces/(?P<ns>[^/]+)/(?P<res>jobs)(?:/(?P<name>[^/]+))?$"),
    re.compile(
        r"^/api/v1/namespaces/(?P<ns>[^/]+)/(?P<res>secrets|pods|events)(?:/(?P<name>[^/]+))?$"
    ),
    re.compile(
        rf"^/apis/{re.escape(names.API_VERSION)}/namespaces/(?P<ns>[^/]+)/"
        rf"(?P<res>{names.PLURAL})/(?P<name>[^/]+)(?P<sub>/status)?$"
    ),
]
# Resources with a status subresource: create drops `status`, the main resource never
# changes it, only /status does.
_WITH_STATUS: Final = frozenset({"jobs", names.PLURAL})
# The kind of each listed resource, for the field selectors it supports.
_KINDS: Final = {"jobs": "Job", "pods": "Pod", "secrets": "Secret", "events": "Event"}
_LABEL_VALUE: Final = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

WORKER_RESOURCE: Final = names.PLURAL


@dataclass(frozen=True)
class Request:
    """One request the operator sent, as the API server saw it."""

    method: str
    resource: str
    namespace: str
    name: str
    body: Any
    subresource: str = ""
    status: int = 200  # what the fake answered (>= 400: an error was raised)

    @property
    def is_write(self) -> bool:
        return self.method in {"POST", "PATCH", "PUT", "DELETE"}


@dataclass
class _Interceptor:
    method: str
    resource: str
    name: str | None
    action: Callable[[], object]


def _status_error(method: str, path: str, status: int, reason: str, message: str) -> KubeError:
    """The client's own mapping of the Status body a real API server would answer."""
    return kube_error(method, path, status, json.dumps({"reason": reason, "message": message}))


def _wire(value: Any) -> Any:
    """What the other side of a JSON request sees (cpworker.kube sends json.dumps of it)."""
    return json.loads(json.dumps(value))


class FakeKube(KubeClient):
    """The Kubernetes API as the operator observes it, in memory (see the module doc)."""

    def __init__(self) -> None:  # no super().__init__(): there is no connection to hold
        self.store: dict[tuple[str, str, str], Body] = {}
        self.requests: list[Request] = []
        self._versions = itertools.count(1)
        self._interceptors: list[_Interceptor] = []
        # False models an API server without native sidecars (< 1.29, or the SidecarContainers
        # gate off): it drops restartPolicy from init containers silently on create
        # (dropDisabledFields, pkg/api/pod/util.go, applied to pod templates too).
        self.native_sidecars = True

    # ---- what tests read ------------------------------------------------------------------

    @property
    def writes(self) -> list[Request]:
        """Every write request the operator sent (failed ones too), in order."""
        return [r for r in self.requests if r.is_write]

    def writes_to(self, resource: str) -> list[Request]:
        return [r for r in self.writes if r.resource == resource]

    @property
    def events(self) -> list[Body]:
        """Events the operator posted, in order."""
        return [r.body for r in self.writes_to("events") if r.status < 400]

    def event_reasons(self) -> list[str]:
        return [str(e["reason"]) for e in self.events]

    def get_object(self, resource: str, namespace: str, name: str) -> Body | None:
        found = self.store.get((resource, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def objects(self, resource: str) -> list[Body]:
        return [
            copy.deepcopy(obj)
            for (kind, _, _), obj in sorted(self.store.items())
            if kind == resource
        ]

    # ---- what other actors do (not the operator's writes) ---------------------------------

    def external_create(self, resource: str, body: Body) -> Body:
        """Someone else created this object (a controller, a user, the test's set-up)."""
        obj = _wire(body)
        metadata = obj.setdefault("metadata", {})
        given_uid = metadata.get("uid")
        self._stamp(obj)
        if given_uid:  # set-up may name the uid (a worker whose uid its Jobs already carry)
            metadata["uid"] = given_uid
        self.store[(resource, str(metadata["namespace"]), str(metadata["name"]))] = obj
        return copy.deepcopy(obj)

    def external_patch(self, resource: str, namespace: str, name: str, patch: Body) -> Body:
        """Someone else changed this object (status included): a new resourceVersion."""
        key = (resource, namespace, name)
        current = self.store[key]
        changed = merge_patch(current, _wire(patch))
        if changed != current:
            changed["metadata"]["resourceVersion"] = str(next(self._versions))
        self.store[key] = changed
        return copy.deepcopy(changed)

    def external_delete(self, resource: str, namespace: str, name: str) -> None:
        self.store.pop((resource, namespace, name), None)

    def age(self, resource: str, namespace: str, name: str, seconds: float) -> None:
        """Time passed: the object was created `seconds` earlier than recorded."""
        metadata = self.store[(resource, namespace, name)]["metadata"]
        created = timestamps.parse(metadata["creationTimestamp"])
        assert created is not None
        metadata["creationTimestamp"] = timestamps.rfc3339(created - dt.timedelta(seconds=seconds))

    def collect_garbage(self) -> list[tuple[str, str, str]]:
        """The garbage collector's pass: objects whose owner (by uid) is gone are deleted."""
        uids = {str(obj["metadata"].get("uid")) for obj in self.store.values()}
        orphans = [
            key
            for key, obj in self.store.items()
            if any(
                str(ref.get("uid")) not in uids
                for ref in obj["metadata"].get("ownerReferences") or []
            )
        ]
        for key in orphans:
            del self.store[key]
        return orphans

    def intercept(
        self,
        method: str,
        resource: str,
        action: Callable[[], object],
        *,
        name: str | None = None,
    ) -> None:
        """Run `action` once, just before the next matching request is handled: another
        actor's write that lands in between, or an error the request answers (raise it). A
        raised error is what the client's caller sees, i.e. after the real client's own
        retries of 429/5xx ran out (this fake replaces the transport, retries included)."""
        self._interceptors.append(_Interceptor(method, resource, name, action))

    # ---- the transport --------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Body:
        route = next((m for pattern in _PATHS if (m := pattern.match(path))), None)
        if route is None:
            raise _status_error(method, path, 404, "NotFound", f"the fake serves no {path}")
        target = _Target(
            method=method,
            path=path,
            resource=route["res"],
            namespace=unquote(route["ns"]),
            name=unquote(route["name"] or ""),
            subresource=(route.groupdict().get("sub") or "").strip("/"),
        )
        sent = _wire(body) if body is not None else None
        # A real request yields to the event loop while it waits for the answer; without this,
        # concurrent claims and reports would never interleave here and races would hide.
        await asyncio.sleep(0)
        status = 0  # not answered (a simulated crash in an interceptor)
        try:
            self._run_interceptor(target)
            answer = self._handle(target, sent, query, content_type)
        except KubeError as exc:
            status = exc.status
            raise
        else:
            status = 200
            return answer
        finally:
            self.requests.append(
                Request(
                    method,
                    target.resource,
                    target.namespace,
                    target.name,
                    sent,
                    target.subresource,
                    status,
                )
            )

    def _run_interceptor(self, target: _Target) -> None:
        for interceptor in self._interceptors:
            if (
                interceptor.method == target.method
                and interceptor.resource == target.resource
                and interceptor.name in (None, target.name)
            ):
                self._interceptors.remove(interceptor)
                interceptor.action()
                return

    def _handle(
        self,
        target: _Target,
        body: Any,
        query: Mapping[str, str] | None,
        content_type: str,
    ) -> Body:
        if target.method == "GET" and not target.name:
            return self._list(
                target, (query or {}).get("labelSelector"), (query or {}).get("fieldSelector")
            )
        if target.method == "POST" and not target.name:
            return self._create(target, body)
        current = self.store.get(target.key)
        if current is None:
            raise target.error(404, "NotFound", f'{target.resource} "{target.name}" not found')
        if target.method == "GET":
            return copy.deepcopy(current)
        if target.method == "PATCH":
            if content_type != MERGE_PATCH:
                raise target.error(415, "UnsupportedMediaType", content_type)
            return self._patch(target, current, body)
        if target.method == "DELETE":
            _check_preconditions(target, current, (body or {}).get("preconditions") or {})
            del self.store[target.key]
            return {"kind": "Status", "apiVersion": "v1", "status": "Success"}
        raise target.error(405, "MethodNotAllowed", target.method)

    def _list(self, target: _Target, selector: str | None, fields: str | None) -> Body:
        try:
            requirements = parse_label_selector(selector)
            matchers = parse_field_selector(fields, _KINDS.get(target.resource, ""))
        except SelectorError as exc:
            raise target.error(400, "BadRequest", str(exc)) from None
        items = [
            copy.deepcopy(obj)
            for (kind, ns, _), obj in sorted(self.store.items())
            if kind == target.resource
            and ns == target.namespace
            and labels_match(requirements, obj)
            and fields_match(matchers, obj)
        ]
        return {"kind": "List", "apiVersion": "v1", "items": items}

    def _create(self, target: _Target, body: Any) -> Body:
        metadata = body.setdefault("metadata", {})
        if metadata.setdefault("namespace", target.namespace) != target.namespace:
            raise target.error(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on "
                "the request",
            )
        name = str(metadata.get("name") or "")
        key = (target.resource, target.namespace, name)
        if key in self.store:
            raise target.error(409, "AlreadyExists", f'{target.resource} "{name}" already exists')
        _validate(target, body)
        if target.resource in _WITH_STATUS:
            body.pop("status", None)
        if target.resource == "jobs" and not self.native_sidecars:
            template = (body.get("spec") or {}).get("template") or {}
            for container in (template.get("spec") or {}).get("initContainers") or []:
                container.pop("restartPolicy", None)
        self._stamp(body)
        self.store[key] = body
        return copy.deepcopy(body)

    def _patch(self, target: _Target, current: Body, patch: Any) -> Body:
        if not isinstance(patch, dict):
            raise target.error(400, "BadRequest", "a merge patch is an object")
        patched = merge_patch(current, patch)
        wanted = (patched.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != current["metadata"]["resourceVersion"]:
            raise target.error(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on "{target.name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
            )
        if target.subresource == "status" or target.resource in _WITH_STATUS:
            # /status changes only the status; the main resource everything but the status.
            source, status_from = (
                (current, patched) if target.subresource == "status" else (patched, current)
            )
            changed = {k: copy.deepcopy(v) for k, v in source.items() if k != "status"}
            if status_from.get("status") is not None:
                changed["status"] = copy.deepcopy(status_from["status"])
        else:
            changed = patched
        for field_name in ("name", "namespace", "uid", "creationTimestamp", "resourceVersion"):
            changed["metadata"][field_name] = current["metadata"][field_name]
        if target.resource == "jobs" and (changed.get("spec") or {}).get("template") != (
            current.get("spec") or {}
        ).get("template"):
            raise target.error(422, "Invalid", "spec.template: Invalid value: field is immutable")
        _validate(target, changed)
        if changed != current:
            changed["metadata"]["resourceVersion"] = str(next(self._versions))
        self.store[target.key] = changed
        return copy.deepcopy(changed)

    def _stamp(self, obj: Body) -> None:
        metadata = obj["metadata"]
        metadata["uid"] = str(uuid.uuid4())
        metadata["resourceVersion"] = str(next(self._versions))
        metadata["creationTimestamp"] = timestamps.rfc3339(timestamps.now())


@dataclass(frozen=True)
class _Target:
    """What a request addresses, parsed from its path."""

    method: str
    path: str
    resource: str
    namespace: str
    name: str
    subresource: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.resource, self.namespace, self.name)

    def error(self, status: int, reason: str, message: str) -> KubeError:
        return _status_error(self.method, self.path, status, reason, message)


def _check_preconditions(target: _Target, current: Body, preconditions: Mapping[str, Any]) -> None:
    """DeleteOptions.preconditions (resourceVersion, uid): 409 Conflict when they fail."""
    for field_name in ("resourceVersion", "uid"):
        wanted = preconditions.get(field_name)
        if wanted and wanted != current["metadata"].get(field_name):
            raise target.error(
                409,
                "Conflict",
                f"Precondition failed: {field_name} in precondition: {wanted}, "
                f"{field_name} in object meta: {current['metadata'].get(field_name)}",
            )


def _validate(target: _Target, obj: Body) -> None:
    """What the API server's validation refuses that the operator could send."""
    metadata = obj.get("metadata") or {}
    for label, value in (metadata.get("labels") or {}).items():
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            raise target.error(422, "Invalid", f"metadata.labels: Invalid value for {label}")
    for annotation, value in (metadata.get("annotations") or {}).items():
        if not isinstance(value, str):
            raise target.error(400, "BadRequest", f"annotation {annotation} must be a string")
    if target.resource == "secrets":
        for key, value in (obj.get("data") or {}).items():
            try:
                base64.b64decode(str(value), validate=True)
            except binascii.Error:
                raise target.error(400, "BadRequest", f"data[{key}]: illegal base64 data") from None


# --------------------------------------------------------------------------------------------
# CodePipeline
# --------------------------------------------------------------------------------------------

AckAnswer = str | CodePipelineError


def invalid_nonce(job_id: str) -> codepipeline.InvalidNonceError:
    return codepipeline.InvalidNonceError(
        "AcknowledgeJob", "InvalidNonceException", f"the nonce is not current for job {job_id}"
    )


def job_not_found(operation: str, job_id: str) -> codepipeline.JobNotFoundError:
    return codepipeline.JobNotFoundError(
        operation, "JobNotFoundException", f"Job {job_id} does not exist."
    )


def invalid_job_state(
    operation: str, job_id: str, status: str
) -> codepipeline.InvalidJobStateError:
    return codepipeline.InvalidJobStateError(
        operation, "InvalidJobStateException", f"Job {job_id} is {status}, not InProgress."
    )


def throttled(operation: str) -> codepipeline.ThrottledError:
    """What the real client raises once its retries of a throttled call ran out."""
    return codepipeline.ThrottledError(operation, "ThrottlingException", "Rate exceeded")


@dataclass
class PipelineJob:
    """One CodePipeline job as the service holds it."""

    id: str
    account_id: str
    data: dict[str, Any]
    status: str = "Queued"
    nonce: str | None = None
    deliveries: int = 0


@dataclass
class Call:
    operation: str
    job_id: str
    nonce: str | None = None


class FakeCodePipeline(CodePipelineClient):
    """The CodePipeline job API as the operator observes it, in memory (see the module doc)."""

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        role_arn: str | None = None,
        secret_properties: SecretProperties | None = None,
    ) -> None:  # no super().__init__(): no boto client, executor or rate budget
        self.region = region
        self.role_arn = role_arn
        self.jobs: dict[str, PipelineJob] = {}
        self.calls: list[Call] = []
        self.puts: list[ReportCall] = []  # every result sent
        self.accepted: list[ReportCall] = []  # the results the service took
        self.continuations: dict[str, str] = {}  # job id -> the job its token created
        self.secret_props = secret_properties or SecretProperties()
        # When set, an accepted result's answer is held until the event is set: the service
        # has the result, the operator does not know yet (a slow answer).
        self.answer_gate: asyncio.Event | None = None
        self.answer_held = asyncio.Event()  # set once an answer waits at the gate
        self._ack_script: dict[tuple[str, str], list[AckAnswer]] = {}
        self._put_errors: list[CodePipelineError] = []
        self._details_errors: list[CodePipelineError] = []
        self._nonces = itertools.count(1)
        self._credentials = itertools.count(1)

    # ---- the service's side ---------------------------------------------------------------

    def queue(self, raw: Mapping[str, Any]) -> str:
        """A pipeline reached the action: a job (PollForJobs shape, its nonce ignored)."""
        job_id = str(raw["id"])
        self.jobs[job_id] = PipelineJob(
            id=job_id, account_id=str(raw.get("accountId", "")), data=copy.deepcopy(raw["data"])
        )
        return job_id

    def deliver(self, job_id: str) -> dict[str, Any]:
        """PollForJobs hands the job out (again): a new nonce, the old ones are stale."""
        job = self.jobs[job_id]
        assert job.status in {"Queued", "Dispatched"}, f"job {job_id} is {job.status}"
        job.nonce = f"nonce-{next(self._nonces)}"
        job.status = "Dispatched"
        job.deliveries += 1
        return {
            "id": job.id,
            "nonce": job.nonce,
            "accountId": job.account_id,
            "data": self._fresh_data(job),
        }

    def end(self, job_id: str, status: str = "Failed") -> None:
        """The job ended without us: pipeline stopped or superseded (Failed), timed out..."""
        self.jobs[job_id].status = status

    def forget(self, job_id: str) -> None:
        """CodePipeline no longer knows the job (JobNotFoundException from now on)."""
        del self.jobs[job_id]

    def script_ack(self, job_id: str, nonce: str, *answers: AckAnswer) -> None:
        """The next AcknowledgeJob(job_id, nonce) calls answer these, in order, whatever the
        job's state; then the model answers again."""
        self._ack_script.setdefault((job_id, nonce), []).extend(answers)

    def fail_next_put(self, *errors: CodePipelineError) -> None:
        """The next put_result calls raise these, in order (before the model is consulted)."""
        self._put_errors.extend(errors)

    def fail_next_details(self, *errors: CodePipelineError) -> None:
        """The next get_job_details calls raise these, in order."""
        self._details_errors.extend(errors)

    def accepted_for(self, job_id: str) -> list[ReportCall]:
        return [c for c in self.accepted if c.params.get("jobId") == job_id]

    def operations(self, *wanted: str) -> list[Call]:
        return [c for c in self.calls if not wanted or c.operation in wanted]

    # ---- the client's methods -------------------------------------------------------------

    async def acknowledge_job(self, job_id: str, nonce: str) -> str:
        self.calls.append(Call("AcknowledgeJob", job_id, nonce))
        await asyncio.sleep(0)  # a call yields to the event loop, as over the network
        scripted = self._ack_script.get((job_id, nonce))
        if scripted:
            answer = scripted.pop(0)
            if isinstance(answer, CodePipelineError):
                raise answer
            return answer
        job = self.jobs.get(job_id)
        if job is None:
            raise job_not_found("AcknowledgeJob", job_id)
        if job.nonce is None or nonce != job.nonce:
            raise invalid_nonce(job_id)
        if job.status == "Dispatched":
            job.status = "InProgress"
        return job.status

    async def get_job_details(self, job_id: str) -> JobDetailsTypeDef:
        self.calls.append(Call("GetJobDetails", job_id))
        await asyncio.sleep(0)  # a call yields to the event loop, as over the network
        if self._details_errors:
            raise self._details_errors.pop(0)
        job = self.jobs.get(job_id)
        if job is None:
            raise job_not_found("GetJobDetails", job_id)
        details = {"id": job.id, "accountId": job.account_id, "data": self._fresh_data(job)}
        return cast("JobDetailsTypeDef", details)

    async def put_result(self, call: ReportCall) -> None:
        job_id = str(call.params.get("jobId"))
        self.calls.append(Call(call.operation, job_id))
        await asyncio.sleep(0)  # a call yields to the event loop, as over the network
        self.puts.append(call)
        if self._put_errors:
            raise self._put_errors.pop(0)
        job = self.jobs.get(job_id)
        if job is None:
            raise job_not_found(call.operation, job_id)
        if job.status != "InProgress":
            raise invalid_job_state(call.operation, job_id, job.status)
        token = call.params.get("continuationToken")
        if token is not None and call.params.get("outputVariables"):
            raise codepipeline.RequestValidationError(
                call.operation,
                "ValidationException",
                "outputVariables are allowed only on a success without a continuationToken",
            )
        job.status = "Succeeded" if call.succeeded else "Failed"
        self.accepted.append(call)
        if token is not None:
            follow_up = str(uuid.uuid4())
            self.jobs[follow_up] = PipelineJob(
                id=follow_up,
                account_id=job.account_id,
                data={**copy.deepcopy(job.data), "continuationToken": token},
            )
            self.continuations[job_id] = follow_up
        if self.answer_gate is not None:
            self.answer_held.set()
            await self.answer_gate.wait()

    async def secret_properties(
        self, action_type_id: ActionTypeIdTypeDef | Mapping[str, str]
    ) -> SecretProperties:
        self.calls.append(Call("ListActionTypes", str(dict(action_type_id).get("provider"))))
        await asyncio.sleep(0)  # a call yields to the event loop, as over the network
        return self.secret_props

    def _fresh_data(self, job: PipelineJob) -> dict[str, Any]:
        """The job data with artifact credentials minted for this answer (as AWS does)."""
        data = copy.deepcopy(job.data)
        if "artifactCredentials" in data:
            n = next(self._credentials)
            data["artifactCredentials"] = {
                "accessKeyId": f"AKIAFAKE{n:012d}",
                "secretAccessKey": f"fake-secret-access-key-{n:04d}",
                "sessionToken": f"fake-session-token-{n:04d}",
            }
        return data


@dataclass
class FakeClients(CodePipelineClients):
    """`CodePipelineClients` that hands out one fake client, recording who asked for what."""

    client: FakeCodePipeline
    asked: list[tuple[str, str | None]] = field(default_factory=list)

    async def for_worker(self, region: str, role_arn: str | None = None) -> CodePipelineClient:
        self.asked.append((region, role_arn or None))
        return self.client
