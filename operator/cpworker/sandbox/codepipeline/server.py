"""The HTTP face of the stand-in: AWS JSON 1.1 on `POST /`, plus a small control API.

Control endpoints (JSON in, JSON out; for tests, the CLI and benchmarks):

- `GET  /_sandbox/health`                      -> {"status": "ok"}
- `GET  /_sandbox/config`, `POST /_sandbox/config` {"job_timeout": 2, ...}  (partial update)
- `GET  /_sandbox/faults`, `POST /_sandbox/faults` {"PollForJobs": {"throttle_next": 2}, ...},
  `DELETE /_sandbox/faults`
- `GET  /_sandbox/requests`, `DELETE /_sandbox/requests`   (the request log; no bodies, no secrets)
- `GET  /_sandbox/violations`                  (conformance violations found so far)
- `GET  /_sandbox/events`, `POST /_sandbox/events` {"queue_url": ..., "delay": 0.5,
  "drop_probability": 0.1, "duplicate_probability": 0.1, "owners": ["Custom"], "states":
  ["STARTED", "FAILED"]} to subscribe a queue (states: default the job-events rule's, null
  all), or {"eventbridge": true} to also put events on moto's default EventBridge bus,
  `DELETE /_sandbox/events`   (action execution events delivered to SQS queues)
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web

from cpworker.sandbox.codepipeline import shapes
from cpworker.sandbox.codepipeline.errors import ApiError
from cpworker.sandbox.codepipeline.events import EventBus, Subscription
from cpworker.sandbox.codepipeline.identities import Identities, KeyState
from cpworker.sandbox.codepipeline.knobs import Faults, StandInConfig
from cpworker.sandbox.codepipeline.requestlog import RequestLog
from cpworker.sandbox.codepipeline.s3guard import signing_key_id
from cpworker.sandbox.codepipeline.service import CodePipelineService, Handler

logger = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
ACCEPTED_CONTENT_TYPES = frozenset(
    {JSON_CONTENT_TYPE, "application/x-amz-json-1.0", "application/json"}
)
MAX_VALIDATION_MESSAGES = 5
# Errors any AWS JSON service may answer, whether or not an operation's model lists them.
COMMON_ERRORS = frozenset(
    {
        "ValidationException",
        "ThrottlingException",
        "InternalFailure",
        "ServiceUnavailable",
        "SerializationException",
        "UnknownOperationException",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
    }
)
# The region of a SigV4 Authorization header's credential scope (KEY/DATE/REGION/SERVICE/...).
_SIGNED_REGION = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/,\s]+)/")
_SERVER_ERROR_CODES = {
    500: "InternalFailure",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}

Tamper = Callable[[dict[str, Any]], None]


class Violations:
    """Conformance violations: responses the stand-in sent that break the service model."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[str] = []

    def add(self, message: str) -> None:
        with self._lock:
            self._items.append(message)

    def items(self) -> list[str]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def _known_error(code: str) -> bool:
    model = shapes.service_model()
    if code in COMMON_ERRORS:
        return True
    try:
        return bool(model.shape_for(code).metadata.get("exception"))
    except Exception:  # noqa: BLE001 - botocore raises its own NoShapeFoundError
        return False


def _query(body: dict[str, Any]) -> str | None:
    """A poll's queryParam value, for the request log (never a nonce, a result or
    configuration, which may hold secrets)."""
    query = body.get("queryParam")
    if isinstance(query, dict) and len(query) == 1:
        value = next(iter(query.values()))
        return value[:50] if isinstance(value, str) else None
    return None


def _validate_input(operation: str, body: dict[str, Any]) -> None:
    problems = shapes.input_problems(operation, body)
    if problems:
        shown = "; ".join(problems[:MAX_VALIDATION_MESSAGES])
        more = len(problems) - MAX_VALIDATION_MESSAGES
        raise ApiError("ValidationException", shown + (f" (and {more} more)" if more > 0 else ""))


def _check_fault_request(operation: str, settings: object, known: set[str]) -> dict[str, Any]:
    if operation != "*" and operation not in known:
        raise ValueError(f"unknown operation {operation!r}")
    if not isinstance(settings, dict):
        raise TypeError(f"faults for {operation!r} must be a JSON object")
    return settings


class CodePipelineServer:
    def __init__(
        self,
        service: CodePipelineService,
        *,
        config: StandInConfig,
        faults: Faults,
        log: RequestLog,
        violations: Violations,
        events: EventBus,
        identities: Identities | None = None,
    ) -> None:
        self.service = service
        self.identities = identities or Identities()
        self.config = config
        self.faults = faults
        self.log = log
        self.violations = violations
        self.events = events
        self.tampers: dict[str, Tamper] = {}
        self._handlers: dict[str, Handler] = service.handlers()
        self._target_prefix = shapes.service_model().metadata["targetPrefix"] + "."

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/", self.handle_api)
        app.router.add_get("/_sandbox/health", self.health)
        app.router.add_get("/_sandbox/config", self.get_config)
        app.router.add_post("/_sandbox/config", self.post_config)
        app.router.add_get("/_sandbox/faults", self.get_faults)
        app.router.add_post("/_sandbox/faults", self.post_faults)
        app.router.add_delete("/_sandbox/faults", self.delete_faults)
        app.router.add_get("/_sandbox/requests", self.get_requests)
        app.router.add_delete("/_sandbox/requests", self.delete_requests)
        app.router.add_get("/_sandbox/violations", self.get_violations)
        app.router.add_get("/_sandbox/events", self.get_events)
        app.router.add_post("/_sandbox/events", self.post_events)
        app.router.add_delete("/_sandbox/events", self.delete_events)
        # Anything else, e.g. the Smithy RPC v2 CBOR path `/service/<name>/operation/<op>`.
        app.router.add_route("*", "/{tail:.*}", self.unsupported)
        return app

    # -- the AWS API -----------------------------------------------------------------------------

    def _error(self, error: ApiError) -> web.Response:
        return web.json_response(
            {"__type": error.code, "message": error.message},
            status=error.status,
            content_type=JSON_CONTENT_TYPE,
            headers={"x-amzn-RequestId": str(uuid.uuid4()), "x-amzn-ErrorType": error.code},
        )

    async def unsupported(self, request: web.Request) -> web.Response:
        return self._error(
            ApiError(
                "UnknownOperationException",
                f"{request.method} {request.path}: this CodePipeline stand-in speaks AWS JSON 1.1 "
                f"only (POST / with X-Amz-Target: {self._target_prefix}<Operation> and "
                f"Content-Type: {JSON_CONTENT_TYPE}).",
            )
        )

    def _parse(self, request: web.Request, raw: bytes) -> tuple[str, dict[str, Any]]:
        target = request.headers.get("X-Amz-Target", "")
        if not target.startswith(self._target_prefix):
            raise ApiError(
                "UnknownOperationException", f"Missing or foreign X-Amz-Target {target!r}."
            )
        operation = target[len(self._target_prefix) :]
        if operation not in self._handlers:
            raise ApiError(
                "UnknownOperationException", f"The stand-in does not implement {operation!r}."
            )
        if request.content_type not in ACCEPTED_CONTENT_TYPES:
            raise ApiError(
                "SerializationException",
                f"Content type {request.content_type!r} is not supported; send {JSON_CONTENT_TYPE} "
                "(CBOR / Smithy RPC v2 is not implemented by the stand-in).",
            )
        self._check_signed_region(request)
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError("SerializationException", "The request body is not valid JSON.") from exc
        if not isinstance(body, dict):
            raise ApiError("SerializationException", "The request body must be a JSON object.")
        return operation, body

    def _check_signed_region(self, request: web.Request) -> None:
        """Refuse a request signed for another region, as a regional AWS endpoint does.

        Each AWS region is its own endpoint with its own action types and jobs; a request
        whose SigV4 credential scope names another region is refused with
        InvalidSignatureException "Credential should be scoped to a valid region" (403),
        as reported against every AWS SDK (e.g. aws/aws-sdk-js-v3#5576,
        aws/aws-sdk-ruby#508). Without this, a worker configured for the wrong region would
        find the stand-in's action types and jobs anyway. Unsigned requests stay accepted.
        """
        match = _SIGNED_REGION.search(request.headers.get("Authorization", ""))
        region = self.service.engine.region
        if match is not None and match.group(1) != region:
            raise ApiError(
                "InvalidSignatureException",
                f"Credential should be scoped to a valid region, not '{match.group(1)}'.",
                403,
            )

    def _normalize(self, body: dict[str, Any]) -> None:
        """Accept ARNs with an empty account field as this account's.

        Terraform's provider builds such ARNs with `skip_requesting_account_id`; the model's
        pattern would reject them. A documented leniency of the stand-in.
        """
        arn = body.get("resourceArn")
        if isinstance(arn, str):
            parts = arn.split(":", 5)
            if len(parts) == 6 and parts[4] == "":
                parts[4] = self.service.engine.account_id
                body["resourceArn"] = ":".join(parts)

    async def handle_api(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        raw = await request.read()
        operation = request.headers.get("X-Amz-Target", "?").rpartition(".")[2] or "?"
        try:
            operation, body = self._parse(request, raw)
            # AWS authenticates before anything else (throttling included).
            self._check_identity(request)
        except ApiError as error:
            self.log.add(operation, error.status, started, "error", error.code)
            return self._error(error)
        job_id = body.get("jobId") if isinstance(body.get("jobId"), str) else None
        decision = self.faults.decide(operation, request.headers.get("User-Agent", ""))
        if decision.latency > 0:
            await asyncio.sleep(decision.latency)
        if decision.throttle:
            self.log.add(operation, 400, started, "fault", "ThrottlingException", job_id=job_id)
            return self._error(ApiError("ThrottlingException", "Rate exceeded"))
        if decision.error_status is not None:
            code = _SERVER_ERROR_CODES[decision.error_status]
            self.log.add(operation, decision.error_status, started, "fault", code, job_id=job_id)
            return self._error(ApiError(code, "Injected server error.", decision.error_status))
        return self._answer(operation, body, started, job_id)

    def _check_identity(self, request: web.Request) -> None:
        """Refuse a request signed with credentials `Identities` says AWS would not take."""
        state = self.identities.key_state(signing_key_id(request))
        if state is KeyState.EXPIRED:
            raise ApiError(
                "ExpiredTokenException", "The security token included in the request is expired"
            )
        if state is KeyState.REVOKED:
            raise ApiError(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )

    def _answer(
        self, operation: str, body: dict[str, Any], started: float, job_id: str | None
    ) -> web.Response:
        self._normalize(body)
        try:
            _validate_input(operation, body)
            self.service.engine.tick()
            answer = self._handlers[operation](body)
        except ApiError as error:
            self._check_error(operation, error)
            self.log.add(
                operation,
                error.status,
                started,
                "error",
                error.code,
                job_id=job_id,
                query=_query(body),
            )
            return self._error(error)
        except Exception as exc:
            # Never crash the server and never echo the request (it may hold secrets).
            logger.exception("stand-in failure in %s", operation)
            self.violations.add(f"{operation}: the stand-in raised {type(exc).__name__}: {exc}")
            self.log.add(operation, 500, started, "error", "InternalFailure", job_id=job_id)
            return self._error(
                ApiError("InternalFailure", "The stand-in failed; see its log.", 500)
            )
        tamper = self.tampers.pop(operation, None)
        if tamper is not None:
            tamper(answer)
        if self.config.strict_conformance:
            for problem in shapes.output_problems(operation, answer):
                self.violations.add(problem)
        self.log.add(operation, 200, started, "ok", None, job_id=job_id, query=_query(body))
        return web.json_response(
            answer,
            content_type=JSON_CONTENT_TYPE,
            headers={"x-amzn-RequestId": str(uuid.uuid4())},
        )

    def _check_error(self, operation: str, error: ApiError) -> None:
        if not self.config.strict_conformance:
            return
        if not _known_error(error.code):
            self.violations.add(
                f"{operation}: answered {error.code!r}, which is not an error the model knows"
            )
        if not 1 <= len(error.message) <= 5000:
            self.violations.add(
                f"{operation}: error message length {len(error.message)} out of range"
            )

    # -- control API ---------------------------------------------------------------------------

    async def health(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def get_config(self, _: web.Request) -> web.Response:
        return web.json_response(self.config.as_dict())

    async def _json_object(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError as exc:
            raise web.HTTPBadRequest(text="expected a JSON object") from exc
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="expected a JSON object")
        return body

    async def post_config(self, request: web.Request) -> web.Response:
        body = await self._json_object(request)
        try:
            self.config.update(body)
        except (TypeError, ValueError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from exc
        return web.json_response(self.config.as_dict())

    async def get_faults(self, _: web.Request) -> web.Response:
        return web.json_response(self.faults.as_dict())

    async def post_faults(self, request: web.Request) -> web.Response:
        body = await self._json_object(request)
        try:
            for operation, settings in body.items():
                checked = _check_fault_request(operation, settings, set(self._handlers))
                self.faults.set(operation, **checked)
        except (TypeError, ValueError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from exc
        return web.json_response(self.faults.as_dict())

    async def delete_faults(self, _: web.Request) -> web.Response:
        self.faults.clear()
        return web.json_response({})

    async def get_requests(self, _: web.Request) -> web.Response:
        return web.json_response([dataclasses.asdict(r) for r in self.log.records()])

    async def delete_requests(self, _: web.Request) -> web.Response:
        self.log.clear()
        return web.json_response([])

    async def get_violations(self, _: web.Request) -> web.Response:
        return web.json_response(self.violations.items())

    def _events_state(self) -> dict[str, Any]:
        return {
            "subscriptions": [dataclasses.asdict(s) for s in self.events.subscriptions()],
            "eventbridge": self.events.eventbridge,
            "delivered": self.events.delivered,
            "failed": self.events.failed,
        }

    async def get_events(self, _: web.Request) -> web.Response:
        return web.json_response(self._events_state())

    async def post_events(self, request: web.Request) -> web.Response:
        body = await self._json_object(request)
        if set(body) == {"eventbridge"} and isinstance(body["eventbridge"], bool):
            self.events.eventbridge = body["eventbridge"]
            return web.json_response(self._events_state())
        for key in ("owners", "states"):
            if isinstance(body.get(key), list):
                body[key] = tuple(body[key])
        try:
            self.events.subscribe(Subscription(**body))
        except (TypeError, ValueError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from exc
        return web.json_response(self._events_state())

    async def delete_events(self, _: web.Request) -> web.Response:
        self.events.clear()
        return web.json_response(self._events_state())
