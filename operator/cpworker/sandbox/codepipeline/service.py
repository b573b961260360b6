"""The CodePipeline operations: request body in, response body out (wire-shaped dicts).

Requests arrive here already validated against the model's input shapes; this module adds the
rules the model cannot express and shapes the answers.
"""

from __future__ import annotations

import base64
import binascii
import copy
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from cpworker.sandbox.codepipeline.actiontypes import (
    MAX_TAGS,
    S3_SOURCE_WIRE,
    ActionTypeRegistry,
    type_key,
    validate_tags,
)
from cpworker.sandbox.codepipeline.engine import ActionRun, Engine, ExecutionRun
from cpworker.sandbox.codepipeline.errors import ApiError
from cpworker.sandbox.codepipeline.pipelines import (
    PipelineRecord,
    mask_secrets,
    validate_declaration,
)

Handler = Callable[[dict[str, Any]], dict[str, Any]]
T = TypeVar("T")


def _page(
    items: Sequence[T], next_token: str | None, size: int, scope: str
) -> tuple[list[T], str | None]:
    """Offset paging with opaque tokens bound to one listing (a token from another is invalid)."""
    offset = 0
    if next_token is not None:
        try:
            token_scope, raw = base64.urlsafe_b64decode(next_token.encode()).decode().split(":", 1)
            offset = int(raw)
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise ApiError("InvalidNextTokenException", "The next token is not valid.") from exc
        if token_scope != scope or not 0 <= offset <= len(items):
            raise ApiError("InvalidNextTokenException", "The next token is not valid.")
    page = list(items[offset : offset + size])
    end = offset + size
    token = (
        base64.urlsafe_b64encode(f"{scope}:{end}".encode()).decode() if end < len(items) else None
    )
    return page, token


def _with_token(body: dict[str, Any], token: str | None) -> dict[str, Any]:
    if token is not None:
        body["nextToken"] = token
    return body


class CodePipelineService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.registry: ActionTypeRegistry = engine.registry

    def handlers(self) -> dict[str, Handler]:
        return {
            "CreateCustomActionType": self.create_custom_action_type,
            "DeleteCustomActionType": self.delete_custom_action_type,
            "ListActionTypes": self.list_action_types,
            "ListTagsForResource": self.list_tags_for_resource,
            "TagResource": self.tag_resource,
            "UntagResource": self.untag_resource,
            "CreatePipeline": self.create_pipeline,
            "GetPipeline": self.get_pipeline,
            "UpdatePipeline": self.update_pipeline,
            "DeletePipeline": self.delete_pipeline,
            "ListPipelines": self.list_pipelines,
            "StartPipelineExecution": self.start_pipeline_execution,
            "GetPipelineExecution": self.get_pipeline_execution,
            "ListPipelineExecutions": self.list_pipeline_executions,
            "StopPipelineExecution": self.stop_pipeline_execution,
            "GetPipelineState": self.get_pipeline_state,
            "ListActionExecutions": self.list_action_executions,
            "PollForJobs": self.poll_for_jobs,
            "AcknowledgeJob": self.acknowledge_job,
            "GetJobDetails": self.get_job_details,
            "PutJobSuccessResult": self.put_job_success_result,
            "PutJobFailureResult": self.put_job_failure_result,
        }

    @property
    def _page_size(self) -> int:
        return max(1, self.engine.config.list_page_size)

    # -- action types --------------------------------------------------------------------------

    def create_custom_action_type(self, body: dict[str, Any]) -> dict[str, Any]:
        created = self.registry.create(body, self.engine.config.max_custom_action_types)
        answer: dict[str, Any] = {"actionType": created.wire()}
        if created.tags:
            answer["tags"] = [{"key": k, "value": v} for k, v in created.tags.items()]
        return answer

    def delete_custom_action_type(self, body: dict[str, Any]) -> dict[str, Any]:
        self.registry.delete((body["category"], "Custom", body["provider"], body["version"]))
        return {}

    def list_action_types(self, body: dict[str, Any]) -> dict[str, Any]:
        owner = body.get("actionOwnerFilter")
        wires: list[dict[str, Any]] = []
        if owner in {None, "AWS"}:
            wires.append(copy.deepcopy(S3_SOURCE_WIRE))
        if owner in {None, "Custom"}:
            wires += [t.wire() for t in self.registry.active()]
        page, token = _page(wires, body.get("nextToken"), self._page_size, f"types-{owner}")
        return _with_token({"actionTypes": page}, token)

    # -- tags ----------------------------------------------------------------------------------

    def _tags_of(self, arn: str) -> dict[str, str]:
        parts = arn.split(":", 5)
        if len(parts) != 6 or parts[2] != "codepipeline":
            raise ApiError("InvalidArnException", f"The ARN {arn!r} is not valid.")
        region, account, resource = parts[3], parts[4], parts[5]
        if region == self.engine.region and account == self.engine.account_id:
            action_type = self.registry.by_resource(resource)
            if action_type is not None:
                return action_type.tags
            pipeline = self.engine.pipelines.get(resource)
            if pipeline is not None:
                return pipeline.tags
        raise ApiError("ResourceNotFoundException", f"The resource {arn!r} was not found.")

    def list_tags_for_resource(self, body: dict[str, Any]) -> dict[str, Any]:
        tags = [{"key": k, "value": v} for k, v in self._tags_of(body["resourceArn"]).items()]
        # Without maxResults, one page holds every tag (a resource has at most 50).
        size = body.get("maxResults", MAX_TAGS)
        page, token = _page(tags, body.get("nextToken"), size, f"tags-{body['resourceArn']}")
        return _with_token({"tags": page}, token)

    def tag_resource(self, body: dict[str, Any]) -> dict[str, Any]:
        tags = self._tags_of(body["resourceArn"])
        new = validate_tags(body["tags"])
        if len(set(tags) | set(new)) > MAX_TAGS:
            raise ApiError("TooManyTagsException", "A resource can have at most 50 tags.")
        tags.update(new)
        return {}

    def untag_resource(self, body: dict[str, Any]) -> dict[str, Any]:
        tags = self._tags_of(body["resourceArn"])
        for key in body["tagKeys"]:
            tags.pop(key, None)
        return {}

    # -- pipelines -----------------------------------------------------------------------------

    def _pipeline_wire(self, record: PipelineRecord) -> dict[str, Any]:
        return mask_secrets(record.declaration, self.registry)

    def create_pipeline(self, body: dict[str, Any]) -> dict[str, Any]:
        declaration = copy.deepcopy(body["pipeline"])
        name = declaration["name"]
        if name in self.engine.pipelines:
            raise ApiError(
                "PipelineNameInUseException", f"A pipeline named '{name}' already exists."
            )
        validate_declaration(declaration, self.registry)
        tags = validate_tags(body.get("tags", []))
        declaration["version"] = 1
        now = time.time()
        record = PipelineRecord(declaration=declaration, created=now, updated=now, tags=tags)
        self.engine.pipelines[name] = record
        answer: dict[str, Any] = {"pipeline": self._pipeline_wire(record)}
        if tags:
            answer["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
        return answer

    def get_pipeline(self, body: dict[str, Any]) -> dict[str, Any]:
        record = self.engine.pipeline(body["name"])
        wanted = body.get("version")
        if wanted is not None and wanted != record.version:
            raise ApiError(
                "PipelineVersionNotFoundException",
                f"The stand-in keeps only the latest version ({record.version}) of {record.name}.",
            )
        return {
            "pipeline": self._pipeline_wire(record),
            "metadata": {
                "pipelineArn": self.engine.pipeline_arn(record.name),
                "created": record.created,
                "updated": record.updated,
            },
        }

    def update_pipeline(self, body: dict[str, Any]) -> dict[str, Any]:
        declaration = copy.deepcopy(body["pipeline"])
        record = self.engine.pipeline(declaration["name"])
        validate_declaration(declaration, self.registry)
        declaration["version"] = record.version + 1
        record.declaration = declaration
        record.updated = time.time()
        return {"pipeline": self._pipeline_wire(record)}

    def delete_pipeline(self, body: dict[str, Any]) -> dict[str, Any]:
        # AWS answers success for a pipeline that does not exist.
        if body["name"] in self.engine.pipelines:
            self.engine.delete_pipeline(body["name"])
        return {}

    def list_pipelines(self, body: dict[str, Any]) -> dict[str, Any]:
        records = sorted(self.engine.pipelines.values(), key=lambda r: r.name)
        size = body.get("maxResults", self._page_size)
        page, token = _page(records, body.get("nextToken"), size, "pipelines")
        summaries = []
        for record in page:
            summary: dict[str, Any] = {
                "name": record.name,
                "version": record.version,
                "created": record.created,
                "updated": record.updated,
            }
            for member in ("pipelineType", "executionMode"):
                if member in record.declaration:
                    summary[member] = record.declaration[member]
            summaries.append(summary)
        return _with_token({"pipelines": summaries}, token)

    # -- executions ----------------------------------------------------------------------------

    def start_pipeline_execution(self, body: dict[str, Any]) -> dict[str, Any]:
        execution = self.engine.start_execution(
            body["name"], body.get("variables", []), body.get("clientRequestToken")
        )
        return {"pipelineExecutionId": execution.id}

    def _execution(self, pipeline: str, execution_id: str) -> ExecutionRun:
        self.engine.pipeline(pipeline)
        execution = self.engine.execution(pipeline, execution_id)
        if execution is None:
            raise ApiError(
                "PipelineExecutionNotFoundException",
                f"Pipeline execution {execution_id} of pipeline '{pipeline}' was not found.",
            )
        return execution

    def get_pipeline_execution(self, body: dict[str, Any]) -> dict[str, Any]:
        execution = self._execution(body["pipelineName"], body["pipelineExecutionId"])
        wire: dict[str, Any] = {
            "pipelineName": execution.pipeline_name,
            "pipelineVersion": execution.version,
            "pipelineExecutionId": execution.id,
            "status": execution.status,
            "artifactRevisions": [
                {"name": run.outputs[0].name, "revisionId": revision["revisionId"]}
                for run in execution.runs
                for revision in execution.source_revisions
                if revision["actionName"] == run.name and run.outputs
            ],
            "trigger": {
                "triggerType": "StartPipelineExecution",
                "triggerDetail": "cpworker sandbox",
            },
            "executionMode": execution.declaration.get("executionMode", "SUPERSEDED"),
            "executionType": "STANDARD",
        }
        if execution.status_summary:
            wire["statusSummary"] = execution.status_summary
        if execution.variables:
            wire["variables"] = [
                {"name": k, "resolvedValue": v} for k, v in execution.variables.items()
            ]
        return {"pipelineExecution": wire}

    def list_pipeline_executions(self, body: dict[str, Any]) -> dict[str, Any]:
        self.engine.pipeline(body["pipelineName"])
        executions = self.engine.executions_of(body["pipelineName"])
        size = body.get("maxResults", self._page_size)
        page, token = _page(
            executions, body.get("nextToken"), size, f"executions-{body['pipelineName']}"
        )
        summaries = []
        for execution in page:
            summary: dict[str, Any] = {
                "pipelineExecutionId": execution.id,
                "status": execution.status,
                "startTime": execution.start_time,
                "lastUpdateTime": execution.last_update,
                "sourceRevisions": list(execution.source_revisions),
                "trigger": {
                    "triggerType": "StartPipelineExecution",
                    "triggerDetail": "cpworker sandbox",
                },
                "executionMode": execution.declaration.get("executionMode", "SUPERSEDED"),
                "executionType": "STANDARD",
            }
            if execution.status_summary:
                summary["statusSummary"] = execution.status_summary
            if execution.stop_reason is not None:
                summary["stopTrigger"] = {"reason": execution.stop_reason}
            summaries.append(summary)
        return _with_token({"pipelineExecutionSummaries": summaries}, token)

    def stop_pipeline_execution(self, body: dict[str, Any]) -> dict[str, Any]:
        self.engine.stop_execution(
            body["pipelineName"],
            body["pipelineExecutionId"],
            abandon=body.get("abandon", False),
            reason=body.get("reason"),
        )
        return {"pipelineExecutionId": body["pipelineExecutionId"]}

    def _latest_execution(self, run: ActionRun) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "actionExecutionId": run.id,
            "status": run.status,
            "lastStatusChange": run.last_update,
        }
        if run.status == "InProgress":
            wire["token"] = run.token
        optional = {
            "summary": run.summary,
            "externalExecutionId": run.external_execution_id,
            "externalExecutionUrl": run.url,
            "percentComplete": run.percent_complete,
            "errorDetails": run.error,
        }
        wire.update({k: v for k, v in optional.items() if v is not None})
        return wire

    def get_pipeline_state(self, body: dict[str, Any]) -> dict[str, Any]:
        record = self.engine.pipeline(body["name"])
        executions = self.engine.executions_of(record.name)
        stage_states = []
        for stage in record.declaration["stages"]:
            state: dict[str, Any] = {
                "stageName": stage["name"],
                "inboundTransitionState": {"enabled": True},
            }
            latest = next((e for e in executions if stage["name"] in e.stage_status), None)
            if latest is not None:
                state["latestExecution"] = {
                    "pipelineExecutionId": latest.id,
                    "status": latest.stage_status[stage["name"]],
                }
            action_states = []
            for action in stage["actions"]:
                action_state: dict[str, Any] = {"actionName": action["name"]}
                runs = [
                    run
                    for execution in executions
                    for run in execution.runs
                    if run.stage == stage["name"] and run.name == action["name"]
                ]
                if runs:
                    newest = max(runs, key=lambda run: run.start_time)
                    action_state["latestExecution"] = self._latest_execution(newest)
                action_states.append(action_state)
            state["actionStates"] = action_states
            stage_states.append(state)
        return {
            "pipelineName": record.name,
            "pipelineVersion": record.version,
            "stageStates": stage_states,
            "created": record.created,
            "updated": record.updated,
        }

    def _action_detail(self, run: ActionRun) -> dict[str, Any]:
        secrets = set()
        action_type = self.registry.get(run.key)
        if action_type is not None:
            secrets = action_type.secret_properties()
        masked = {
            k: ("****" if k in secrets else v)
            for k, v in run.declaration.get("configuration", {}).items()
        }
        resolved = {k: ("****" if k in secrets else v) for k, v in run.resolved.items()}
        action_input: dict[str, Any] = {
            "actionTypeId": dict(run.declaration["actionTypeId"]),
            "configuration": masked,
            "resolvedConfiguration": resolved,
            "inputArtifacts": [a.detail_wire() for a in run.inputs],
        }
        for member in ("roleArn", "region", "namespace"):
            if member in run.declaration:
                action_input[member] = run.declaration[member]
        result = {
            "externalExecutionId": run.external_execution_id,
            "externalExecutionSummary": run.summary,
            "externalExecutionUrl": run.url,
            "errorDetails": run.error,
        }
        output: dict[str, Any] = {
            "outputArtifacts": [a.detail_wire() for a in run.outputs]
            if run.status == "Succeeded"
            else [],
            "executionResult": {k: v for k, v in result.items() if v is not None},
        }
        if run.output_variables and run.status == "Succeeded":
            output["outputVariables"] = dict(run.output_variables)
        return {
            "pipelineExecutionId": run.execution_id,
            "actionExecutionId": run.id,
            "pipelineVersion": run.pipeline_version,
            "stageName": run.stage,
            "actionName": run.name,
            "startTime": run.start_time,
            "lastUpdateTime": run.last_update,
            "status": run.status,
            "input": action_input,
            "output": output,
        }

    def list_action_executions(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["pipelineName"]
        self.engine.pipeline(name)
        wanted = body.get("filter", {}).get("pipelineExecutionId")
        executions = self.engine.executions_of(name)
        if wanted is not None:
            executions = [self._execution(name, wanted)]
        runs = sorted(
            (run for e in executions for run in e.runs), key=lambda r: r.start_time, reverse=True
        )
        size = body.get("maxResults", 100)
        page, token = _page(runs, body.get("nextToken"), size, f"actions-{name}-{wanted}")
        return _with_token(
            {"actionExecutionDetails": [self._action_detail(run) for run in page]}, token
        )

    # -- jobs ----------------------------------------------------------------------------------

    def poll_for_jobs(self, body: dict[str, Any]) -> dict[str, Any]:
        jobs = self.engine.poll(
            type_key(body["actionTypeId"]), body.get("maxBatchSize", 1), body.get("queryParam", {})
        )
        return {"jobs": jobs}

    def acknowledge_job(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"status": self.engine.acknowledge(body["jobId"], body["nonce"])}

    def get_job_details(self, body: dict[str, Any]) -> dict[str, Any]:
        job = self.engine.job(body["jobId"])
        return {
            "jobDetails": {
                "id": job.id,
                "data": self.engine.job_data(job),
                "accountId": self.engine.account_id,
            }
        }

    def put_job_success_result(self, body: dict[str, Any]) -> dict[str, Any]:
        self.engine.put_success(body)
        return {}

    def put_job_failure_result(self, body: dict[str, Any]) -> dict[str, Any]:
        self.engine.put_failure(body["jobId"], body["failureDetails"])
        return {}
