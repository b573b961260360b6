"""The wire protocol's edges, the control endpoint, fault injection, the request log and the
conformance checks themselves."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError

from cpworker.sandbox.codepipeline import CodePipelineStandIn, StandInConfig
from cpworker.sandbox.codepipeline.environment import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    client_config,
)
from cpworker.sandbox.codepipeline.errors import ApiError
from cpworker.sandbox.codepipeline.pytest_plugin import ConformanceError, assert_conformant
from cpworker.sandbox.codepipeline.scenario import Scenario

if TYPE_CHECKING:
    from mypy_boto3_codepipeline import CodePipelineClient

ScenarioFactory = Callable[..., Scenario]
JSON_TYPE = "application/x-amz-json-1.1"


def http(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw)
        except ValueError:
            return error.code, raw.decode()


def api(url: str, operation: str, body: bytes, content_type: str = JSON_TYPE) -> tuple[int, Any]:
    headers = {"Content-Type": content_type, "X-Amz-Target": f"CodePipeline_20150709.{operation}"}
    return http(url, "POST", body, headers)


@pytest.fixture
def one_shot(codepipeline: CodePipelineStandIn) -> CodePipelineClient:
    """A client that does not retry, so each injected fault reaches the test."""
    return boto3.client(
        "codepipeline",
        endpoint_url=codepipeline.url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=client_config(max_attempts=1),
    )


def test_unknown_operations_and_content_types_get_clear_errors(
    codepipeline: CodePipelineStandIn,
) -> None:
    status, body = api(codepipeline.url, "LaunchRockets", b"{}")
    assert status == 400
    assert body["__type"] == "UnknownOperationException"
    status, body = api(codepipeline.url, "PutWebhook", b"{}")
    assert (status, body["__type"]) == (400, "UnknownOperationException")
    # A Smithy RPC v2 CBOR client's request.
    status, body = http(
        f"{codepipeline.url}/service/CodePipeline_20150709/operation/PollForJobs",
        "POST",
        b"\xa0",
        {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"},
    )
    assert status == 400
    assert body["__type"] == "UnknownOperationException"
    assert "AWS JSON 1.1 only" in body["message"]
    status, body = api(codepipeline.url, "ListPipelines", b"\xa0", content_type="application/cbor")
    assert (status, body["__type"]) == (400, "SerializationException")
    assert "CBOR" in body["message"]
    status, body = api(codepipeline.url, "ListPipelines", b"{not json")
    assert (status, body["__type"]) == (400, "SerializationException")
    status, body = api(codepipeline.url, "ListPipelines", b"[]")
    assert (status, body["__type"]) == (400, "SerializationException")
    status, body = http(codepipeline.url, "POST", b"{}", {"Content-Type": JSON_TYPE})
    assert (status, body["__type"]) == (400, "UnknownOperationException")
    # The server is still fine afterwards.
    assert api(codepipeline.url, "ListPipelines", b"{}") == (200, {"pipelines": []})


def test_control_endpoint_config_and_faults(codepipeline: CodePipelineStandIn) -> None:
    base = f"{codepipeline.url}/_sandbox"
    assert http(f"{base}/health") == (200, {"status": "ok"})
    status, config = http(
        f"{base}/config", "POST", json.dumps({"job_timeout": 7, "redelivery_window": 0.5}).encode()
    )
    assert status == 200
    assert config["job_timeout"] == 7
    assert codepipeline.config.redelivery_window == 0.5
    assert http(f"{base}/config", "POST", b'{"no_such_knob": 1}')[0] == 400
    assert http(f"{base}/config", "POST", b'{"job_timeout": "soon"}')[0] == 400
    status, faults = http(
        f"{base}/faults", "POST", json.dumps({"ListPipelines": {"throttle_next": 1}}).encode()
    )
    assert status == 200
    assert faults["ListPipelines"]["throttle_next"] == 1
    assert http(f"{base}/faults", "POST", b'{"ListPipelines": {"volume": 11}}')[0] == 400
    assert http(f"{base}/faults", "POST", b'{"NoSuchOperation": {}}')[0] == 400
    assert http(f"{base}/faults", "POST", b'{"ListPipelines": {"error_probability": 2}}')[0] == 400
    status, body = api(codepipeline.url, "ListPipelines", b"{}")
    assert (status, body["__type"]) == (400, "ThrottlingException")
    assert api(codepipeline.url, "ListPipelines", b"{}")[0] == 200
    assert http(f"{base}/faults", "DELETE") == (200, {})
    assert http(f"{base}/faults") == (200, {})
    status, records = http(f"{base}/requests")
    assert status == 200
    assert [r["operation"] for r in records] == ["ListPipelines", "ListPipelines"]
    assert records[0]["outcome"] == "fault"
    assert records[0]["error_type"] == "ThrottlingException"
    assert records[1]["outcome"] == "ok"
    assert http(f"{base}/requests", "DELETE") == (200, [])
    assert http(f"{base}/violations") == (200, [])
    assert http(f"{base}/nothing")[0] == 400


def test_counted_faults_throttle_and_5xx(
    codepipeline: CodePipelineStandIn, one_shot: CodePipelineClient
) -> None:
    codepipeline.faults.set("ListPipelines", throttle_next=2)
    for _ in range(2):
        with pytest.raises(ClientError) as raised:
            one_shot.list_pipelines()
        assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    one_shot.list_pipelines()
    codepipeline.faults.set("*", error_next=1, error_status=503)
    with pytest.raises(ClientError) as raised:
        one_shot.list_action_types()
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    one_shot.list_action_types()
    outcomes = [(r.operation, r.outcome, r.error_type) for r in codepipeline.requests()]
    assert outcomes == [
        ("ListPipelines", "fault", "ThrottlingException"),
        ("ListPipelines", "fault", "ThrottlingException"),
        ("ListPipelines", "ok", None),
        ("ListActionTypes", "fault", "ServiceUnavailable"),
        ("ListActionTypes", "ok", None),
    ]


def test_retrying_clients_ride_through_faults(
    codepipeline: CodePipelineStandIn, cp_client: CodePipelineClient
) -> None:
    codepipeline.faults.set("ListPipelines", throttle_next=1, error_next=1)
    assert cp_client.list_pipelines()["pipelines"] == []
    assert [r.outcome for r in codepipeline.requests()] == ["fault", "fault", "ok"]


def test_rate_limit_and_probabilities(
    codepipeline: CodePipelineStandIn, one_shot: CodePipelineClient
) -> None:
    codepipeline.faults.set("ListPipelines", throttle_rate=3)
    results = []
    for _ in range(6):
        try:
            one_shot.list_pipelines()
            results.append("ok")
        except ClientError as error:
            results.append(error.response["Error"]["Code"])
    # Requests beyond 3 in one second are throttled (the loop takes far less than a second).
    assert results.count("ok") >= 3
    assert "ThrottlingException" in results
    codepipeline.faults.set("ListPipelines", throttle_probability=1.0)
    with pytest.raises(ClientError):
        one_shot.list_pipelines()
    codepipeline.faults.set("ListPipelines", error_probability=1.0, error_status=500)
    with pytest.raises(ClientError) as raised:
        one_shot.list_pipelines()
    assert raised.value.response["Error"]["Code"] == "InternalFailure"
    codepipeline.faults.set("ListPipelines", latency=0.05)
    one_shot.list_pipelines()
    assert codepipeline.requests()[-1].latency >= 0.05
    codepipeline.faults.clear()
    one_shot.list_pipelines()


def test_request_log_is_bounded_and_holds_no_secrets(
    codepipeline: CodePipelineStandIn,
    cp_client: CodePipelineClient,
    cp_scenario: ScenarioFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="cpworker")
    canary = "canary-secret-7f3a9"
    scenario = cp_scenario(secret_configuration={"Token": canary})
    scenario.start(cp_client)
    (job,) = scenario.wait_for_jobs(cp_client)
    cp_client.acknowledge_job(jobId=job["id"], nonce=job["nonce"])
    credentials = cp_client.get_job_details(jobId=job["id"])["jobDetails"]["data"][
        "artifactCredentials"
    ]
    assert job["data"]["actionConfiguration"]["configuration"]["Token"] == canary
    _, records = http(f"{codepipeline.url}/_sandbox/requests")
    dumped = json.dumps(records) + caplog.text
    for secret in (
        canary,
        credentials["secretAccessKey"],
        credentials["sessionToken"],
        credentials["accessKeyId"],
    ):
        assert secret not in dumped
    assert "GetJobDetails" in [r["operation"] for r in records]
    small = CodePipelineStandIn(codepipeline.s3_endpoint, config=StandInConfig(request_log_size=3))
    with small:
        client = boto3.client(
            "codepipeline",
            endpoint_url=small.url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )
        for _ in range(5):
            client.list_pipelines()
        assert len(small.requests()) == 3


def test_conformance_violations_are_detected(
    codepipeline: CodePipelineStandIn, cp_client: CodePipelineClient
) -> None:
    def break_it(answer: dict[str, Any]) -> None:
        answer["pipelines"] = [{"name": "has a space", "version": "one", "surprise": True}]

    codepipeline.tamper("ListPipelines", break_it)
    cp_client.list_pipelines()
    violations = codepipeline.violations()
    assert any("does not match the pattern" in v for v in violations)
    assert any("expected a number" in v for v in violations)
    assert any("unknown member 'surprise'" in v for v in violations)
    with pytest.raises(ConformanceError, match="non-conformant"):
        assert_conformant(codepipeline)
    codepipeline.clear_violations()
    assert_conformant(codepipeline)


def test_undeclared_error_codes_are_violations(
    codepipeline: CodePipelineStandIn, cp_client: CodePipelineClient
) -> None:
    def failing(_: dict[str, Any]) -> dict[str, Any]:
        raise ApiError("MadeUpException", "not in the model")

    def crashing(_: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("bug")

    server = codepipeline._server  # the handler table is internal; this test breaks it on purpose
    codepipeline.call(lambda: server._handlers.__setitem__("ListPipelines", failing))
    with pytest.raises(ClientError):
        cp_client.list_pipelines()
    assert any("MadeUpException" in v for v in codepipeline.violations())
    codepipeline.clear_violations()
    codepipeline.call(lambda: server._handlers.__setitem__("ListPipelines", crashing))
    one_shot = boto3.client(
        "codepipeline",
        endpoint_url=codepipeline.url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=client_config(max_attempts=1),
    )
    with pytest.raises(ClientError) as raised:
        one_shot.list_pipelines()
    assert raised.value.response["Error"]["Code"] == "InternalFailure"
    assert any("raised RuntimeError" in v for v in codepipeline.violations())
    codepipeline.clear_violations()
