"""Custom action types: the registry and the rules AWS enforces on them."""

from __future__ import annotations

import dataclasses
from typing import Any

from cpworker.sandbox.codepipeline.errors import ApiError, validation

MAX_PROPERTIES = 10
MAX_TAGS = 50

# The one AWS-owned action type pipelines may use in the stand-in: the S3 source action.
S3_SOURCE_ID = ("Source", "AWS", "S3", "1")
S3_SOURCE_WIRE: dict[str, Any] = {
    "id": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
    "settings": {},
    "actionConfigurationProperties": [
        {"name": name, "required": required, "key": True, "secret": False, "queryable": False}
        for name, required in (
            ("S3Bucket", True),
            ("S3ObjectKey", True),
            ("PollForSourceChanges", False),
        )
    ],
    "inputArtifactDetails": {"minimumCount": 0, "maximumCount": 0},
    "outputArtifactDetails": {"minimumCount": 1, "maximumCount": 1},
}

TypeKey = tuple[str, str, str, str]  # (category, owner, provider, version)


def type_key(action_type_id: dict[str, Any]) -> TypeKey:
    return (
        action_type_id["category"],
        action_type_id["owner"],
        action_type_id["provider"],
        action_type_id["version"],
    )


def describe(key: TypeKey) -> str:
    category, owner, provider, version = key
    return (
        f"ActionType (Category: '{category}', Provider: '{provider}', "
        f"Owner: '{owner}', Version: '{version}')"
    )


@dataclasses.dataclass
class CustomActionType:
    category: str
    provider: str
    version: str
    settings: dict[str, str]
    properties: list[dict[str, Any]]
    input_details: dict[str, int]
    output_details: dict[str, int]
    tags: dict[str, str]
    deleted: bool = False

    @property
    def key(self) -> TypeKey:
        return (self.category, "Custom", self.provider, self.version)

    @property
    def resource(self) -> str:
        return f"actiontype:Custom/{self.category}/{self.provider}/{self.version}"

    def queryable_property(self) -> str | None:
        return next((p["name"] for p in self.properties if p.get("queryable")), None)

    def secret_properties(self) -> set[str]:
        return {p["name"] for p in self.properties if p.get("secret")}

    def wire(self) -> dict[str, Any]:
        category, owner, provider, version = self.key
        return {
            "id": {"category": category, "owner": owner, "provider": provider, "version": version},
            "settings": dict(self.settings),
            "actionConfigurationProperties": [dict(p) for p in self.properties],
            "inputArtifactDetails": dict(self.input_details),
            "outputArtifactDetails": dict(self.output_details),
        }


def validate_tags(tags: list[dict[str, str]], existing: int = 0) -> dict[str, str]:
    if len(tags) + existing > MAX_TAGS:
        raise ApiError("TooManyTagsException", f"A resource can have at most {MAX_TAGS} tags.")
    result: dict[str, str] = {}
    for tag in tags:
        if tag["key"].lower().startswith("aws:"):
            raise ApiError(
                "InvalidTagsException", f"Tag keys may not start with 'aws:': {tag['key']!r}"
            )
        result[tag["key"]] = tag["value"]
    return result


def _check_properties(properties: list[dict[str, Any]]) -> None:
    if len(properties) > MAX_PROPERTIES:
        raise validation(
            f"An action type can have at most {MAX_PROPERTIES} configuration properties."
        )
    names = [p["name"] for p in properties]
    if len(set(names)) != len(names):
        raise validation("Configuration property names must be unique.")
    queryable = [p for p in properties if p.get("queryable")]
    if len(queryable) > 1:
        raise validation("An action type can have at most one queryable configuration property.")
    for prop in queryable:
        if not prop["required"] or prop["secret"]:
            raise validation(
                f"The queryable configuration property {prop['name']!r} "
                "must be required and not secret."
            )


def _check_artifact_details(label: str, details: dict[str, int]) -> None:
    if details["minimumCount"] > details["maximumCount"]:
        raise validation(f"{label}: minimumCount must not exceed maximumCount.")


class ActionTypeRegistry:
    def __init__(self) -> None:
        self._types: dict[TypeKey, CustomActionType] = {}

    def active(self) -> list[CustomActionType]:
        return [t for t in self._types.values() if not t.deleted]

    def get(self, key: TypeKey) -> CustomActionType | None:
        found = self._types.get(key)
        return found if found is not None and not found.deleted else None

    def by_resource(self, resource: str) -> CustomActionType | None:
        return next((t for t in self.active() if t.resource == resource), None)

    def create(self, body: dict[str, Any], limit: int) -> CustomActionType:
        key: TypeKey = (body["category"], "Custom", body["provider"], body["version"])
        existing = self._types.get(key)
        if existing is not None and existing.deleted:
            raise validation(
                f"{describe(key)} was deleted; a deleted version cannot be re-created. "
                "Use a new version."
            )
        if existing is not None:
            raise validation(f"{describe(key)} already exists.")
        if len(self.active()) >= limit:
            raise ApiError(
                "LimitExceededException",
                f"The number of custom action types in this region would exceed {limit}.",
            )
        properties = [dict(p) for p in body.get("configurationProperties", [])]
        _check_properties(properties)
        _check_artifact_details("inputArtifactDetails", body["inputArtifactDetails"])
        _check_artifact_details("outputArtifactDetails", body["outputArtifactDetails"])
        tags = validate_tags(body.get("tags", []))
        action_type = CustomActionType(
            category=body["category"],
            provider=body["provider"],
            version=body["version"],
            settings=dict(body.get("settings", {})),
            properties=properties,
            input_details=dict(body["inputArtifactDetails"]),
            output_details=dict(body["outputArtifactDetails"]),
            tags=tags,
        )
        self._types[key] = action_type
        return action_type

    def delete(self, key: TypeKey) -> None:
        found = self.get(key)
        if found is None:
            # The model declares no error for this, but AWS answers ActionTypeNotFoundException
            # (Terraform's provider treats it as "already gone"), so the stand-in does too.
            raise ApiError("ActionTypeNotFoundException", f"{describe(key)} does not exist.")
        found.deleted = True
