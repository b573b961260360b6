"""Which CodePipeline failure an S3 error means, with a message that says what to do. Pure.

- Access denied, invalid keys, a bad signature, and every KMS error -> PermissionError: the
  job's credentials (or the KMS key policy) do not allow what the action needs.
- Expired credentials that no refreshed file replaced in time -> SystemUnavailable: the operator
  keeps them fresh, so this means it is not running or cannot reach CodePipeline.
- Throttling, 5xx answers, timeouts, connection failures that outlived botocore's retries ->
  SystemUnavailable.
- A missing object or bucket -> JobFailed (see docs/job-contract.md: an artifact that is gone
  does not come back by retrying).
- Anything else S3 refuses -> JobFailed, quoting S3's code and message.
"""

from __future__ import annotations

from typing import Any, Final

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from s3transfer.exceptions import RetriesExceededError

from cpworker.artifacts.failures import ArtifactFailure

EXPIRED_CODES: Final = frozenset({"ExpiredToken", "ExpiredTokenException", "TokenRefreshRequired"})
PERMISSION_CODES: Final = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "AccountProblem",
        "InvalidSecurity",
        "403",  # a HEAD answer has no body: the status is all botocore has
    }
)
# botocore's code for an error answer without a body (HEAD) is its HTTP status.
BARE_HEAD_400: Final = "400"
MISSING_CODES: Final = frozenset({"NoSuchKey", "NoSuchBucket", "NotFound", "404"})
TRANSIENT_CODES: Final = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "TooManyRequestsException",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "OperationAborted",
    }
)
_UNREACHABLE: Final = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ConnectionClosedError,
)
_MESSAGE_MAX: Final = 500


def _error(exc: ClientError) -> tuple[str, str, int, int]:
    response: dict[str, Any] = dict(exc.response)
    error = response.get("Error") or {}
    metadata = response.get("ResponseMetadata") or {}
    code = str(error.get("Code") or "Unknown")
    message = " ".join(str(error.get("Message") or "").split())[:_MESSAGE_MAX]
    status = int(metadata.get("HTTPStatusCode") or 0)
    attempts = int(metadata.get("RetryAttempts") or 0) + 1
    return code, message, status, attempts


def is_kms_error(code: str) -> bool:
    """S3 names KMS failures `KMS.<Exception>` (KMS.NotFoundException, KMS.DisabledException)."""
    return code.startswith("KMS") or ".KMS" in code


def is_expired(code: str) -> bool:
    return code in EXPIRED_CODES


def _cause(exc: BaseException) -> BaseException:
    """boto3 wraps upload errors (S3UploadFailedError); the ClientError is the cause."""
    while not isinstance(exc, ClientError | BotoCoreError) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def failure_for(exc: BaseException, *, doing: str, wait_seconds: float) -> ArtifactFailure:
    """The failure to report when `doing` (e.g. "download input artifact X from s3://b/k") failed.

    `wait_seconds` is how long the helper waited for refreshed credentials, for the message.
    """
    exc = _cause(exc)
    if isinstance(exc, ClientError):
        return _client_failure(exc, doing, wait_seconds)
    if isinstance(exc, (*_UNREACHABLE, RetriesExceededError)):
        return ArtifactFailure(
            "SystemUnavailable",
            f"Could not {doing}: S3 could not be reached or stopped answering "
            f"({type(exc).__name__}) and retries did not help. Re-run the action; if it keeps "
            "failing, check the cluster's network path to S3 (proxy, VPC endpoint, DNS).",
        )
    if isinstance(exc, BotoCoreError):
        return ArtifactFailure(
            "SystemUnavailable", f"Could not {doing}: {type(exc).__name__}. Re-run the action."
        )
    return ArtifactFailure("JobFailed", f"Could not {doing}: {type(exc).__name__}: {exc}")


def _client_failure(exc: ClientError, doing: str, wait_seconds: float) -> ArtifactFailure:
    code, message, status, attempts = _error(exc)
    said = f"{code} ({message})" if message else code
    if is_kms_error(code):
        return ArtifactFailure(
            "PermissionError",
            f"Could not {doing}: KMS refused the artifact store's key: {said}. The key must "
            "exist, be enabled and symmetric, and its key policy must allow the pipeline's "
            "role kms:Decrypt and kms:GenerateDataKey.",
        )
    if code in PERMISSION_CODES:
        return ArtifactFailure(
            "PermissionError",
            f"Could not {doing}: S3 denied it: {said}. The job's artifact credentials come "
            "from the pipeline's service role: it needs s3:GetObject and s3:PutObject on the "
            "artifact bucket, and the bucket policy and KMS key policy must allow it.",
        )
    if is_expired(code) or code == BARE_HEAD_400:
        # A HEAD answer has no body: S3's 400 to a HEAD is how expired credentials look there.
        said = "ExpiredToken" if is_expired(code) else "400 Bad Request to a HEAD request"
        return ArtifactFailure(
            "SystemUnavailable",
            f"Could not {doing}: the job's artifact credentials expired ({said}) and no "
            f"refreshed credentials file appeared within {wait_seconds:.0f} s. The cpworker "
            "operator refreshes them while the job runs: check that it is running and can "
            "reach CodePipeline, then re-run the action.",
        )
    if code in MISSING_CODES:
        return ArtifactFailure(
            "JobFailed",
            f"Could not {doing}: S3 has no such object ({said}). The artifact was deleted "
            "(for example by a lifecycle rule on the artifact bucket) or never written; "
            "re-run the pipeline from the stage that produces it.",
        )
    if code in TRANSIENT_CODES or status >= 500 or (code.isdigit() and int(code) >= 500):
        return ArtifactFailure(
            "SystemUnavailable",
            f"Could not {doing}: S3 kept failing ({said}) after {attempts} attempts. "
            "Re-run the action.",
        )
    return ArtifactFailure("JobFailed", f"Could not {doing}: S3 refused it: {said}.")
