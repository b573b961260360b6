"""Uploads are SSE-KMS: the job's key when it has one, else the AWS-managed key (no key id)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from cpworker.artifacts import cli
from tests.integration.artifacts.pod import Pod, canary_credentials, make_job, output_location

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

JOB_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
MIB = 1024 * 1024


@pytest.mark.parametrize("key_id", [JOB_KEY, None], ids=["job key", "aws-managed key"])
@pytest.mark.parametrize("size", [1000, 11 * MIB], ids=["single put", "multipart"])
def test_stored_objects_carry_sse_kms(
    pod: Pod, s3_client: S3Client, key_id: str | None, size: int
) -> None:
    data, _ = make_job(s3_client, outputs=["Out"], kms_key_id=key_id)
    pod.volume.publish_job(data)
    pod.volume.publish_credentials(canary_credentials())
    (pod.output_dir / "Out").mkdir(parents=True)
    (pod.output_dir / "Out/payload").write_bytes(os.urandom(size))  # incompressible
    assert cli.main(["push", "--log-format", "text"]) == 0, pod.report()
    bucket, key = output_location(data, "Out")
    head = s3_client.head_object(Bucket=bucket, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"
    # moto does not fill in the aws/s3 key ARN that S3 would report; what matters here is
    # that no key id was sent when the job has none.
    assert head.get("SSEKMSKeyId") == key_id
    multipart = head["ETag"].strip('"').endswith("-2")  # 8 MiB parts
    assert multipart == (size > 8 * MIB)
