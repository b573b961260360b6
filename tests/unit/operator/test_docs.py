"""The reference docs cover every setting, field and env variable, and their example works.

docs/reference.md is generated (`make docs`, tools/docs/reference.py; tests/unit/
test_reference_doc.py fails when it is stale); these tests hold the generator to covering
everything, and the hand-written job contract to the variables and files the operator sets.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from cpworker import jobmanifest, jobsecret, jobtemplate
from cpworker.jobdata import parse_job
from cpworker.models import CustomActionWorkerSpec, CustomActionWorkerStatus, parse_spec
from cpworker.settings import ENV_PREFIX, OperatorSettings
from tests.unit.operator import samples

DOCS = Path(__file__).resolve().parents[3] / "docs"
REFERENCE = (DOCS / "reference.md").read_text(encoding="utf-8")
CONTRACT = (DOCS / "job-contract.md").read_text(encoding="utf-8")


def test_every_setting_is_documented() -> None:
    for name in OperatorSettings.model_fields:
        assert f"`{ENV_PREFIX}{name.upper()}`" in REFERENCE, name


def test_every_status_field_is_documented() -> None:
    for name, info in CustomActionWorkerStatus.model_fields.items():
        assert f"`status.{info.alias or name}`" in REFERENCE, name


def test_every_spec_field_is_documented() -> None:
    for name, info in CustomActionWorkerSpec.model_fields.items():
        assert f"`spec.{info.alias or name}`" in REFERENCE, name


def test_the_example_worker_is_valid() -> None:
    block = re.search(r"```yaml\n(.*?)```", REFERENCE, re.DOTALL)
    assert block is not None
    resource = yaml.safe_load(block.group(1))
    spec = parse_spec(resource["spec"])
    assert jobtemplate.validate_job_template(spec.job_template) == []


def test_every_environment_variable_given_to_containers_is_documented() -> None:
    job = jobmanifest.build_job(
        worker=samples.WORKER,
        spec=parse_spec(samples.spec()),
        job=parse_job(samples.RAW_JOB),
        secret_property_names=samples.SECRET_PROPERTIES,
        settings=samples.settings(),
        now=samples.NOW,
    )
    (container,) = job["spec"]["template"]["spec"]["containers"]
    for variable in container["env"]:
        name = variable["name"]
        if name.startswith(jobmanifest.ENV_CONFIG_PREFIX) or name == "MODE":
            continue
        assert f"`{name}`" in CONTRACT, name
    assert "CPWORKER_CONFIG_<NAME>" in CONTRACT


def test_every_secret_file_is_documented() -> None:
    for key in (jobsecret.CREDENTIALS_KEY, jobsecret.JOB_KEY, jobsecret.SECRET_CONFIG_KEY):
        assert f"`{key}`" in CONTRACT
    assert jobmanifest.MOUNT_PATH in CONTRACT


def test_the_contracts_example_worker_is_valid() -> None:
    text = CONTRACT.split("### A complete example worker", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", text, re.DOTALL)
    assert block is not None
    spec = parse_spec(yaml.safe_load(block.group(1))["spec"])
    assert spec.artifacts.enabled
    problems = jobtemplate.validate_job_template(spec.job_template, artifacts=spec.artifacts)
    assert problems == []
