"""Continuation tokens that name the Kubernetes Job a long CodePipeline action goes on in. Pure.

A job handed over with a continuation token ends; CodePipeline then creates a new job carrying
the token, and the operator resumes tracking the same Kubernetes Job under the new job id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from cpworker import names

_CONTINUATION_PREFIX: Final = names.CONTINUATION_TOKEN_PREFIX


@dataclass(frozen=True)
class ContinuationRef:
    """The Kubernetes Job a cpworker continuation token names."""

    namespace: str | None
    job_name: str
    job_uid: str


def continuation_token(job_name: str, job_uid: str, namespace: str | None = None) -> str:
    """A continuation token naming the Kubernetes Job that goes on running.

    CodePipeline hands it back in the next job's `data.continuationToken`. It names the Job
    by namespace, name and uid; the runtime must still check that the Job exists, has that
    uid and carries this worker's labels, because job data comes from outside.
    """
    return f"{_CONTINUATION_PREFIX}/{namespace or ''}/{job_name}/{job_uid}"


_DNS_LABEL_RE: Final = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_UID_RE: Final = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def parse_continuation_token(token: str) -> ContinuationRef | None:
    """The Job a token made by `continuation_token` names; None for any other token."""
    prefix = _CONTINUATION_PREFIX + "/"
    if not token.startswith(prefix):
        return None
    parts = token[len(prefix) :].split("/")
    if len(parts) != 3:
        return None
    namespace, job_name, job_uid = parts
    if namespace and not _DNS_LABEL_RE.match(namespace):
        return None
    if not _DNS_LABEL_RE.match(job_name) or not _UID_RE.match(job_uid):
        return None
    return ContinuationRef(namespace=namespace or None, job_name=job_name, job_uid=job_uid)


def job_named_by(token: str, namespace: str) -> ContinuationRef | None:
    """The Job in `namespace` a token names, or None when the token is not ours or names a Job
    in another namespace (job data comes from outside: never follow it elsewhere)."""
    ref = parse_continuation_token(token)
    if ref is None or (ref.namespace and ref.namespace != namespace):
        return None
    return ref
