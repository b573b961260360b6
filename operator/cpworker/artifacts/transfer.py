"""S3 downloads and uploads with boto3's transfer manager, signed with the job's credentials.

- Streaming both ways: downloads go to a file in ranged parts, uploads are read from a file in
  parts (multipart above `part_bytes`); memory stays bounded by the part queue, not the object.
- Retries: botocore's standard mode retries throttling, 5xx answers and timeouts
  (`max_attempts`); s3transfer retries broken download streams. What outlives them is
  SystemUnavailable (cpworker.artifacts.s3errors).
- Expired credentials: a request S3 refuses with ExpiredToken (or a bare 400 to a HEAD, which
  has no body to say so) waits for a newer credentials file and is sent again, re-signed; the
  transfer carries on where it was (cpworker.artifacts.credentials).
- Only the classic (Python) transfer client: the CRT client signs with its own copy of the
  credentials and would never see the refreshed file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import boto3
import botocore.session
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config
from botocore.credentials import CredentialResolver

from cpworker.artifacts.credentials import FileCredentialProvider, FileCredentials
from cpworker.artifacts.progress import TransferProgress, log_event
from cpworker.artifacts.s3errors import failure_for, is_expired
from cpworker.artifacts.settings import HelperSettings
from cpworker.jobdata import S3Location

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

# How many times one request may be re-sent after expired credentials were replaced: the
# operator refreshes them long before they expire, so more than a few means something is wrong.
MAX_RENEWALS_PER_REQUEST: Final = 5
# Parts waiting to be written to disk during a download (x 256 KiB): bounds download memory.
_IO_QUEUE: Final = 32


def sse_kms_arguments(kms_key_id: str | None) -> dict[str, str]:
    """Upload arguments for SSE-KMS: the job's key when it has one, else the AWS-managed key.

    Without `SSEKMSKeyId`, S3 encrypts with the account's `aws/s3` key; naming that alias
    explicitly would fail for a cross-account artifact bucket.
    """
    arguments = {"ServerSideEncryption": "aws:kms"}
    if kms_key_id:
        arguments["SSEKMSKeyId"] = kms_key_id
    return arguments


def describe(location: S3Location) -> str:
    return f"s3://{location.bucket_name}/{location.object_key}"


class ArtifactStore:
    """The job's artifact bucket, as the job's credentials see it. Use as a context manager."""

    def __init__(self, settings: HelperSettings) -> None:
        self._settings = settings
        self.credentials = FileCredentials(
            settings.credentials_file,
            recheck_seconds=settings.credentials_recheck_seconds,
            wait_seconds=settings.credentials_wait_seconds,
        )
        session = botocore.session.Session()
        # The job's file is the only credential source: never the node's role or the env.
        session.register_component(
            "credential_provider", CredentialResolver([FileCredentialProvider(self.credentials)])
        )
        config = Config(
            retries={"mode": "standard", "total_max_attempts": settings.max_attempts},
            connect_timeout=10,
            read_timeout=120,
            max_pool_connections=settings.max_concurrency + 2,
            signature_version="s3v4",  # SSE-KMS objects can only be read with SigV4
        )
        self.client: S3Client = boto3.session.Session(botocore_session=session).client(
            "s3", region_name=settings.region, config=config
        )
        self.client.meta.events.register_first(
            "needs-retry.s3",
            self._retry_if_expired,  # type: ignore[arg-type] # stubs say handlers return None
        )
        self.renewals = 0
        self._manager = create_transfer_manager(
            self.client,
            TransferConfig(
                multipart_threshold=settings.part_bytes,
                multipart_chunksize=settings.part_bytes,
                max_concurrency=settings.max_concurrency,
                num_download_attempts=settings.max_attempts,
                max_io_queue=_IO_QUEUE,
                max_bandwidth=settings.max_bandwidth,
                preferred_transfer_client="classic",
            ),
        )

    def __enter__(self) -> ArtifactStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._manager.shutdown(cancel=exc is not None)

    def _retry_if_expired(
        self, response: Any, attempts: int, operation: Any, **kwargs: Any
    ) -> float | None:
        """botocore `needs-retry` hook: re-send a request refused for expired credentials."""
        del kwargs
        if response is None:
            return None  # a connection error: botocore's own retries decide
        http_response, parsed = response
        code = str((parsed.get("Error") or {}).get("Code") or "")
        bare_head_400 = operation.name == "HeadObject" and http_response.status_code == 400
        if not (is_expired(code) or bare_head_400) or attempts > MAX_RENEWALS_PER_REQUEST:
            return None
        log_event(
            "artifact credentials expired",
            operation=operation.name,
            code=code or http_response.status_code,
            waiting_seconds=self._settings.credentials_wait_seconds,
        )
        if not self.credentials.renew_after_expiry():
            return None
        self.renewals += 1
        log_event(
            "artifact credentials renewed",
            operation=operation.name,
            generation=self.credentials.generation,
        )
        return 0.0  # retry now: the retried request is signed with the new credentials

    def download(self, location: S3Location, target: Path, *, artifact: str) -> int:
        """Stream `location` into file `target`; return its size. ArtifactFailure on error."""
        progress = TransferProgress("downloading", artifact=artifact)
        try:
            future = self._manager.download(
                location.bucket_name, location.object_key, str(target), subscribers=[progress]
            )
            future.result()
        except Exception as error:
            raise failure_for(
                error,
                doing=f"download input artifact {artifact!r} from {describe(location)}",
                wait_seconds=self._settings.credentials_wait_seconds,
            ) from error
        size = int(future.meta.size or 0)
        log_event(
            "downloaded",
            artifact=artifact,
            bytes=size,
            seconds=progress.elapsed(),
            source=describe(location),
        )
        return size

    def upload(
        self, source: Path, location: S3Location, *, artifact: str, kms_key_id: str | None
    ) -> int:
        """Stream file `source` to `location` with SSE-KMS; return its size."""
        size = source.stat().st_size
        progress = TransferProgress("uploading", size, artifact=artifact)
        try:
            future = self._manager.upload(
                str(source),
                location.bucket_name,
                location.object_key,
                extra_args=sse_kms_arguments(kms_key_id),
                subscribers=[progress],
            )
            future.result()
        except Exception as error:
            raise failure_for(
                error,
                doing=f"upload output artifact {artifact!r} to {describe(location)}",
                wait_seconds=self._settings.credentials_wait_seconds,
            ) from error
        log_event(
            "uploaded",
            artifact=artifact,
            bytes=size,
            seconds=progress.elapsed(),
            target=describe(location),
            kms_key="job key" if kms_key_id else "aws/s3",
        )
        return size
