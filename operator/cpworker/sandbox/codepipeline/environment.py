"""How clients reach the sandbox: credentials, client settings and environment variables."""

from __future__ import annotations

from botocore.config import Config

REGION = "us-east-1"
ACCESS_KEY_ID = "AKIASANDBOXEXAMPLE00"
SECRET_ACCESS_KEY = "sandbox-secret-not-used-by-moto"  # noqa: S105 - moto ignores credentials


def client_config(max_attempts: int = 3) -> Config:
    """Client settings for the sandbox; `max_attempts` counts the first try (1 = no retry)."""
    return Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=5,
        read_timeout=30,
    )


def aws_environment(codepipeline_url: str, moto_url: str, region: str = REGION) -> dict[str, str]:
    """Variables that point AWS SDKs and tools at the sandbox, isolated from ~/.aws."""
    return {
        "AWS_ENDPOINT_URL_CODEPIPELINE": codepipeline_url,
        "AWS_ENDPOINT_URL_S3": moto_url,
        "AWS_ENDPOINT_URL_STS": moto_url,
        "AWS_ENDPOINT_URL_IAM": moto_url,
        "AWS_ENDPOINT_URL_KMS": moto_url,
        "AWS_ENDPOINT_URL_SQS": moto_url,
        "AWS_ENDPOINT_URL_EVENTBRIDGE": moto_url,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_PAGER": "",
    }
