"""S3 errors -> the job contract's failure types, with messages that say what to do."""

from __future__ import annotations

from typing import Any

import pytest
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from s3transfer.exceptions import RetriesExceededError

from cpworker.artifacts.s3errors import failure_for


def client_error(code: str, status: int, message: str = "", retries: int = 0) -> ClientError:
    """A ClientError as botocore raises it for an S3 error answer."""
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": retries},
    }
    return ClientError(response, "GetObject")


CASES = {
    "access denied": (
        client_error("AccessDenied", 403, "Access Denied"),
        "PermissionError",
        "S3 denied it",
    ),
    "forbidden HEAD": (client_error("403", 403), "PermissionError", "S3 denied it"),
    "invalid key": (
        client_error("InvalidAccessKeyId", 403, "no such key id"),
        "PermissionError",
        "S3 denied it",
    ),
    "kms key gone": (
        client_error("KMS.NotFoundException", 400, "Invalid keyId"),
        "PermissionError",
        "KMS refused",
    ),
    "kms disabled": (client_error("KMS.DisabledException", 400), "PermissionError", "kms:Decrypt"),
    "expired": (
        client_error("ExpiredToken", 400, "The provided token has expired."),
        "SystemUnavailable",
        "expired",
    ),
    "expired HEAD": (
        client_error("400", 400),
        "SystemUnavailable",
        "no refreshed credentials file appeared within 180 s",
    ),
    "no such key": (
        client_error("NoSuchKey", 404, "The specified key does not exist."),
        "JobFailed",
        "lifecycle rule",
    ),
    "missing HEAD": (client_error("404", 404), "JobFailed", "S3 has no such object"),
    "no such bucket": (client_error("NoSuchBucket", 404), "JobFailed", "S3 has no such object"),
    "slow down": (
        client_error("SlowDown", 503, retries=7),
        "SystemUnavailable",
        "after 8 attempts",
    ),
    "internal error": (
        client_error("InternalError", 500, retries=7),
        "SystemUnavailable",
        "kept failing",
    ),
    "other refusal": (
        client_error("InvalidRequest", 400, "bad thing"),
        "JobFailed",
        "S3 refused it: InvalidRequest (bad thing)",
    ),
    "unreachable": (
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        "SystemUnavailable",
        "could not be reached",
    ),
    "stalled": (
        ReadTimeoutError(endpoint_url="http://s3"),
        "SystemUnavailable",
        "ReadTimeoutError",
    ),
    "stream retries": (
        RetriesExceededError(OSError("reset")),
        "SystemUnavailable",
        "retries did not help",
    ),
}


@pytest.mark.parametrize(("error", "kind", "fragment"), CASES.values(), ids=CASES.keys())
def test_each_error_maps_to_its_failure(error: Exception, kind: str, fragment: str) -> None:
    failure = failure_for(
        error, doing="download input artifact 'Src' from s3://b/k", wait_seconds=180
    )
    assert failure.failure_type == kind
    assert fragment in failure.message
    assert failure.message.startswith("Could not download input artifact 'Src' from s3://b/k")


def test_boto3_upload_errors_are_unwrapped() -> None:
    try:
        try:
            raise client_error("AccessDenied", 403, "Access Denied")
        except ClientError as cause:
            raise S3UploadFailedError("Failed to upload x: An error occurred") from cause
    except S3UploadFailedError as wrapped:
        failure = failure_for(wrapped, doing="upload", wait_seconds=1)
    assert failure.failure_type == "PermissionError"
