"""Acceptance: artifacts flow through the pod, for real, and success waits for the upload.

The real operator and both stand-ins; the job pods run in local-exec mode, so the artifact
containers are the venv's `cpworker artifacts pull|push` moving real bytes through S3 (moto,
behind the CodePipeline stand-in's S3 guard, which logs every S3 request and can deny the job's
credentials). A pipeline S3 source -> Build -> Test (both actions on one worker) passes a file
from the source through Build's output into Test, and Test's output ends up in S3 as a zip,
SSE-KMS with the pipeline's key. A few verdicts of the push sidecar that no real failure
produces cheaply (SIGKILL at the end of the grace period) run scripted.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from cpworker import names
from cpworker.sandbox.codepipeline import CodePipelineStandIn
from cpworker.sandbox.codepipeline.environment import REGION
from tests.e2e.conftest import NAMESPACE, Cluster, Stack, wait_for, worker_manifest

KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
SOURCE = {"README.md": "hello from the source\n", "src/main.c": "int main(void) { return 0; }\n"}
LOCAL = {"sandbox.cpworker.io/exec": "local"}

# One script for both actions (one worker serves the action type): Build reads the source and
# writes BuildOutput (a file and an executable); Test checks them and writes TestOutput.
STEP = r"""
set -eu
out="$CPWORKER_OUTPUT_DIR/${CPWORKER_ACTION_NAME}Output"
case "$CPWORKER_ACTION_NAME" in
Build)
  src="$CPWORKER_INPUT_DIR/SourceArtifact"
  mkdir -p "$out/bin"
  { echo "built from:"; cat "$src/README.md"; cat "$src/src/main.c"; } > "$out/app.txt"
  printf '#!/bin/sh\necho running\n' > "$out/bin/run.sh"
  chmod 755 "$out/bin/run.sh"
  echo '{"summary": "built app.txt", "outputVariables": {"BUILT": "yes"}}' > "$CPWORKER_RESULT_FILE"
  ;;
Test)
  built="$CPWORKER_INPUT_DIR/BuildOutput"
  grep -q "hello from the source" "$built/app.txt"
  test -x "$built/bin/run.sh"
  { echo "tested:"; "$built/bin/run.sh"; cat "$built/app.txt"; } > "$out/report.txt"
  echo "tested the build" > "$CPWORKER_RESULT_FILE"
  ;;
esac
"""
# The user's own init container sees the inputs (pull ran before it) and may write outputs.
PREPARE = (
    'set -eu; ls "$CPWORKER_INPUT_DIR" > '
    '"$CPWORKER_OUTPUT_DIR/${CPWORKER_ACTION_NAME}Output/inputs.txt"'
)
# The user's own native sidecar (say, a log shipper) flushes into the output when stopped: the
# kubelet stops it before cpworker-push (sidecars stop in reverse order), so it is uploaded.
SHIPPER = (
    'trap \'echo flushed > "$CPWORKER_OUTPUT_DIR/${CPWORKER_ACTION_NAME}Output/shipper.txt"; '
    "exit 0' TERM; while :; do sleep 0.05; done"
)


@pytest.fixture
def codepipeline(guarded: CodePipelineStandIn) -> CodePipelineStandIn:
    """The CodePipeline stand-in with its S3 guard in front of moto (the job pods' S3): every
    fixture built on `codepipeline` (the stack, the clients, the operator's env) uses it."""
    return guarded


def shell(name: str, script: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": "example.com/builder:1",
        "command": ["/bin/sh", "-c", script],
        **extra,
    }


def local_worker(scenario: Any) -> dict[str, Any]:
    manifest = worker_manifest(scenario, annotations=LOCAL, container=shell("build", STEP))
    pod_spec = manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    pod_spec["initContainers"] = [
        shell("prepare", PREPARE),
        shell("shipper", SHIPPER, restartPolicy="Always"),
    ]
    return manifest


def start(stack: Stack, **options: Any) -> Any:
    """Build -> Test on one local-exec worker; the artifact containers reach S3 through the
    guard (the operator's CPWORKER_ARTIFACTS_S3_ENDPOINT_URL)."""
    scenario = stack.cp_scenario(actions=("Build", "Test"), source_files=SOURCE, **options)
    stack.start_operator(artifacts_s3_endpoint_url=stack.codepipeline.s3_url)
    stack.cluster.apply(local_worker(scenario))
    return scenario


def actions(cp_client: Any, scenario: Any, execution_id: str) -> dict[str, dict[str, Any]]:
    details = cp_client.list_action_executions(
        pipelineName=scenario.pipeline_name, filter={"pipelineExecutionId": execution_id}
    )["actionExecutionDetails"]
    return {d["actionName"]: d for d in details}


def output_object(action: dict[str, Any]) -> tuple[str, str]:
    (artifact,) = action["output"]["outputArtifacts"]
    return artifact["s3location"]["bucket"], artifact["s3location"]["key"]


def unzip(s3_client: Any, bucket: str, key: str) -> dict[str, bytes]:
    body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def zip_modes(s3_client: Any, bucket: str, key: str) -> dict[str, int]:
    body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        return {info.filename: info.external_attr >> 16 for info in archive.infolist()}


def test_artifacts_flow_from_the_source_through_build_into_test(
    stack: Stack,
    cp_client: Any,
    s3_client: Any,
    cluster: Cluster,
    codepipeline: CodePipelineStandIn,
) -> None:
    scenario = start(stack, kms_key_id=KMS_KEY)
    execution_id = scenario.start(cp_client)
    status = scenario.wait(cp_client, execution_id, timeout=120)
    done = actions(cp_client, scenario, execution_id)
    assert status == "Succeeded", {name: a.get("output") for name, a in done.items()}

    assert done["Build"]["output"]["executionResult"]["externalExecutionSummary"] == (
        "built app.txt"
    )
    assert done["Build"]["output"]["outputVariables"] == {"BUILT": "yes"}

    # Build's output: what its containers wrote, the user's init container and sidecar included.
    build = unzip(s3_client, *output_object(done["Build"]))
    assert build["app.txt"].startswith(b"built from:\nhello from the source\n")
    assert build["inputs.txt"] == b"SourceArtifact\n"
    assert build["shipper.txt"] == b"flushed\n"
    assert zip_modes(s3_client, *output_object(done["Build"]))["bin/run.sh"] & 0o777 == 0o755

    # Test's output, the pipeline's last artifact: a zip, SSE-KMS with the pipeline's key.
    bucket, key = output_object(done["Test"])
    tested = unzip(s3_client, bucket, key)
    assert tested["report.txt"].startswith(b"tested:\nrunning\nbuilt from:\nhello from the source")
    assert tested["inputs.txt"] == b"BuildOutput\n"
    head = s3_client.head_object(Bucket=bucket, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == KMS_KEY

    # No success was reported before its upload had finished: each output's last write
    # (PutObject, or CompleteMultipartUpload) was answered before the PutJobSuccessResult
    # that followed it was received.
    successes = [
        r.at - r.latency
        for r in codepipeline.requests()
        if r.operation == "PutJobSuccessResult" and r.status == 200
    ]
    assert len(successes) == 2
    for action, success_received in zip(("Build", "Test"), successes, strict=True):
        bucket, key = output_object(done[action])
        uploads = [
            r.at
            for r in codepipeline.s3_requests()
            if r.method in {"PUT", "POST"} and (r.bucket, r.key, r.status) == (bucket, key, 200)
        ]
        assert uploads, f"{action}'s output was never uploaded through the guard"
        assert max(uploads) < success_received, action

    # The pod was the one the operator promised: helpers around the user's containers.
    pods = {p["metadata"]["labels"][names.LABEL_JOB_ID]: p for p in cluster.pods()}
    for pod in pods.values():
        init = [c["name"] for c in pod["spec"]["initContainers"]]
        assert init == [names.PUSH_CONTAINER, names.PULL_CONTAINER, "prepare", "shipper"]
        statuses = {s["name"]: s["state"] for s in pod["status"]["initContainerStatuses"]}
        assert statuses[names.PUSH_CONTAINER]["terminated"]["exitCode"] == 0
        assert pod["status"]["phase"] == "Succeeded"


def test_a_push_that_s3_refuses_fails_the_action_with_permission_error(
    stack: Stack, cp_client: Any, cluster: Cluster, codepipeline: CodePipelineStandIn
) -> None:
    scenario = start(stack)
    # An explicit Deny for the pipeline's credentials: no object may be written (the source
    # stage copies with the service's own credentials, so only the job's push is refused).
    codepipeline.deny_s3(scenario.artifact_bucket)
    execution_id = scenario.start(cp_client)
    assert scenario.wait(cp_client, execution_id, timeout=120) == "Failed"

    build = actions(cp_client, scenario, execution_id)["Build"]
    error = build["output"]["executionResult"]["errorDetails"]
    assert error["code"] == "PermissionError", error
    assert "container cpworker-push" in error["message"]
    assert "BuildOutput" in error["message"]
    assert "AccessDenied" in error["message"] or "Access Denied" in error["message"]
    assert not any(r.operation == "PutJobSuccessResult" for r in codepipeline.requests())
    refused = [r for r in codepipeline.s3_requests() if r.status == 403]
    assert refused
    assert all(r.job_credentials for r in refused)
    # The build itself ran and succeeded: only the upload failed.
    (pod,) = cluster.pods()
    build_state = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert build_state["exitCode"] == 0


def test_a_hostile_source_fails_in_the_pull_and_the_build_never_runs(
    cp_scenario: Any,
    cp_client: Any,
    cluster: Cluster,
    operator_thread: Any,
    codepipeline: CodePipelineStandIn,
) -> None:
    scenario = cp_scenario(source_files={"../../escape.txt": "out of the artifact\n"})
    operator_thread(artifacts_s3_endpoint_url=codepipeline.s3_url)
    cluster.apply(worker_manifest(scenario, annotations=LOCAL, container=shell("build", STEP)))
    execution_id = scenario.start(cp_client)
    assert scenario.wait(cp_client, execution_id, timeout=120) == "Failed"

    error = actions(cp_client, scenario, execution_id)["Build"]["output"]["executionResult"]
    details = error["errorDetails"]
    assert details["code"] == "JobFailed", details
    assert "container cpworker-pull" in details["message"]
    assert "escape.txt" in details["message"]
    (pod,) = cluster.pods()
    (build,) = pod["status"]["containerStatuses"]
    assert "terminated" not in build["state"]  # it never started


CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "job-contract.md"
MAKEFILE = "dist:\n\tmkdir -p dist\n\techo built from $$(cat README.md) > dist/app.txt\n"


def documented_worker() -> dict[str, Any]:
    text = CONTRACT.read_text(encoding="utf-8").split("### A complete example worker", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", text, re.DOTALL)
    assert block is not None
    return dict(yaml.safe_load(block.group(1)))


def test_the_documented_example_worker_runs(stack: Stack, s3_client: Any) -> None:
    """docs/job-contract.md's example, as written, but for this scenario's action type, in
    this namespace, with its container run as a local process (the host's make)."""
    cp_client, cluster = stack.cp_client, stack.cluster
    scenario = stack.cp_scenario(source_files={"Makefile": MAKEFILE, "README.md": "the docs"})
    worker = documented_worker()
    worker["metadata"] = {"name": "builds", "namespace": NAMESPACE}
    worker["spec"] |= {
        "actionTypeId": dict(scenario.action_type_id),
        "queryParam": dict(scenario.query_param),
        "region": REGION,
        "polling": {"minIntervalSeconds": 1, "maxIntervalSeconds": 1},
    }
    worker["spec"]["jobTemplate"]["spec"]["template"]["metadata"] = {"annotations": LOCAL}
    stack.start_operator(artifacts_s3_endpoint_url=stack.codepipeline.s3_url)
    cluster.apply(worker)
    execution_id = scenario.start(cp_client)
    status = scenario.wait(cp_client, execution_id, timeout=120)
    build = actions(cp_client, scenario, execution_id)["Build"]
    assert status == "Succeeded", build.get("output")
    assert build["output"]["outputVariables"] == {"VERSION": "1.2.3"}
    assert unzip(s3_client, *output_object(build)) == {"app.txt": b"built from the docs\n"}
    (job,) = cluster.jobs()
    helper = job["spec"]["template"]["spec"]["initContainers"][1]
    assert helper["securityContext"]["runAsUser"] == 1000


# ---- scripted: verdicts of the push sidecar ---------------------------------------------


def scripted_run(
    cp_scenario: Any, cp_client: Any, cluster: Cluster, operator_thread: Any, **kwargs: Any
) -> tuple[str, dict[str, str]]:
    annotations = {"sandbox.cpworker.io/duration": "100ms", **kwargs.pop("annotations")}
    pod_changes = kwargs.pop("pod", {})
    scenario = cp_scenario()
    operator_thread(**kwargs)
    manifest = worker_manifest(scenario, annotations=annotations)
    manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"].update(pod_changes)
    cluster.apply(manifest)
    execution_id = scenario.start(cp_client)
    status = scenario.wait(cp_client, execution_id, timeout=60)
    result = actions(cp_client, scenario, execution_id)["Build"]["output"]["executionResult"]
    return status, dict(result.get("errorDetails") or {})


def test_a_push_killed_at_the_end_of_the_grace_period_says_so(
    cp_scenario: Any, cp_client: Any, cluster: Cluster, operator_thread: Any
) -> None:
    status, error = scripted_run(
        cp_scenario,
        cp_client,
        cluster,
        operator_thread,
        # The upload would take 30 s; the pod's grace period is 1 s (the template's, which
        # the operator keeps because its own least grace is set lower still).
        annotations={f"sandbox.cpworker.io/stop-duration.{names.PUSH_CONTAINER}": "30s"},
        pod={"terminationGracePeriodSeconds": 1},
        artifacts_push_grace_seconds=1,
    )
    assert status == "Failed"
    assert error["code"] == "JobFailed"
    assert "exit code 137" in error["message"]
    assert "did not finish within terminationGracePeriodSeconds (1 s)" in error["message"]
    (job,) = cluster.jobs()
    assert job["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 1


def test_a_failed_user_container_is_not_blamed_on_the_push(
    cp_scenario: Any, cp_client: Any, cluster: Cluster, operator_thread: Any
) -> None:
    push_report = {"failure": {"type": "PermissionError", "message": "upload refused"}}
    status, error = scripted_run(
        cp_scenario,
        cp_client,
        cluster,
        operator_thread,
        annotations={
            "sandbox.cpworker.io/exit-code": "2",
            "sandbox.cpworker.io/termination-message": "make: *** [all] Error 2",
            # The push (uploading outputs nobody will use) fails too, after the build.
            f"sandbox.cpworker.io/sigterm-exit-code.{names.PUSH_CONTAINER}": "1",
            f"sandbox.cpworker.io/termination-message.{names.PUSH_CONTAINER}": json.dumps(
                push_report
            ),
        },
    )
    assert status == "Failed"
    assert error["code"] == "JobFailed"
    assert "container build" in error["message"]
    assert "make: *** [all] Error 2" in error["message"]
    assert "upload refused" not in error["message"]


def test_without_artifacts_the_pod_is_as_the_template_says(
    cp_scenario: Any, cp_client: Any, cluster: Cluster, operator_thread: Any
) -> None:
    scenario = cp_scenario()
    operator_thread()
    manifest = worker_manifest(
        scenario,
        annotations={"sandbox.cpworker.io/duration": "100ms"},
        spec={"artifacts": {"enabled": False}},
    )
    cluster.apply(manifest)
    execution_id = scenario.start(cp_client)
    assert scenario.wait(cp_client, execution_id, timeout=60) == "Succeeded"
    (job,) = cluster.jobs()
    pod_spec = job["spec"]["template"]["spec"]
    assert "initContainers" not in pod_spec
    assert [v["name"] for v in pod_spec["volumes"]] == [names.JOB_VOLUME]
    env = {e["name"] for e in pod_spec["containers"][0]["env"]}
    assert "CPWORKER_INPUT_DIR" not in env
    wait_for(lambda: (cluster.worker() or {}).get("status", {}).get("succeeded") == 1)
    assert job["metadata"]["namespace"] == NAMESPACE
