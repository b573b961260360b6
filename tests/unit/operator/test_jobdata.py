"""Parsing CodePipeline jobs: typed, secrets hidden, malformed data a clear safe error."""

from __future__ import annotations

import copy
import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpworker import jobdata
from cpworker.jobdata import InvalidJobDataError, parse_job, parse_job_details
from tests.unit.operator.samples import CANARIES, JOB_ID, NOW, RAW_JOB, SECRET_PROPERTIES, raw_job


def test_sample_job_parses() -> None:
    job = parse_job(RAW_JOB)
    assert job.id == JOB_ID
    assert job.nonce == "3"
    assert job.account_id == "111122223333"
    context = job.data.pipeline_context
    assert context.pipeline_name == "acme-main"
    assert context.stage.name == "Build"
    assert context.action.name == "GpuBuild"
    assert context.action.action_execution_id == "ae-0001"
    assert job.data.input_artifacts[0].location is not None
    assert job.data.encryption_key is not None
    assert job.data.artifact_credentials is not None


def test_secrets_never_show_in_repr_str_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    job = parse_job(RAW_JOB)
    caplog.set_level(logging.DEBUG)
    logging.getLogger("test").info("job %s %r", job, job)
    renderings = [
        repr(job),
        str(job),
        repr(job.data),
        str(job.data.artifact_credentials),
        str(job.data.configuration()),
        job.model_dump_json(),
        json.dumps(job.model_dump(mode="json")),
        caplog.text,
    ]
    for text in renderings:
        for canary in CANARIES:
            assert canary not in text


def test_secret_values_remain_available_on_purpose() -> None:
    job = parse_job(RAW_JOB)
    credentials = job.data.artifact_credentials
    assert credentials is not None
    assert credentials.secret_access_key.get_secret_value() == CANARIES[1]


def test_job_details_parse() -> None:
    details = parse_job_details({k: v for k, v in RAW_JOB.items() if k != "nonce"})
    assert details.id == JOB_ID
    assert details.data.artifact_credentials is not None


def test_minimal_job_parses() -> None:
    job = parse_job({"id": JOB_ID, "nonce": "1", "accountId": "123456789012"})
    assert job.data.input_artifacts == []
    assert job.data.configuration() == {}


def test_unknown_fields_are_tolerated() -> None:
    raw = raw_job()
    raw["data"]["somethingNew"] = {"x": 1}
    raw["futureField"] = True
    assert parse_job(raw).id == JOB_ID


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda j: j.update(id="not-a-uuid"), "id"),
        (lambda j: j.update(accountId="12"), "accountId"),
        (lambda j: j.update(nonce=""), "nonce"),
        (lambda j: j.pop("nonce"), "nonce"),
        (lambda j: j["data"].update(inputArtifacts="x"), "data.inputArtifacts"),
        (lambda j: j["data"]["inputArtifacts"][0].update(name="../etc"), "name"),
        (lambda j: j["data"]["pipelineContext"].update(pipelineName="a b"), "pipelineName"),
        (lambda j: j["data"]["artifactCredentials"].pop("sessionToken"), "sessionToken"),
        (
            lambda j: j["data"]["actionConfiguration"]["configuration"].update(Big="x" * 1001),
            "configuration",
        ),
        (lambda j: j["data"].update(continuationToken="t" * 2049), "continuationToken"),
    ],
)
def test_malformed_jobs_raise_a_clear_error(mutate: Any, where: str) -> None:
    raw = raw_job()
    mutate(raw)
    with pytest.raises(InvalidJobDataError) as caught:
        parse_job(raw)
    assert where in caught.value.message
    assert caught.value.message.startswith("malformed CodePipeline job data")
    for canary in CANARIES:
        assert canary not in str(caught.value)


def test_error_keeps_the_job_id_and_nonce_so_the_job_can_be_failed() -> None:
    raw = raw_job()
    raw["data"]["inputArtifacts"] = 7
    with pytest.raises(InvalidJobDataError) as caught:
        parse_job(raw)
    assert caught.value.job_id == JOB_ID
    assert caught.value.nonce == "3"


def test_error_does_not_echo_a_hostile_value() -> None:
    raw = raw_job()
    raw["data"]["artifactCredentials"]["secretAccessKey"] = {"nested": CANARIES[1]}
    with pytest.raises(InvalidJobDataError) as caught:
        parse_job(raw)
    assert CANARIES[1] not in str(caught.value)
    assert CANARIES[1] not in repr(caught.value)


@pytest.mark.parametrize("raw", [None, [], "job", 3])
def test_non_mapping_input(raw: object) -> None:
    with pytest.raises(InvalidJobDataError):
        parse_job(raw)


def _error_of(raw: object) -> InvalidJobDataError | None:
    """The parse error for `raw`, or None when it parses (any other exception fails the test)."""
    try:
        parse_job(raw)
    except InvalidJobDataError as error:
        return error
    return None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=200)
@given(st.sampled_from(["id", "nonce", "accountId", "data"]), json_values)
def test_hostile_top_level_values_never_crash(key: str, value: Any) -> None:
    raw = copy.deepcopy(RAW_JOB)
    raw[key] = value
    error = _error_of(raw)
    if error is not None:
        assert error.message
        for canary in CANARIES:
            assert canary not in error.message


@settings(max_examples=200)
@given(
    st.sampled_from(
        [
            "actionConfiguration",
            "pipelineContext",
            "inputArtifacts",
            "outputArtifacts",
            "artifactCredentials",
            "continuationToken",
            "encryptionKey",
        ]
    ),
    json_values,
)
def test_hostile_data_values_never_crash(key: str, value: Any) -> None:
    raw = copy.deepcopy(RAW_JOB)
    raw["data"][key] = value
    error = _error_of(raw)
    if error is not None:
        assert error.job_id == JOB_ID


def test_job_document_has_no_secrets() -> None:
    job = parse_job(RAW_JOB)
    document = jobdata.job_document(job.id, job.account_id, job.data, SECRET_PROPERTIES)
    text = json.dumps(document)
    for canary in CANARIES:
        assert canary not in text
    assert "artifactCredentials" not in document["data"]
    configuration = document["data"]["actionConfiguration"]["configuration"]
    assert configuration == {"Pool": "gpu-a100", "Make Target": "all"}
    assert document["secretConfigurationKeys"] == ["ApiToken"]
    assert document["data"]["inputArtifacts"][0]["location"]["s3Location"]["bucketName"]


def test_credentials_need_refresh() -> None:
    assert not jobdata.credentials_need_refresh(NOW, NOW + timedelta(seconds=599), 600)
    assert jobdata.credentials_need_refresh(NOW, NOW + timedelta(seconds=600), 600)
