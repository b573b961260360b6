"""The artifact store side of the stand-in: a boto3 S3 client talking to the moto server."""

from __future__ import annotations

import dataclasses
import secrets
import string
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_KEY_ALPHABET = string.ascii_letters + string.digits


@dataclasses.dataclass(frozen=True)
class ArtifactRef:
    name: str
    bucket: str
    key: str
    revision: str | None = None

    def job_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "name": self.name,
            "location": {
                "type": "S3",
                "s3Location": {"bucketName": self.bucket, "objectKey": self.key},
            },
        }
        if self.revision is not None:
            wire["revision"] = self.revision
        return wire

    def detail_wire(self) -> dict[str, Any]:
        return {"name": self.name, "s3location": {"bucket": self.bucket, "key": self.key}}


SourceOutcome = tuple[ArtifactRef, dict[str, str]]


class SourceError(Exception):
    """The S3 source object could not be read or copied; the message is safe to show."""


def artifact_key(pipeline: str, artifact: str) -> str:
    """A key like CodePipeline's: `<pipeline[:20]>/<artifact[:10]>/<random>`, no extension."""
    suffix = "".join(secrets.choice(_KEY_ALPHABET) for _ in range(7))
    return f"{pipeline[:20]}/{artifact[:10]}/{suffix}"


class ArtifactStore:
    def __init__(self, endpoint: str, region: str) -> None:
        self._client: S3Client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            # moto accepts any credentials; these only keep boto3 from searching for some.
            aws_access_key_id="sandbox",
            aws_secret_access_key="sandbox",  # noqa: S106 - not a secret: moto ignores it
            config=Config(
                retries={"mode": "standard", "total_max_attempts": 2},
                s3={"addressing_style": "path"},
                connect_timeout=5,
                read_timeout=30,
            ),
        )

    def copy_source(
        self, *, bucket: str, key: str, target: ArtifactRef, kms_key_id: str | None
    ) -> tuple[ArtifactRef, dict[str, str]]:
        """Copy the source object into the artifact store; return the artifact and S3 variables."""
        extra: dict[str, Any] = {}
        if kms_key_id is not None:
            extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id}
        try:
            # One server-side copy: the artifact is byte-identical and the store does the work.
            copied = self._client.copy_object(
                Bucket=target.bucket,
                Key=target.key,
                CopySource={"Bucket": bucket, "Key": key},
                **extra,
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "Error")
            raise SourceError(
                f"Could not copy s3://{bucket}/{key} to the artifact store: {code}"
            ) from exc
        except BotoCoreError as exc:
            raise SourceError(f"Could not reach the artifact store: {type(exc).__name__}") from exc
        etag = str(copied.get("CopyObjectResult", {}).get("ETag", "")).strip('"')
        version_id = copied.get("CopySourceVersionId")
        revision = version_id or etag
        variables = {"BucketName": bucket, "ObjectKey": key, "ETag": etag}
        if version_id:
            variables["VersionId"] = version_id
        return dataclasses.replace(target, revision=revision or None), variables
