"""The optional S3 guard: job credentials work until they expire, then S3 says ExpiredToken."""

from __future__ import annotations

import io
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from cpworker.sandbox.codepipeline import CodePipelineStandIn
from cpworker.sandbox.codepipeline.environment import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    client_config,
)
from cpworker.sandbox.codepipeline.scenario import create_scenario

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def s3_with(
    url: str, credentials: Mapping[str, object] | None = None, signature_version: str | None = None
) -> S3Client:
    keys: dict[str, Any] = {
        "aws_access_key_id": ACCESS_KEY_ID,
        "aws_secret_access_key": SECRET_ACCESS_KEY,
    }
    if credentials is not None:
        keys = {
            "aws_access_key_id": str(credentials["accessKeyId"]),
            "aws_secret_access_key": str(credentials["secretAccessKey"]),
            "aws_session_token": str(credentials["sessionToken"]),
        }
    config = client_config(max_attempts=1)
    if signature_version is not None:
        config = config.merge(Config(signature_version=signature_version))
    return boto3.client("s3", endpoint_url=url, region_name=REGION, config=config, **keys)


def test_expired_job_credentials_are_refused_and_fresh_ones_work(
    guarded: CodePipelineStandIn,
) -> None:
    assert guarded.s3_url != guarded.s3_endpoint
    cp = boto3.client(
        "codepipeline",
        endpoint_url=guarded.url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=client_config(),
    )
    scenario = create_scenario(cp, s3_with(guarded.s3_url))  # ordinary keys pass through
    scenario.start(cp)
    (job,) = scenario.wait_for_jobs(cp)
    cp.acknowledge_job(jobId=job["id"], nonce=job["nonce"])
    source = job["data"]["inputArtifacts"][0]["location"]["s3Location"]
    target = job["data"]["outputArtifacts"][0]["location"]["s3Location"]

    valid = s3_with(guarded.s3_url, job["data"]["artifactCredentials"])
    body = valid.get_object(Bucket=source["bucketName"], Key=source["objectKey"])["Body"].read()
    assert body.startswith(b"PK")  # a zip archive
    big = io.BytesIO(b"x" * (9 * 1024 * 1024))  # multipart and chunked uploads pass through too
    valid.upload_fileobj(big, target["bucketName"], target["objectKey"])
    assert (
        valid.head_object(Bucket=target["bucketName"], Key=target["objectKey"])["ContentLength"]
        == 9 * 1024 * 1024
    )

    guarded.config.credential_lifetime = 0  # the next credentials are born expired
    stale = cp.get_job_details(jobId=job["id"])["jobDetails"]["data"]["artifactCredentials"]
    with pytest.raises(ClientError) as raised:
        s3_with(guarded.s3_url, stale).get_object(
            Bucket=source["bucketName"], Key=source["objectKey"]
        )
    assert raised.value.response["Error"]["Code"] == "ExpiredToken"
    for signature_version in ("s3", "s3v4"):  # presigned URLs carry the key id in the query
        presigner = s3_with(guarded.s3_url, stale, signature_version)
        presigned = presigner.generate_presigned_url(
            "get_object", Params={"Bucket": source["bucketName"], "Key": source["objectKey"]}
        )
        assert ("X-Amz-Credential=" in presigned) == (signature_version == "s3v4")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(presigned, timeout=10)
        assert refused.value.code == 400
    assert guarded.expired_credentials_refused == 3

    guarded.config.credential_lifetime = 60  # refreshing through GetJobDetails fixes it
    fresh = cp.get_job_details(jobId=job["id"])["jobDetails"]["data"]["artifactCredentials"]
    assert s3_with(guarded.s3_url, fresh).get_object(
        Bucket=source["bucketName"], Key=source["objectKey"]
    )


def test_a_denial_refuses_the_jobs_writes_and_every_request_is_logged(
    guarded: CodePipelineStandIn,
) -> None:
    cp = boto3.client(
        "codepipeline",
        endpoint_url=guarded.url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=client_config(),
    )
    admin = s3_with(guarded.s3_url)
    scenario = create_scenario(cp, admin)
    guarded.deny_s3(scenario.artifact_bucket)  # PUT and POST for the job's credentials
    scenario.start(cp)
    (job,) = scenario.wait_for_jobs(cp)  # the source stage copied with the service's keys
    cp.acknowledge_job(jobId=job["id"], nonce=job["nonce"])
    source = job["data"]["inputArtifacts"][0]["location"]["s3Location"]
    target = job["data"]["outputArtifacts"][0]["location"]["s3Location"]
    worker = s3_with(guarded.s3_url, job["data"]["artifactCredentials"])

    assert worker.get_object(Bucket=source["bucketName"], Key=source["objectKey"])  # reads pass
    for upload in (
        lambda: worker.put_object(Bucket=target["bucketName"], Key=target["objectKey"], Body=b"x"),
        lambda: worker.create_multipart_upload(
            Bucket=target["bucketName"], Key=target["objectKey"]
        ),
    ):
        with pytest.raises(ClientError) as denied:
            upload()
        assert denied.value.response["Error"]["Code"] == "AccessDenied"
        assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    admin.put_object(Bucket=target["bucketName"], Key=target["objectKey"], Body=b"by the test")

    logged = [
        (r.method, r.key, r.status, r.job_credentials)
        for r in guarded.s3_requests()
        if r.bucket == target["bucketName"] and r.key in {source["objectKey"], target["objectKey"]}
    ]
    assert logged[-4:] == [
        ("GET", source["objectKey"], 200, True),
        ("PUT", target["objectKey"], 403, True),
        ("POST", target["objectKey"], 403, True),
        ("PUT", target["objectKey"], 200, False),
    ]
    times = [r.at for r in guarded.s3_requests()]
    assert times == sorted(times)
    assert guarded.expired_credentials_refused == 0


def test_denials_need_the_guard(codepipeline: CodePipelineStandIn) -> None:
    with pytest.raises(RuntimeError, match="S3 guard"):
        codepipeline.deny_s3("bucket")
    assert codepipeline.s3_requests() == []


def test_without_the_guard_s3_url_is_moto(
    codepipeline: CodePipelineStandIn, moto_server: str
) -> None:
    assert codepipeline.s3_url == moto_server
    assert codepipeline.expired_credentials_refused == 0
