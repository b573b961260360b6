"""Where the job's Secret is built: credentials, job data and secret configuration. Pure.

The Secret (named like its Job, owned by it) is the only place a job's secrets live:

- `credentials`: the artifact credentials as an AWS shared-credentials file (`[default]`),
  rewritten in place when the operator refreshes them (GetJobDetails);
- `job.json`: the job data WITHOUT credentials and WITHOUT secret configuration values;
- `secret-config.json` and one `secret-config.<name>` file per secret configuration property.

`build_secret` is the one function that makes the manifest (owner reference included);
`jobrecord` is the one module that writes it. Secret values never go into the Job itself.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
from collections.abc import Collection, Mapping
from typing import Any, Final

from pydantic import SecretStr

from cpworker import names
from cpworker.jobdata import AwsSessionCredentials, Job, JobData, job_document

CREDENTIALS_KEY: Final = "credentials"
JOB_KEY: Final = "job.json"
SECRET_CONFIG_KEY: Final = "secret-config.json"  # noqa: S105 - a file name
SECRET_CONFIG_FILE_PREFIX: Final = "secret-config."  # noqa: S105 - a file name
_SECRET_KEY_RE: Final = re.compile(r"[^-._a-zA-Z0-9]")


def credentials_file(creds: AwsSessionCredentials | None) -> str:
    """The AWS shared-credentials file (`[default]` profile) for the artifact credentials."""
    if creds is None:
        return "# CodePipeline sent no artifact credentials for this job\n"
    return (
        "[default]\n"
        f"aws_access_key_id = {creds.access_key_id.get_secret_value()}\n"
        f"aws_secret_access_key = {creds.secret_access_key.get_secret_value()}\n"
        f"aws_session_token = {creds.session_token.get_secret_value()}\n"
    )


def disambiguate(sanitised: str, original: str, taken: set[str], *, upper: bool = False) -> str:
    """`sanitised`, or with a hash of the original name when two names sanitise alike."""
    if sanitised not in taken:
        return sanitised
    digest = hashlib.sha256(original.encode()).hexdigest()[:8]
    return f"{sanitised}_{digest.upper() if upper else digest}"


def secret_file_names(property_names: Collection[str]) -> dict[str, str]:
    """Secret key (file name) for each secret configuration property: `secret-config.<name>`."""
    result: dict[str, str] = {}
    # A property named `json` must not overwrite the whole-configuration file.
    taken: set[str] = {SECRET_CONFIG_KEY}
    for name in sorted(property_names):
        key = disambiguate(
            SECRET_CONFIG_FILE_PREFIX + _SECRET_KEY_RE.sub("_", name)[:200], name, taken
        )
        taken.add(key)
        result[name] = key
    return result


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _secret_configuration(
    data: JobData, secret_property_names: Collection[str]
) -> dict[str, SecretStr]:
    return {k: v for k, v in data.configuration().items() if k in secret_property_names}


def secret_data(
    job_id: str, account_id: str, data: JobData, secret_property_names: Collection[str]
) -> dict[str, str]:
    """The Secret's `data` (base64): credentials, job.json, secret configuration files.

    Also what a credential refresh writes (from GetJobDetails), so that the keys never change.
    """
    secret_names = frozenset(secret_property_names)
    secrets = _secret_configuration(data, secret_names)
    document = job_document(job_id, account_id, data, secret_names)
    result = {
        CREDENTIALS_KEY: _b64(credentials_file(data.artifact_credentials)),
        JOB_KEY: _b64(json.dumps(document, indent=2, sort_keys=True)),
        SECRET_CONFIG_KEY: _b64(
            json.dumps({k: v.get_secret_value() for k, v in sorted(secrets.items())}, indent=2)
        ),
    }
    for name, key in secret_file_names(secrets).items():
        result[key] = _b64(secrets[name].get_secret_value())
    return result


def build_secret(
    *,
    job_name: str,
    namespace: str,
    job_uid: str,
    worker_name: str,
    job: Job,
    secret_property_names: Collection[str],
) -> dict[str, Any]:
    """The Secret `job_name` holding the job's credentials and secret configuration.

    Owned by the Job (`job_uid`), so it is garbage-collected with it; not immutable, because
    a credential refresh rewrites `credentials`.
    """
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "immutable": False,  # a credential refresh rewrites it in place
        "metadata": {
            "name": job_name,
            "namespace": namespace,
            "labels": names.job_labels(worker_name, job.id),
            "annotations": {names.ANNOTATION_JOB_ID: job.id},
            "ownerReferences": [names.controller_reference("batch/v1", "Job", job_name, job_uid)],
        },
        "data": secret_data(job.id, job.account_id, job.data, secret_property_names),
    }


def credentials_patch(
    job_id: str,
    account_id: str,
    data: JobData,
    secret_property_names: Collection[str],
) -> dict[str, Any]:
    """Merge patch for the Secret after GetJobDetails returned fresh credentials."""
    return {"data": secret_data(job_id, account_id, data, secret_property_names)}


def secret_configuration_values(data: JobData, secret_property_names: Collection[str]) -> list[str]:
    """The job's secret configuration values, as `stored_secret_configuration` reads them back
    from its Secret (to redact them from reports)."""
    secrets = _secret_configuration(data, secret_property_names)
    return [value for v in secrets.values() if (value := v.get_secret_value())]


def masked_values(data: JobData, secret_property_names: Collection[str]) -> list[str]:
    """What the log filter must mask for this job: secret configuration values and the
    artifact secret key and session token (the access key id alone grants nothing)."""
    values = secret_configuration_values(data, secret_property_names)
    creds = data.artifact_credentials
    if creds is not None:
        values += [
            creds.secret_access_key.get_secret_value(),
            creds.session_token.get_secret_value(),
        ]
    return values


def stored_secret_configuration(secret: Mapping[str, Any]) -> list[str]:
    """The secret configuration values in a stored Secret (to redact them from reports)."""
    values: list[str] = []
    for key, encoded in (secret.get("data") or {}).items():
        if not key.startswith(SECRET_CONFIG_FILE_PREFIX) and key != SECRET_CONFIG_KEY:
            continue
        try:
            text = base64.b64decode(encoded).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            continue
        if key == SECRET_CONFIG_KEY:
            with contextlib.suppress(ValueError, AttributeError):
                values += [str(v) for v in json.loads(text).values()]
        else:
            values.append(text)
    return [v for v in values if v]
