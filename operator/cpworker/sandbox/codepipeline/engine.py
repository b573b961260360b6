"""Pipelines, executions and jobs: the stateful heart of the stand-in.

Everything here runs on the stand-in's event loop thread, so no locks are needed. Time-driven
transitions (job timeouts, delayed continuation jobs) happen in `tick()`, which the server calls
before every request and on a short periodic timer, so tests never wait for a background pass
to see the effect of their own request.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from cpworker.sandbox.codepipeline.actiontypes import (
    S3_SOURCE_ID,
    ActionTypeRegistry,
    CustomActionType,
    TypeKey,
    describe,
    type_key,
)
from cpworker.sandbox.codepipeline.artifacts import (
    ArtifactRef,
    ArtifactStore,
    SourceError,
    SourceOutcome,
    artifact_key,
)
from cpworker.sandbox.codepipeline.credentials import CredentialLedger
from cpworker.sandbox.codepipeline.errors import ApiError, validation
from cpworker.sandbox.codepipeline.events import action_event
from cpworker.sandbox.codepipeline.knobs import StandInConfig
from cpworker.sandbox.codepipeline.pipelines import PipelineRecord

OUTPUT_VARIABLES_LIMIT = 122_880  # bytes, all variables of one action together
_VARIABLE = re.compile(r"#\{([A-Za-z0-9@_-]+)\.([A-Za-z0-9@_-]+)\}")
ACTIVE_JOB_STATES = frozenset({"Queued", "Dispatched", "InProgress"})
RUNNING_EXECUTION_STATES = frozenset({"InProgress", "Stopping"})


class UnresolvedVariableError(Exception):
    pass


class BlockingRunner(Protocol):
    """Runs `work` (blocking I/O) somewhere, then `done` with its result on the engine's thread."""

    def __call__(
        self,
        work: Callable[[], SourceOutcome | SourceError],
        done: Callable[[SourceOutcome | SourceError], None],
    ) -> None: ...


def run_inline(
    work: Callable[[], SourceOutcome | SourceError],
    done: Callable[[SourceOutcome | SourceError], None],
) -> None:
    done(work())


@dataclasses.dataclass
class ActionRun:
    id: str
    execution_id: str
    pipeline_version: int
    stage: str
    declaration: dict[str, Any]
    run_order: int
    start_time: float
    last_update: float
    resolved: dict[str, str] = dataclasses.field(default_factory=dict)
    status: str = "InProgress"
    inputs: list[ArtifactRef] = dataclasses.field(default_factory=list)
    outputs: list[ArtifactRef] = dataclasses.field(default_factory=list)
    external_execution_id: str | None = None
    summary: str | None = None
    url: str | None = None
    percent_complete: int | None = None
    error: dict[str, str] | None = None
    output_variables: dict[str, str] = dataclasses.field(default_factory=dict)
    token: str = dataclasses.field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def name(self) -> str:
        return str(self.declaration["name"])

    @property
    def key(self) -> TypeKey:
        return type_key(self.declaration["actionTypeId"])

    def finish(self, status: str) -> None:
        self.status = status
        self.last_update = time.time()


@dataclasses.dataclass
class ExecutionRun:
    id: str
    pipeline_name: str
    pipeline_arn: str
    declaration: dict[
        str, Any
    ]  # snapshot: later pipeline updates do not change a running execution
    start_time: float
    last_update: float
    variables: dict[str, str]  # pipeline-level variables (#{variable.Name})
    status: str = "InProgress"
    status_summary: str | None = None
    stop_reason: str | None = None
    stage_index: int = 0
    stage_status: dict[str, str] = dataclasses.field(default_factory=dict)
    runs: list[ActionRun] = dataclasses.field(default_factory=list)
    artifacts: dict[str, ArtifactRef] = dataclasses.field(default_factory=dict)
    namespaces: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    source_revisions: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def version(self) -> int:
        return int(self.declaration["version"])

    def set_status(self, status: str, summary: str | None = None) -> None:
        self.status = status
        self.status_summary = summary
        self.last_update = time.time()


@dataclasses.dataclass
class Job:
    id: str
    run: ActionRun
    execution: ExecutionRun
    action_type: CustomActionType
    created: float  # monotonic, for the timeout
    continuation_token: str | None = None
    status: str = "Queued"
    nonce: str | None = None
    delivered_at: float | None = None  # monotonic, for re-delivery
    # Wall-clock milestones (epoch seconds), for benchmarks: see CodePipelineStandIn.jobs().
    times: dict[str, float] = dataclasses.field(default_factory=lambda: {"created": time.time()})
    deliveries: int = 0

    def timeline(self) -> JobTimeline:
        return JobTimeline(
            job_id=self.id,
            status=self.status,
            pipeline_name=self.execution.pipeline_name,
            execution_id=self.execution.id,
            action_name=self.run.name,
            provider=self.action_type.provider,
            deliveries=self.deliveries,
            created=self.times["created"],
            first_delivered=self.times.get("first_delivered"),
            acknowledged=self.times.get("acknowledged"),
            finished=self.times.get("finished"),
        )


@dataclasses.dataclass(frozen=True)
class JobTimeline:
    """A job's public history (no nonce, no data, no credentials)."""

    job_id: str
    status: str
    pipeline_name: str
    execution_id: str
    action_name: str
    provider: str
    deliveries: int
    created: float
    first_delivered: float | None
    acknowledged: float | None
    finished: float | None


def output_variables_size(variables: dict[str, str]) -> int:
    return sum(len(key.encode()) + len(value.encode()) for key, value in variables.items())


def render_url(
    template: str | None, external_id: str | None, configuration: dict[str, str]
) -> str | None:
    """Fill an action type's executionUrlTemplate: {ExternalExecutionId} and {Config:Key}."""
    if not template or not external_id:
        return None
    url = template.replace("{ExternalExecutionId}", external_id)
    for key, value in configuration.items():
        url = url.replace(f"{{Config:{key}}}", value)
    return url


class Engine:
    def __init__(
        self,
        registry: ActionTypeRegistry,
        store: ArtifactStore,
        config: StandInConfig,
        *,
        region: str,
        account_id: str,
    ) -> None:
        self.registry = registry
        self.store = store
        self.config = config
        self.region = region
        self.account_id = account_id
        self.pipelines: dict[str, PipelineRecord] = {}
        self.executions: dict[str, ExecutionRun] = {}
        self.jobs: dict[str, Job] = {}
        # Jobs not yet ended, so that polls and timeout passes never scan finished history.
        self._active: dict[str, Job] = {}
        # The stand-in swaps in a thread pool so that S3 copies never block its event loop.
        self.run_blocking: BlockingRunner = run_inline
        self.credentials = CredentialLedger()
        # Receives an EventBridge-shaped event for each action execution state change.
        self.on_action_event: Callable[[dict[str, Any]], None] | None = None
        self._continuations: list[tuple[float, Job]] = []  # (due, the job that asked for it)
        self._started_by_token: dict[tuple[str, str], ExecutionRun] = {}

    def pipeline_arn(self, name: str) -> str:
        return f"arn:aws:codepipeline:{self.region}:{self.account_id}:{name}"

    def pipeline(self, name: str) -> PipelineRecord:
        record = self.pipelines.get(name)
        if record is None:
            raise ApiError(
                "PipelineNotFoundException",
                f"Account '{self.account_id}' does not have a pipeline with name '{name}'",
            )
        return record

    # -- time-driven transitions -------------------------------------------------------------

    def tick(self) -> None:
        now = time.monotonic()
        for job in list(self._active.values()):
            if now - job.created >= self.config.job_timeout:
                self._time_out(job)
        due = [entry for entry in self._continuations if entry[0] <= now]
        self._continuations = [entry for entry in self._continuations if entry[0] > now]
        for _, previous in due:
            if previous.run.status == "InProgress":
                self._create_job(
                    previous.execution,
                    previous.run,
                    previous.action_type,
                    previous.continuation_token,
                )

    def _time_out(self, job: Job) -> None:
        self._set_status(job, "TimedOut")
        job.run.error = {
            "code": "JobTimedOut",
            "message": f"The job was not completed within {self.config.job_timeout:g} seconds.",
        }
        self._finish(job.execution, job.run, "Failed")
        self._advance(job.execution)

    # -- executions ----------------------------------------------------------------------------

    def start_execution(
        self, name: str, variables: list[dict[str, str]], client_token: str | None = None
    ) -> ExecutionRun:
        record = self.pipeline(name)
        if client_token is not None:
            # Idempotent retries: the same token starts nothing new.
            earlier = self._started_by_token.get((name, client_token))
            if earlier is not None:
                return earlier
        declared = {
            v["name"]: v.get("defaultValue") for v in record.declaration.get("variables", [])
        }
        given = {v["name"]: v["value"] for v in variables}
        unknown = set(given) - set(declared)
        if unknown:
            raise validation(f"Variables {sorted(unknown)} are not declared by pipeline '{name}'.")
        merged = {k: v for k, v in declared.items() if v is not None} | given
        now = time.time()
        execution = ExecutionRun(
            id=str(uuid.uuid4()),
            pipeline_name=name,
            pipeline_arn=self.pipeline_arn(name),
            declaration=copy.deepcopy(record.declaration),
            start_time=now,
            last_update=now,
            variables=merged,
        )
        self.executions[execution.id] = execution
        if client_token is not None:
            self._started_by_token[(name, client_token)] = execution
        self._advance(execution)
        return execution

    def execution(self, pipeline: str, execution_id: str) -> ExecutionRun | None:
        found = self.executions.get(execution_id)
        return found if found is not None and found.pipeline_name == pipeline else None

    def executions_of(self, pipeline: str) -> list[ExecutionRun]:
        found = [e for e in self.executions.values() if e.pipeline_name == pipeline]
        return sorted(found, key=lambda e: e.start_time, reverse=True)

    def stop_execution(
        self, pipeline: str, execution_id: str, *, abandon: bool, reason: str | None
    ) -> None:
        self.pipeline(pipeline)
        execution = self.execution(pipeline, execution_id)
        if execution is None or execution.status not in RUNNING_EXECUTION_STATES:
            raise ApiError(
                "PipelineExecutionNotStoppableException",
                f"Execution {execution_id} of pipeline '{pipeline}' is not in progress.",
            )
        if execution.status == "Stopping" and not abandon:
            raise ApiError(
                "DuplicatedStopRequestException",
                "The execution is already stopping; to stop it at once, stop and abandon.",
            )
        execution.stop_reason = reason
        if abandon:
            self.abandon(execution)
            return
        execution.set_status("Stopping")
        stage = execution.declaration["stages"][execution.stage_index]["name"]
        execution.stage_status[stage] = "Stopping"
        self._advance(execution)

    def abandon(self, execution: ExecutionRun) -> None:
        """Stop now: in-progress actions are Abandoned and their jobs end as Failed.

        AWS documents no job status for this case; Failed is the stand-in's choice (so that a
        worker's AcknowledgeJob probe learns the job is over and InvalidJobStateException
        answers any later report).
        """
        for run in execution.runs:
            if run.status == "InProgress":
                self._finish(execution, run, "Abandoned")
        for job in list(self._active.values()):
            if job.execution is execution:
                self._set_status(job, "Failed")
        self._continuations = [c for c in self._continuations if c[1].execution is not execution]
        stage = execution.declaration["stages"][execution.stage_index]["name"]
        execution.stage_status[stage] = "Stopped"
        execution.set_status("Stopped", execution.stop_reason)

    def _advance(self, execution: ExecutionRun) -> None:
        stages = execution.declaration["stages"]
        while execution.status in RUNNING_EXECUTION_STATES:
            stage = stages[execution.stage_index]
            runs = [run for run in execution.runs if run.stage == stage["name"]]
            if any(run.status == "InProgress" for run in runs):
                return
            failed = [run for run in runs if run.status == "Failed"]
            if failed:
                execution.stage_status[stage["name"]] = "Failed"
                error = failed[0].error or {}
                summary = (
                    f"Action '{failed[0].name}' failed: {error.get('message', 'no reason given')}"
                )
                execution.set_status("Failed", summary[:2048])
                return
            if execution.status == "Stopping":
                execution.stage_status[stage["name"]] = "Stopped"
                execution.set_status("Stopped", execution.stop_reason)
                return
            done = {run.run_order for run in runs}
            pending = sorted({a.get("runOrder", 1) for a in stage["actions"]} - done)
            if not pending:
                execution.stage_status[stage["name"]] = "Succeeded"
                if execution.stage_index + 1 == len(stages):
                    execution.set_status("Succeeded")
                    return
                execution.stage_index += 1
                continue
            execution.stage_status[stage["name"]] = "InProgress"
            for action in stage["actions"]:
                if action.get("runOrder", 1) == pending[0]:
                    self._start_action(execution, stage["name"], action, pending[0])

    def _resolve(self, execution: ExecutionRun, value: str) -> str:
        def substitute(match: re.Match[str]) -> str:
            namespace, name = match.group(1), match.group(2)
            if namespace == "codepipeline" and name == "PipelineExecutionId":
                return execution.id
            source = (
                execution.variables
                if namespace == "variable"
                else execution.namespaces.get(namespace, {})
            )
            if name not in source:
                raise UnresolvedVariableError(
                    f"Unable to resolve the variable #{{{namespace}.{name}}}."
                )
            return source[name]

        return _VARIABLE.sub(substitute, value)

    def _start_action(
        self, execution: ExecutionRun, stage: str, action: dict[str, Any], run_order: int
    ) -> None:
        now = time.time()
        run = ActionRun(
            id=str(uuid.uuid4()),
            execution_id=execution.id,
            pipeline_version=execution.version,
            stage=stage,
            declaration=action,
            run_order=run_order,
            start_time=now,
            last_update=now,
        )
        execution.runs.append(run)
        self._emit(execution, run)  # STARTED
        try:
            run.resolved = {
                k: self._resolve(execution, v) for k, v in action.get("configuration", {}).items()
            }
        except UnresolvedVariableError as exc:
            run.error = {"code": "ConfigurationError", "message": str(exc)}
            self._finish(execution, run, "Failed")
            return
        run.inputs = [execution.artifacts[a["name"]] for a in action.get("inputArtifacts", [])]
        bucket = execution.declaration["artifactStore"]["location"]
        run.outputs = [
            ArtifactRef(
                name=a["name"], bucket=bucket, key=artifact_key(execution.pipeline_name, a["name"])
            )
            for a in action.get("outputArtifacts", [])
        ]
        if run.key == S3_SOURCE_ID:
            self._run_s3_source(execution, run)
            return
        action_type = self.registry.get(run.key)
        if action_type is None:
            run.error = {
                "code": "ConfigurationError",
                "message": f"{describe(run.key)} no longer exists.",
            }
            self._finish(execution, run, "Failed")
            return
        self._create_job(execution, run, action_type, None)

    def _kms_key_id(self, execution: ExecutionRun) -> str | None:
        key = execution.declaration["artifactStore"].get("encryptionKey")
        return str(key["id"]) if key else None

    def _run_s3_source(self, execution: ExecutionRun, run: ActionRun) -> None:
        bucket, key = run.resolved["S3Bucket"], run.resolved["S3ObjectKey"]
        target, kms_key_id = run.outputs[0], self._kms_key_id(execution)

        def copy() -> SourceOutcome | SourceError:
            try:
                return self.store.copy_source(
                    bucket=bucket, key=key, target=target, kms_key_id=kms_key_id
                )
            except SourceError as exc:
                return exc

        def done(outcome: SourceOutcome | SourceError) -> None:
            if run.status != "InProgress":  # stopped and abandoned while the copy ran
                return
            if isinstance(outcome, SourceError):
                run.error = {"code": "JobFailed", "message": str(outcome)}
                self._finish(execution, run, "Failed")
            else:
                artifact, variables = outcome
                run.outputs = [artifact]
                run.output_variables = variables
                run.summary = f"Copied s3://{bucket}/{key}"
                self._complete(execution, run)
                if artifact.revision:
                    execution.source_revisions.append(
                        {"actionName": run.name, "revisionId": artifact.revision}
                    )
            self._advance(execution)

        self.run_blocking(copy, done)

    def _finish(self, execution: ExecutionRun, run: ActionRun, status: str) -> None:
        run.finish(status)
        self._emit(execution, run)

    def _emit(self, execution: ExecutionRun, run: ActionRun) -> None:
        if self.on_action_event is None:
            return
        self.on_action_event(
            action_event(
                account_id=self.account_id,
                region=self.region,
                pipeline=execution.pipeline_name,
                pipeline_arn=execution.pipeline_arn,
                pipeline_version=execution.version,
                execution_id=execution.id,
                stage=run.stage,
                action=run.name,
                action_type_id=dict(run.declaration["actionTypeId"]),
                status=run.status,
            )
        )

    def _complete(self, execution: ExecutionRun, run: ActionRun) -> None:
        for artifact in run.outputs:
            execution.artifacts[artifact.name] = artifact
        namespace = run.declaration.get("namespace")
        if namespace:
            execution.namespaces[namespace] = dict(run.output_variables)
        self._finish(execution, run, "Succeeded")

    # -- jobs ----------------------------------------------------------------------------------

    def _create_job(
        self,
        execution: ExecutionRun,
        run: ActionRun,
        action_type: CustomActionType,
        token: str | None,
    ) -> None:
        job = Job(
            id=str(uuid.uuid4()),
            run=run,
            execution=execution,
            action_type=action_type,
            created=time.monotonic(),
            continuation_token=token,
        )
        self.jobs[job.id] = job
        self._active[job.id] = job

    def _set_status(self, job: Job, status: str) -> None:
        job.status = status
        if status not in ACTIVE_JOB_STATES:
            self._active.pop(job.id, None)
            job.times["finished"] = time.time()

    def job(self, job_id: str) -> Job:
        found = self.jobs.get(job_id)
        if found is None:
            raise ApiError("JobNotFoundException", f"Job {job_id} does not exist.")
        return found

    def job_data(self, job: Job) -> dict[str, Any]:
        """The job's `data`, as AWS sends it: secret configuration in clear, fresh credentials."""
        run, execution = job.run, job.execution
        category, owner, provider, version = run.key
        data: dict[str, Any] = {
            "actionTypeId": {
                "category": category,
                "owner": owner,
                "provider": provider,
                "version": version,
            },
            "actionConfiguration": {"configuration": dict(run.resolved)},
            "pipelineContext": {
                "pipelineName": execution.pipeline_name,
                "stage": {"name": run.stage},
                "action": {"name": run.name, "actionExecutionId": run.id},
                "pipelineArn": execution.pipeline_arn,
                "pipelineExecutionId": execution.id,
            },
            "inputArtifacts": [a.job_wire() for a in run.inputs],
            "outputArtifacts": [a.job_wire() for a in run.outputs],
            "artifactCredentials": self.credentials.mint(self.config.credential_lifetime).as_wire(),
        }
        if job.continuation_token is not None:
            data["continuationToken"] = job.continuation_token
        kms_key_id = self._kms_key_id(execution)
        if kms_key_id is not None:
            data["encryptionKey"] = {"id": kms_key_id, "type": "KMS"}
        return data

    def poll(self, key: TypeKey, max_batch: int, query: dict[str, str]) -> list[dict[str, Any]]:
        action_type = self.registry.get(key) if key[1] == "Custom" else None
        if action_type is None:
            raise ApiError("ActionTypeNotFoundException", f"{describe(key)} does not exist.")
        queryable = action_type.queryable_property()
        if queryable is None and query:
            raise validation(
                f"{describe(key)} has no queryable property; send an empty queryParam."
            )
        if queryable is not None and list(query) != [queryable]:
            raise validation(
                f"queryParam must name the queryable property {queryable!r} of {describe(key)}."
            )
        now = time.monotonic()
        window = self.config.redelivery_window
        jobs = [
            job
            for job in self._active.values()
            if job.action_type is action_type
            and (
                job.status == "Queued"
                or (
                    job.status == "Dispatched"
                    and job.delivered_at is not None
                    and now - job.delivered_at >= window
                )
            )
            and (queryable is None or job.run.resolved.get(queryable) == query[queryable])
        ]
        jobs.sort(key=lambda job: job.created)
        delivered = []
        for job in jobs[:max_batch]:
            # A new nonce per delivery: only the latest delivery can be acknowledged.
            job.nonce = secrets.token_hex(16)
            job.status = "Dispatched"
            job.deliveries += 1
            job.times.setdefault("first_delivered", time.time())
            job.delivered_at = now
            delivered.append(
                {
                    "id": job.id,
                    "data": self.job_data(job),
                    "nonce": job.nonce,
                    "accountId": self.account_id,
                }
            )
        return delivered

    def acknowledge(self, job_id: str, nonce: str) -> str:
        job = self.job(job_id)
        if job.nonce is None or not secrets.compare_digest(nonce, job.nonce):
            raise ApiError(
                "InvalidNonceException",
                f"The nonce does not match the latest delivery of job {job_id}.",
            )
        if job.status == "Dispatched":
            job.status = "InProgress"
            job.times["acknowledged"] = time.time()
        return job.status

    def _reportable(self, job_id: str) -> Job:
        job = self.job(job_id)
        if job.status != "InProgress":
            raise ApiError(
                "InvalidJobStateException", f"Job {job_id} is {job.status}, not InProgress."
            )
        return job

    def put_success(self, body: dict[str, Any]) -> None:
        job = self._reportable(body["jobId"])
        token = body.get("continuationToken")
        variables: dict[str, str] = body.get("outputVariables", {})
        if token is not None and variables:
            raise validation(
                "outputVariables are allowed only on a success without a continuationToken."
            )
        if output_variables_size(variables) > OUTPUT_VARIABLES_LIMIT:
            raise ApiError(
                "OutputVariablesSizeExceededException",
                f"The output variables exceed {OUTPUT_VARIABLES_LIMIT} bytes in total.",
            )
        self._set_status(job, "Succeeded")
        run = job.run
        self._record_details(job, body.get("executionDetails"))
        if token is not None:
            job.continuation_token = token
            self._continuations.append((time.monotonic() + self.config.continuation_delay, job))
            run.last_update = time.time()
            return
        run.output_variables = dict(variables)
        self._complete(job.execution, run)
        self._advance(job.execution)

    def _record_details(self, job: Job, details: dict[str, Any] | None) -> None:
        if not details:
            return
        run = job.run
        run.summary = details.get("summary", run.summary)
        run.percent_complete = details.get("percentComplete", run.percent_complete)
        external_id = details.get("externalExecutionId")
        if external_id is not None:
            run.external_execution_id = external_id
            template = job.action_type.settings.get("executionUrlTemplate")
            public = {
                k: v
                for k, v in run.resolved.items()
                if k not in job.action_type.secret_properties()
            }
            run.url = render_url(template, external_id, public)

    def put_failure(self, job_id: str, failure: dict[str, Any]) -> None:
        job = self._reportable(job_id)
        self._set_status(job, "Failed")
        run = job.run
        external_id = failure.get("externalExecutionId")
        self._record_details(job, {"externalExecutionId": external_id} if external_id else None)
        run.error = {"code": failure["type"], "message": failure["message"]}
        run.summary = failure["message"][:2048]
        self._finish(job.execution, run, "Failed")
        self._advance(job.execution)

    def delete_pipeline(self, name: str) -> None:
        self.pipeline(name)
        for execution in self.executions_of(name):
            if execution.status in RUNNING_EXECUTION_STATES:
                execution.stop_reason = "The pipeline was deleted."
                self.abandon(execution)
        del self.pipelines[name]
