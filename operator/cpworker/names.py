"""Names the operator writes into Kubernetes: API identity, labels, annotations, object names.

One place for every key so that the dispatcher, watcher, reporter and tending agree, and so
that a restarted operator can rebuild what is in flight from labelled Jobs alone.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from enum import StrEnum
from typing import Any, Final

# --- The CustomActionWorker API ------------------------------------------------------------
GROUP: Final = "cpworker.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "CustomActionWorker"
PLURAL: Final = "customactionworkers"
SINGULAR: Final = "customactionworker"
SHORT_NAME: Final = "caw"
CATEGORY: Final = "cpworker"
CRD_NAME: Final = f"{PLURAL}.{GROUP}"

# kopf: our own finalizer and annotation prefix, so that nothing collides with another
# kopf-based operator working on the same objects.
FINALIZER: Final = f"{GROUP}/finalizer"
KOPF_ANNOTATION_PREFIX: Final = f"kopf.{GROUP}"

# --- Labels on every Job and Secret the operator creates ------------------------------------
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE: Final = "cpworker"
LABEL_WORKER: Final = f"{GROUP}/worker"  # value: worker_label_value(worker name)
LABEL_JOB_ID: Final = f"{GROUP}/job-id"  # value: job_label_value(CodePipeline job id)

# Every operator-owned label/annotation starts with this; a user's template may not set them.
RESERVED_KEY_PREFIX: Final = f"{GROUP}/"

# --- Annotations on the Kubernetes Job (the durable record of a CodePipeline job) -----------
ANNOTATION_PHASE: Final = f"{GROUP}/phase"  # a Phase value
ANNOTATION_JOB_ID: Final = f"{GROUP}/job-id"  # the full CodePipeline job id (labels truncate)
ANNOTATION_NONCE: Final = f"{GROUP}/nonce"
ANNOTATION_REGION: Final = f"{GROUP}/region"
ANNOTATION_ROLE_ARN: Final = f"{GROUP}/role-arn"
ANNOTATION_ACCOUNT_ID: Final = f"{GROUP}/account-id"
ANNOTATION_WORKER: Final = f"{GROUP}/worker"  # the full worker name (the label may be hashed)
ANNOTATION_CREDENTIALS_ISSUED_AT: Final = f"{GROUP}/credentials-issued-at"  # RFC 3339
ANNOTATION_CONTINUATION_OF: Final = f"{GROUP}/continuation-of"  # previous CodePipeline job id
ANNOTATION_PIPELINE: Final = f"{GROUP}/pipeline"
ANNOTATION_STAGE: Final = f"{GROUP}/stage"
ANNOTATION_ACTION: Final = f"{GROUP}/action"
# The pipeline execution the job belongs to: an ended-action event is matched by it.
ANNOTATION_PIPELINE_EXECUTION_ID: Final = f"{GROUP}/pipeline-execution-id"
ANNOTATION_RESULT: Final = f"{GROUP}/result"  # what was reported: a Result value
# When the claimed Job was released (RFC 3339): a Job can wait suspended through a long claim
# or an operator outage, so "never started" is measured from here, not from its creation.
ANNOTATION_RELEASED_AT: Final = f"{GROUP}/released-at"
# When the job became available to us (RFC 3339, milliseconds): the moment PollForJobs
# returned it, or the earlier SQS event that announced it. Start of the dispatch latency.
ANNOTATION_AVAILABLE_AT: Final = f"{GROUP}/available-at"
# When the result was accepted by CodePipeline (RFC 3339, milliseconds), with phase reported.
ANNOTATION_REPORTED_AT: Final = f"{GROUP}/reported-at"
# Every nonce this cluster tried to claim the job with, oldest first (comma-separated): a
# replica records its nonce here *before* acknowledging (docs/architecture.md, claimer.py).
ANNOTATION_NONCE_CANDIDATES: Final = f"{GROUP}/nonce-candidates"
# The CodePipeline job id a continuation hand-over was attempted for (intent, written before
# the Put, so a crash in between is not mistaken for a cancellation).
ANNOTATION_HANDOVER_OF: Final = f"{GROUP}/handover-of"
# A continuation being claimed for this Job: "<job id> <nonce>", written with the nonce
# candidate before AcknowledgeJob, cleared when the Job moves to the new job id. A crash (or a
# failed write) in between leaves it for the supervisor, which finishes the adoption.
ANNOTATION_CONTINUATION_PENDING: Final = f"{GROUP}/continuation-pending"
# A pod of the Job that was ended from outside (evicted, preempted, rejected): JSON
# {"pod", "reason", "message"}, written when the operator sees it, because such a pod is
# deleted as soon as the Job controller counted it, before the Job's failure is reported.
ANNOTATION_POD_ENDED: Final = f"{GROUP}/pod-ended"
# The pod whose classic sidecars the operator stopped (by suspending the Job) so that the push
# sidecar uploads: its name. And the final state of a pod being deleted once its push
# container terminated (JSON: names and terminated states), since the pod goes right after.
ANNOTATION_SIDECARS_STOPPED: Final = f"{GROUP}/sidecars-stopped"
ANNOTATION_STOPPED_POD: Final = f"{GROUP}/stopped-pod"
# Who is sending the Job's result, and since when: "<reporter id> <epoch seconds>" (a lease).
ANNOTATION_REPORTER: Final = f"{GROUP}/reporter"

# --- Inside a job's pod: the containers and volumes the operator adds ------------------------
# A template may not name a container or volume with this prefix (jobtemplate.py).
POD_RESERVED_PREFIX: Final = "cpworker-"
JOB_VOLUME: Final = "cpworker-job"  # the job's Secret: credentials, job.json, secret config
ARTIFACTS_VOLUME: Final = "cpworker-artifacts"  # emptyDir: subPath in -> inputDir, out -> outputDir
ARTIFACTS_INPUT_SUBPATH: Final = "in"
ARTIFACTS_OUTPUT_SUBPATH: Final = "out"
# The in-pod artifact helper: push (a native sidecar) then pull, before the template's init
# containers (docs/architecture.md, "Artifacts in the pod").
PULL_CONTAINER: Final = "cpworker-pull"
PUSH_CONTAINER: Final = "cpworker-push"
# The one `cpworker.io/` key a user's pod template may set: the names of its classic sidecars
# (regular containers that never exit by themselves), comma-separated (docs/job-contract.md).
ANNOTATION_SIDECARS: Final = f"{GROUP}/sidecars"

# Continuation tokens the operator hands CodePipeline start with this (continuation.py).
CONTINUATION_TOKEN_PREFIX: Final = f"{GROUP}/v1"

# Kubernetes limits (apimachinery validation).
LABEL_VALUE_MAX: Final = 63

JOB_NAME_PREFIX: Final = "cpw-"
_HASHED_JOB_NAME_PREFIX: Final = "cpw-h-"
_LABEL_VALUE_RE: Final = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


class Phase(StrEnum):
    """Where a Kubernetes Job stands in the claim protocol (docs/architecture.md)."""

    CLAIMING = "claiming"  # created suspended, AcknowledgeJob not yet answered InProgress
    RUNNING = "running"  # acknowledged and released (suspend: false)
    REPORTED = "reported"  # PutJob*Result sent (or the job had already ended)
    CANCELLED = "cancelled"  # CodePipeline no longer wants it; the Job is being deleted


class Result(StrEnum):
    """What the reporter told CodePipeline (the `cpworker.io/result` annotation)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CONTINUED = "continued"  # success with a continuation token: the action goes on


def controller_reference(api_version: str, kind: str, name: str, uid: str) -> dict[str, Any]:
    """The ownerReference of every object the operator creates: its controller, GC-linked.

    The Job is owned by its worker and the Secret by its Job, so deleting a worker (after its
    finalizer) garbage-collects its Jobs, and deleting a Job its Secret and pods.
    """
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _short_hash(text: str, length: int) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def job_object_name(job_id: str) -> str:
    """The deterministic name of the Kubernetes Job (and its Secret) for a CodePipeline job.

    A canonical lower-case UUID job id (the only form the service model allows) gives `cpw-<uuid>`,
    readable next to the CodePipeline console. Anything else gives a stable hash form
    `cpw-h-<40 hex>` so that hostile job data can never produce an invalid or colliding name.
    Either way the result is a valid DNS label: `AlreadyExists` means "already dispatched".
    """
    try:
        parsed = uuid.UUID(job_id)
    except (ValueError, AttributeError, TypeError):
        parsed = None
    if parsed is not None and str(parsed) == job_id:  # only the canonical lower-case form
        return f"{JOB_NAME_PREFIX}{parsed}"
    return f"{_HASHED_JOB_NAME_PREFIX}{_short_hash(str(job_id), 40)}"


def is_valid_label_value(value: str) -> bool:
    """True when `value` is a legal Kubernetes label value."""
    return len(value) <= LABEL_VALUE_MAX and bool(_LABEL_VALUE_RE.match(value))


def label_value(text: str) -> str:
    """`text` itself when it is a legal label value, else a stable `h-<hash>` stand-in.

    Worker names are DNS subdomains (up to 253 chars) and job ids come from outside; label
    values are limited to 63 characters, so long or odd values are replaced by a hash. The
    full value is always kept in an annotation as well.
    """
    if is_valid_label_value(text):
        return text
    return f"h-{_short_hash(text, 40)}"


def worker_label_value(worker_name: str) -> str:
    """The `cpworker.io/worker` label value for a worker (see `label_value`)."""
    return label_value(worker_name)


def job_label_value(job_id: str) -> str:
    """The `cpworker.io/job-id` label value for a CodePipeline job id (see `label_value`)."""
    return label_value(job_id)


def worker_selector(worker_name: str) -> str:
    """Label selector for every Job/Secret the operator made for one worker (in its namespace)."""
    return f"{LABEL_MANAGED_BY}={MANAGED_BY_VALUE},{LABEL_WORKER}={worker_label_value(worker_name)}"


# Set by the Job controller on every pod of a Job it generates the selector for (1.27+);
# cpworker always lets it (jobtemplate refuses selector and manualSelector).
LABEL_CONTROLLER_UID: Final = "batch.kubernetes.io/controller-uid"


def job_pods_selector(job_uid: str) -> str:
    """Label selector for the pods of one Job (by its uid: not a namesake's)."""
    return f"{LABEL_MANAGED_BY}={MANAGED_BY_VALUE},{LABEL_CONTROLLER_UID}={job_uid}"


def managed_selector() -> str:
    """Label selector for every Job/Secret the operator made, for all workers."""
    return f"{LABEL_MANAGED_BY}={MANAGED_BY_VALUE},{LABEL_WORKER}"


def job_labels(worker_name: str, job_id: str) -> dict[str, str]:
    """The labels every Job, its pods and its Secret carry."""
    return {
        LABEL_MANAGED_BY: MANAGED_BY_VALUE,
        LABEL_WORKER: worker_label_value(worker_name),
        LABEL_JOB_ID: job_label_value(job_id),
    }


def is_reserved_key(key: str) -> bool:
    """True for a label/annotation key that only the operator may set."""
    return key.startswith((RESERVED_KEY_PREFIX, f"{KOPF_ANNOTATION_PREFIX}/"))
