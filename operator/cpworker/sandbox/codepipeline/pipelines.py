"""Pipeline declarations: the structural rules CodePipeline checks on create and update."""

from __future__ import annotations

import copy
import dataclasses
import re
from typing import Any

from cpworker.sandbox.codepipeline.actiontypes import (
    S3_SOURCE_ID,
    ActionTypeRegistry,
    CustomActionType,
    describe,
    type_key,
)
from cpworker.sandbox.codepipeline.errors import ApiError

MAX_QUERYABLE_VALUE = 20
_QUERYABLE_VALUE = re.compile(r"[a-zA-Z0-9_-]+")
SECRET_MASK = "****"  # noqa: S105 - the mask AWS shows in place of a secret


@dataclasses.dataclass
class PipelineRecord:
    declaration: dict[str, Any]  # as declared, with "version" set; secret values in clear
    created: float
    updated: float
    tags: dict[str, str]

    @property
    def name(self) -> str:
        return str(self.declaration["name"])

    @property
    def version(self) -> int:
        return int(self.declaration["version"])


def _structure(message: str) -> ApiError:
    return ApiError("InvalidStructureException", message)


def _action_error(message: str) -> ApiError:
    return ApiError("InvalidActionDeclarationException", message)


def _check_custom_action(action: dict[str, Any], action_type: CustomActionType) -> None:
    name = action["name"]
    configuration: dict[str, str] = action.get("configuration", {})
    declared = {p["name"]: p for p in action_type.properties}
    for key in configuration:
        if key not in declared:
            raise _action_error(
                f"Action {name!r}: configuration key {key!r} is not declared by its action type."
            )
    for prop in declared.values():
        if prop["required"] and key_missing(configuration, prop["name"]):
            raise _action_error(
                f"Action {name!r}: required configuration key {prop['name']!r} is missing."
            )
    queryable = action_type.queryable_property()
    if queryable is not None and queryable in configuration:
        value = configuration[queryable]
        if len(value) > MAX_QUERYABLE_VALUE or not _QUERYABLE_VALUE.fullmatch(value):
            raise _action_error(
                f"Action {name!r}: the queryable property {queryable!r} takes at most "
                f"{MAX_QUERYABLE_VALUE} characters of [a-zA-Z0-9_-]."
            )
    for label, artifacts, details in (
        ("input", action.get("inputArtifacts", []), action_type.input_details),
        ("output", action.get("outputArtifacts", []), action_type.output_details),
    ):
        if not details["minimumCount"] <= len(artifacts) <= details["maximumCount"]:
            raise _action_error(
                f"Action {name!r}: {len(artifacts)} {label} artifacts; its action type takes "
                f"{details['minimumCount']} to {details['maximumCount']}."
            )


def key_missing(configuration: dict[str, str], key: str) -> bool:
    return not configuration.get(key)


def _check_s3_source(action: dict[str, Any]) -> None:
    configuration = action.get("configuration", {})
    for key in ("S3Bucket", "S3ObjectKey"):
        if key_missing(configuration, key):
            raise _action_error(f"Action {action['name']!r}: the S3 source action needs {key}.")
    if action.get("inputArtifacts") or len(action.get("outputArtifacts", [])) != 1:
        raise _action_error(
            f"Action {action['name']!r}: an S3 source action has no input and one output artifact."
        )


def validate_declaration(declaration: dict[str, Any], registry: ActionTypeRegistry) -> None:
    """Raise the ApiError CodePipeline would for a structurally invalid pipeline."""
    if "artifactStore" not in declaration:
        raise _structure("The stand-in supports single-region pipelines: declare artifactStore.")
    stages = declaration["stages"]
    if len(stages) < 2:
        raise _structure("A pipeline must have at least two stages.")
    stage_names = [stage["name"] for stage in stages]
    if len(set(stage_names)) != len(stage_names):
        raise ApiError(
            "InvalidStageDeclarationException", "Stage names must be unique in a pipeline."
        )
    produced: set[str] = set()
    namespaces: set[str] = set()
    for index, stage in enumerate(stages):
        actions = stage["actions"]
        action_names = [action["name"] for action in actions]
        if len(set(action_names)) != len(action_names):
            raise _action_error(f"Stage {stage['name']!r}: action names must be unique in a stage.")
        for run_order in sorted({action.get("runOrder", 1) for action in actions}):
            group = [action for action in actions if action.get("runOrder", 1) == run_order]
            for action in group:
                _check_action(action, registry, first_stage=index == 0, produced=produced)
                namespace = action.get("namespace")
                if namespace is not None:
                    if namespace in namespaces:
                        raise _action_error(
                            f"Namespace {namespace!r} is used by more than one action."
                        )
                    namespaces.add(namespace)
            for action in group:
                for artifact in action.get("outputArtifacts", []):
                    if artifact["name"] in produced:
                        raise _structure(
                            f"Output artifact {artifact['name']!r} is produced more than once."
                        )
                    produced.add(artifact["name"])


def _check_action(
    action: dict[str, Any], registry: ActionTypeRegistry, *, first_stage: bool, produced: set[str]
) -> None:
    key = type_key(action["actionTypeId"])
    is_source = key[0] == "Source"
    if first_stage != is_source:
        raise _structure(
            "Source actions go in the first stage, and the first stage holds only source actions."
        )
    for artifact in action.get("inputArtifacts", []):
        if artifact["name"] not in produced:
            raise _structure(
                f"Action {action['name']!r}: input artifact {artifact['name']!r} "
                "is not the output of an earlier action."
            )
    if key == S3_SOURCE_ID:
        _check_s3_source(action)
        return
    custom = registry.get(key) if key[1] == "Custom" else None
    if custom is None:
        raise _action_error(
            f"{describe(key)} in action {action['name']!r} is not available in the stand-in."
        )
    _check_custom_action(action, custom)


def mask_secrets(declaration: dict[str, Any], registry: ActionTypeRegistry) -> dict[str, Any]:
    """A copy of `declaration` with secret configuration values masked (as GetPipeline shows)."""
    masked = copy.deepcopy(declaration)
    for stage in masked["stages"]:
        for action in stage["actions"]:
            custom = registry.get(type_key(action["actionTypeId"]))
            secrets = custom.secret_properties() if custom is not None else set()
            configuration = action.get("configuration", {})
            for key in secrets & set(configuration):
                configuration[key] = SECRET_MASK
    return masked
