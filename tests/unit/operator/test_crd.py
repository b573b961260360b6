"""The CRD rendered from the models: committed, structural, consistent, and enforcing the rules."""

from __future__ import annotations

import copy
import io
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import kubernetes_validate
import pytest
import yaml
from celpy.adapter import json_to_cel
from hypothesis import given, settings
from hypothesis import strategies as st

from cpworker import crd, models, names
from cpworker.models import CustomActionWorkerSpec, CustomActionWorkerStatus, InvalidSpecError
from tests.unit.operator.samples import spec
from tests.unit.operator.test_models import valid_specs

REPO = Path(__file__).resolve().parents[3]
COMMITTED = REPO / "crds" / crd.FILE_NAME

Schema = dict[str, Any]


def _root() -> Schema:
    version = crd.render_crd()["spec"]["versions"][0]
    schema: Schema = version["schema"]["openAPIV3Schema"]
    return schema


def _walk(schema: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    yield path, schema
    for name, child in (schema.get("properties") or {}).items():
        yield from _walk(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk(schema["additionalProperties"], f"{path}{{}}")


# --- The committed file ------------------------------------------------------------------


def test_committed_crd_matches_the_models() -> None:
    assert COMMITTED.exists(), "crds/ has no CRD: run `make crds`"
    assert COMMITTED.read_text(encoding="utf-8") == crd.render_yaml(), (
        "crds/ differs from the models: run `make crds` and commit the result"
    )


def test_cli_prints_and_writes_the_same_yaml(tmp_path: Path) -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        assert crd.main([]) == 0
    assert out.getvalue() == crd.render_yaml()
    assert crd.main(["--output", str(tmp_path / "new")]) == 0
    assert (tmp_path / "new" / crd.FILE_NAME).read_text(encoding="utf-8") == out.getvalue()


def test_rendering_is_deterministic() -> None:
    assert crd.render_yaml() == crd.render_yaml()
    assert yaml.safe_load(crd.render_yaml()) == crd.render_crd()


# --- A valid CRD with a structural schema -------------------------------------------------


def test_crd_is_a_valid_apiextensions_object() -> None:
    kubernetes_validate.validate(crd.render_crd(), "1.30", strict=True)


def test_crd_identity() -> None:
    rendered = crd.render_crd()
    spec_ = rendered["spec"]
    assert rendered["metadata"]["name"] == "customactionworkers.cpworker.io"
    assert spec_["group"] == "cpworker.io"
    assert spec_["scope"] == "Namespaced"
    assert spec_["names"]["kind"] == "CustomActionWorker"
    assert spec_["names"]["plural"] == "customactionworkers"
    assert spec_["names"]["shortNames"] == ["caw"]
    assert spec_["names"]["categories"] == ["cpworker"]
    (version,) = spec_["versions"]
    assert version["name"] == "v1alpha1"
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}


FORBIDDEN = {"$ref", "$defs", "definitions", "anyOf", "oneOf", "allOf", "not", "title", "const"}
FORBIDDEN |= {"propertyNames", "patternProperties", "dependencies", "additionalItems"}


def test_schema_is_structural() -> None:
    for path, node in _walk(_root()):
        assert "type" in node, f"{path} has no type"
        assert not FORBIDDEN & set(node), f"{path} uses {FORBIDDEN & set(node)}"
        if "properties" in node:
            assert "additionalProperties" not in node, path
        assert node.get("default", 0) is not None, f"{path} has default: null"


def test_every_field_is_described() -> None:
    for path, node in _walk(_root()):
        is_field = path and not path.endswith(("[]", "{}"))
        if is_field and path != ".metadata":
            assert node.get("description"), f"{path} has no description (kubectl explain)"


def test_status_has_no_defaults_and_conditions_are_a_list_map() -> None:
    status = _root()["properties"]["status"]
    assert all("default" not in node for _, node in _walk(status))
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert set(item["properties"]) == {
        "type",
        "status",
        "reason",
        "message",
        "lastTransitionTime",
        "observedGeneration",
    }
    assert "type" in item["required"]


def test_job_template_spec_preserves_unknown_fields() -> None:
    template = _root()["properties"]["spec"]["properties"]["jobTemplate"]
    pod_part = template["properties"]["spec"]
    assert pod_part["x-kubernetes-preserve-unknown-fields"] is True
    assert pod_part["type"] == "object"


def test_printer_columns() -> None:
    (version,) = crd.render_crd()["spec"]["versions"]
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert list(columns)[:7] == [
        "Ready",
        "Reason",
        "In-flight",
        "Succeeded",
        "Failed",
        "Last poll",
        "Age",
    ]
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Last poll"]["type"] == "date"
    assert columns["Age"]["jsonPath"] == ".metadata.creationTimestamp"
    status = _root()["properties"]["status"]["properties"]
    for column in ("In-flight", "Succeeded", "Failed", "Last poll"):
        field = columns[column]["jsonPath"].removeprefix(".status.")
        assert field in status, f"printer column {column} points at no status field"


# --- Consistency with the models ----------------------------------------------------------


def _aliases(model: type[Any]) -> set[str]:
    return {info.alias or name for name, info in model.model_fields.items()}


def test_spec_and_status_fields_match_the_models() -> None:
    properties = _root()["properties"]
    assert set(properties["spec"]["properties"]) == _aliases(CustomActionWorkerSpec)
    assert set(properties["status"]["properties"]) == _aliases(CustomActionWorkerStatus)
    assert set(properties["spec"]["required"]) == {"actionTypeId", "jobTemplate"}


def test_crd_defaults_equal_model_defaults() -> None:
    parsed = models.parse_spec(spec())
    properties = _root()["properties"]["spec"]["properties"]
    assert properties["maxInFlight"]["default"] == models.DEFAULT_MAX_IN_FLIGHT
    assert properties["paused"]["default"] is False
    assert properties["deletionPolicy"]["default"] == "Drain"
    polling = properties["polling"]["properties"]
    assert polling["minIntervalSeconds"]["default"] == parsed.polling.min_interval_seconds
    assert polling["maxIntervalSeconds"]["default"] == parsed.polling.max_interval_seconds


# --- The schema as a validator: JSON schema + CEL, compared with the models -----------------


def _json_schema_errors(obj: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(_root())
    return [error.message for error in validator.iter_errors(obj)]


def _cel_rules(schema: Schema) -> Iterator[tuple[list[str], dict[str, Any]]]:
    for path, node in _walk(schema):
        for rule in node.get("x-kubernetes-validations") or []:
            yield [p for p in path.split(".") if p], rule


def _value_at(obj: Any, path: list[str]) -> tuple[bool, Any]:
    for part in path:
        if not isinstance(obj, dict) or part not in obj:
            return False, None
        obj = obj[part]
    return True, obj


def _cel_failures(new: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    """Evaluate the CRD's CEL rules as the API server does (transition rules only on update)."""
    environment = celpy.Environment()
    failures = []
    for path, rule in _cel_rules(_root()):
        present, value = _value_at(new, path)
        if not present:
            continue
        activation = {"self": json_to_cel(value)}
        if "oldSelf" in rule["rule"]:
            had_old, old_value = _value_at(old, path) if old is not None else (False, None)
            if not had_old:
                continue
            activation["oldSelf"] = json_to_cel(old_value)
        program = environment.program(environment.compile(rule["rule"]))
        if not bool(program.evaluate(activation)):
            failures.append(rule["message"])
    return failures


def _resource(spec_: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {"name": "w", "namespace": "ci"},
        "spec": spec_,
    }


def test_sample_resource_is_valid_everywhere() -> None:
    resource = _resource(spec())
    assert _json_schema_errors(resource) == []
    assert _cel_failures(resource) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {
                "actionTypeId": {
                    "category": "Build",
                    "owner": "AWS",
                    "provider": "P",
                    "version": "1",
                }
            },
            models.OWNER_MESSAGE,
        ),
        ({"queryParam": {"A": "1", "B": "2"}}, models.QUERY_PARAM_SIZE_MESSAGE),
        ({"maxInFlight": 4, "maxBatchSize": 5}, models.BATCH_MESSAGE),
        ({"maxBatchSize": 11}, models.BATCH_MESSAGE),  # above the default maxInFlight (10)
        ({"polling": {"minIntervalSeconds": 61}}, models.INTERVAL_MESSAGE),  # default max 60
        (
            {"polling": {"minIntervalSeconds": 9, "maxIntervalSeconds": 8}},
            models.INTERVAL_MESSAGE,
        ),
    ],
)
def test_cel_rules_reject_with_their_message(changes: dict[str, Any], expected: str) -> None:
    raw = spec(**changes)
    if "maxInFlight" not in changes:
        del raw["maxInFlight"]  # the sample sets 20; these cases rely on the default (10)
    assert expected in _cel_failures(_resource(raw))
    with pytest.raises(InvalidSpecError) as caught:
        models.parse_spec(raw)
    assert expected in caught.value.message  # the operator says the same thing


def test_action_type_is_immutable() -> None:
    old = _resource(spec())
    new = copy.deepcopy(old)
    new["spec"]["actionTypeId"]["version"] = "2"
    assert models.IMMUTABLE_MESSAGE in _cel_failures(new, old)
    assert _cel_failures(copy.deepcopy(old), old) == []
    changed_elsewhere = copy.deepcopy(old)
    changed_elsewhere["spec"]["maxInFlight"] = 3
    assert _cel_failures(changed_elsewhere, old) == []


@pytest.mark.parametrize(
    "changes",
    [
        {"maxInFlight": "ten"},
        {"maxInFlight": 0},
        {"queryParam": {"Pool": "has space"}},
        {"region": "Mars"},
        {"deletionPolicy": "Orphan"},
        {"paused": "yes"},
        {"jobTemplate": {"metadata": {}}},
        {
            "actionTypeId": {
                "category": "Build",
                "owner": "Custom",
                "provider": "x" * 36,
                "version": "1",
            }
        },
    ],
)
def test_json_schema_rejects_invalid_objects(changes: dict[str, Any]) -> None:
    assert _json_schema_errors(_resource(spec(**changes)))


@settings(max_examples=150)
@given(valid_specs())
def test_fuzzed_valid_specs_pass_the_crd(raw: dict[str, Any]) -> None:
    resource = _resource(raw)
    assert _json_schema_errors(resource) == []
    assert _cel_failures(resource) == []


@settings(max_examples=150)
@given(valid_specs(), st.data())
def test_crd_and_models_agree_on_fuzzed_mutations(raw: dict[str, Any], data: st.DataObject) -> None:
    field = data.draw(st.sampled_from(["maxInFlight", "maxBatchSize", "queryParam", "polling"]))
    value = data.draw(
        {
            "maxInFlight": st.integers(-5, 1200),
            "maxBatchSize": st.integers(-5, 120),
            "queryParam": st.dictionaries(
                st.text(max_size=60), st.text("ab_-! ", max_size=55), max_size=2
            ),
            "polling": st.fixed_dictionaries(
                {
                    "minIntervalSeconds": st.integers(-1, 3700),
                    "maxIntervalSeconds": st.integers(-1, 3700),
                }
            ),
        }[field]
    )
    raw[field] = value
    resource = _resource(raw)
    crd_accepts = not _json_schema_errors(resource) and not _cel_failures(resource)
    try:
        models.parse_spec(raw)
        model_accepts = True
    except InvalidSpecError:
        model_accepts = False
    assert crd_accepts == model_accepts, (field, value)
