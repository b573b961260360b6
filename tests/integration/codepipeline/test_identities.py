"""Identities the sandbox turns away as AWS would (expired/revoked keys, roles that cannot be
assumed), the per-job request log, the fault exemption of the test's own clients and the
whole-run fault opt-in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError

from cpworker.sandbox.codepipeline import CodePipelineStandIn
from cpworker.sandbox.codepipeline import pytest_plugin as plugin
from cpworker.sandbox.codepipeline.environment import REGION, client_config
from cpworker.sandbox.codepipeline.knobs import parse_faults

if TYPE_CHECKING:
    from mypy_boto3_codepipeline import CodePipelineClient

OPERATOR_KEY = "AKIAOPERATOR00000001"


def client(service: str, url: str, key: str = OPERATOR_KEY) -> Any:
    make: Any = boto3.client  # the service is a parameter: no typed overload applies
    return make(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key="not-checked",
        config=client_config(max_attempts=1),
    )


def error_code(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    return str(raised.value.response["Error"]["Code"])


def test_expired_and_revoked_keys_are_refused_by_codepipeline_until_restored(
    codepipeline: CodePipelineStandIn, cp_client: CodePipelineClient
) -> None:
    operator = client("codepipeline", codepipeline.url)
    operator.list_action_types()
    codepipeline.identities.expire(OPERATOR_KEY)
    assert error_code(operator.list_action_types) == "ExpiredTokenException"
    cp_client.list_action_types()  # other keys are not affected
    codepipeline.identities.revoke(OPERATOR_KEY)
    assert error_code(operator.list_action_types) == "UnrecognizedClientException"
    codepipeline.identities.restore(OPERATOR_KEY)
    operator.list_action_types()
    refused = [r.error_type for r in codepipeline.requests() if r.outcome == "error"]
    assert refused == ["ExpiredTokenException", "UnrecognizedClientException"]


@pytest.mark.codepipeline_standin(sts_front=True)
def test_the_sts_front_refuses_roles_and_expired_keys_and_forwards_the_rest(
    codepipeline: CodePipelineStandIn,
) -> None:
    sts = client("sts", codepipeline.sts_url)
    good = "arn:aws:iam::123456789012:role/builds"
    bad = "arn:aws:iam::123456789012:role/untrusted"
    codepipeline.identities.refuse_role(bad)
    assumed = sts.assume_role(RoleArn=good, RoleSessionName="test")["Credentials"]
    assert assumed["AccessKeyId"].startswith("ASIA")  # moto's answer, forwarded
    with pytest.raises(ClientError) as raised:
        sts.assume_role(RoleArn=bad, RoleSessionName="test")
    error = raised.value.response["Error"]
    assert error["Code"] == "AccessDenied"
    assert f"sts:AssumeRole on resource: {bad}" in error["Message"]
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    codepipeline.identities.expire(OPERATOR_KEY)
    assert error_code(sts.assume_role, RoleArn=good, RoleSessionName="test") == "ExpiredToken"
    codepipeline.identities.restore()
    codepipeline.identities.allow_role(bad)
    sts.assume_role(RoleArn=bad, RoleSessionName="test")


def test_the_request_log_names_the_job_of_each_job_call(
    codepipeline: CodePipelineStandIn, cp_client: CodePipelineClient, cp_scenario: Any
) -> None:
    scenario = cp_scenario()
    scenario.start(cp_client)
    [job] = scenario.wait_for_jobs(cp_client)
    cp_client.acknowledge_job(jobId=job["id"], nonce=job["nonce"])
    cp_client.put_job_success_result(jobId=job["id"])
    with pytest.raises(ClientError):
        cp_client.put_job_success_result(jobId=job["id"])
    calls = [(r.operation, r.outcome, r.job_id) for r in codepipeline.requests()]
    assert ("AcknowledgeJob", "ok", job["id"]) in calls
    assert [c for c in calls if c[0] == "PutJobSuccessResult"] == [
        ("PutJobSuccessResult", "ok", job["id"]),
        ("PutJobSuccessResult", "error", job["id"]),
    ]
    assert all(r.job_id is None for r in codepipeline.requests() if r.operation == "PollForJobs")


def test_exempt_clients_are_never_faulted(
    codepipeline: CodePipelineStandIn, cp_client: CodePipelineClient
) -> None:
    codepipeline.faults.set("*", error_probability=1.0, error_status=503)
    codepipeline.faults.exempt(plugin.HARNESS_AGENT)
    cp_client.list_action_types()  # the harness's own client says who it is
    other = client("codepipeline", codepipeline.url)
    with pytest.raises(ClientError):
        other.list_action_types()


def test_the_fixture_opt_in_reads_the_environment(
    codepipeline: CodePipelineStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(plugin.FAULTS_VARIABLE, "*:error_probability=1,error_status=503;Poll:x=1")
    with pytest.raises(ValueError, match="unknown fault setting"):
        plugin.apply_environment_faults(codepipeline)
    monkeypatch.setenv(
        plugin.FAULTS_VARIABLE,
        "*:throttle_probability=0.1,error_probability=0.1 PollForJobs:latency=0.01",
    )
    monkeypatch.setenv(plugin.FAULT_SEED_VARIABLE, "7")
    codepipeline.faults.clear()
    plugin.apply_environment_faults(codepipeline)
    plan = codepipeline.faults.as_dict()
    assert plan["*"]["throttle_probability"] == 0.1
    assert plan["PollForJobs"]["latency"] == 0.01


def test_fault_rules_parse_as_the_cli_takes_them() -> None:
    assert parse_faults("*:error_next=2,error_status=503; PollForJobs:latency=0.5") == [
        ("*", {"error_next": 2, "error_status": 503}),
        ("PollForJobs", {"latency": 0.5}),
    ]
    with pytest.raises(ValueError, match="needs a number"):
        parse_faults("*:latency=soon")
