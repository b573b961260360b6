"""`cpworker sandbox up` and `cpworker sandbox demo` as a user runs them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from cpworker.sandbox.demo import DEMO_SECRET
from tests.scrape import scrape

CPWORKER = Path(sys.executable).with_name("cpworker")


def parse_env(text: str) -> dict[str, str]:
    result = subprocess.run(
        ["bash", "-c", f"{text}\nenv -0"],
        capture_output=True,
        env={"PATH": "/usr/bin:/bin"},
        check=True,
    )
    pairs = (item.split("=", 1) for item in result.stdout.decode().split("\0") if "=" in item)
    return dict(pairs)


def start_up(*args: str) -> tuple[subprocess.Popen[str], list[str]]:
    """`cpworker sandbox up ARGS` in the background, and what it printed until "ready"."""
    process = subprocess.Popen(
        [str(CPWORKER), "sandbox", "up", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "ready" in line:
            break
    return process, lines


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_up_writes_env_serves_and_stops_cleanly(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    process = subprocess.Popen(
        [
            str(CPWORKER),
            "sandbox",
            "up",
            "--dir",
            str(tmp_path),
            "--job-timeout",
            "42",
            "--fault",
            "ListPipelines:throttle_next=1",
            "--events-queue",
            "cp-events",
            "--s3-guard",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "ready" in line:
                break
        assert any("ready" in line for line in lines), "".join(lines)
        env = parse_env((tmp_path / "env").read_text())
        for name in (
            "AWS_ENDPOINT_URL_CODEPIPELINE",
            "AWS_ENDPOINT_URL_S3",
            "AWS_ENDPOINT_URL_STS",
            "AWS_ENDPOINT_URL_IAM",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION",
            "CPWORKER_SANDBOX_EVENTS_QUEUE_URL",
            "KUBECONFIG",
        ):
            assert env.get(name), name
        # The local Kubernetes API answers through the kubeconfig, with the CRD installed.
        if shutil.which("kubectl"):
            crds = subprocess.run(
                [
                    "kubectl",
                    "--kubeconfig",
                    env["KUBECONFIG"],
                    "--cache-dir",
                    str(tmp_path / "kc"),
                    "get",
                    "crd",
                    "-o",
                    "name",
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert crds.returncode == 0, crds.stderr
            assert "customactionworkers.cpworker.io" in crds.stdout
        endpoint = env["AWS_ENDPOINT_URL_CODEPIPELINE"]
        assert endpoint.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{endpoint}/_sandbox/config", timeout=10) as response:
            assert json.loads(response.read())["job_timeout"] == 42
        with urllib.request.urlopen(f"{endpoint}/_sandbox/faults", timeout=10) as response:
            assert json.loads(response.read())["ListPipelines"]["throttle_next"] == 1
        assert env["CPWORKER_SANDBOX_EVENTS_QUEUE_URL"].endswith("/cp-events")
        # With the guard, S3 clients talk to it; STS/IAM still go to moto directly.
        assert env["AWS_ENDPOINT_URL_S3"] != env["AWS_ENDPOINT_URL_STS"]
        assert env["AWS_ENDPOINT_URL_S3"].startswith("http://127.0.0.1:")
        process.send_signal(stop_signal)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_up_rejects_bad_flags(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(CPWORKER), "sandbox", "up", "--dir", str(tmp_path), "--fault", "nonsense"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "OPERATION:name=value" in result.stderr


def test_demo_runs_a_pipeline_through_the_operator() -> None:
    """`make sandbox`: everything issue 16 asks the demo to show, in one non-interactive run."""
    result = subprocess.run(
        [str(CPWORKER), "sandbox", "demo", "--timeout", "150"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    lines = out.splitlines()
    assert "ready" in out
    # A worker in a new namespace, applied with kubectl, Ready and relying on events.
    assert "namespace/ci created" in out
    assert "Ready: Polling:" in out
    # Each job's progress, live: every stage, for every job.
    for stage in ("queued", "claimed", "dispatched", "running", "reported"):
        assert sum(1 for line in lines if line.rstrip().endswith(stage)) == 6, stage
    # Real artifacts: the source's file through Build into Test's output, a zip with SSE-KMS.
    assert "Build: Succeeded  summary='built app 1.4.2'" in out
    assert "Test: Succeeded  summary='42 tests passed'" in out
    assert "= zip ['report.txt']" in out
    assert "encrypted: aws:kms with arn:aws:kms:" in out
    # The idle worker woken by the action's event.
    assert "execution 2, started while the worker idles" in out
    assert "queued -> claimed: median" in out
    # One failing action, with its failure type and the container's reason.
    assert "Test: Failed  JobFailed:" in out
    assert "2 of 42 tests failed: app 1.4.3-broken is not releasable" in out
    # The closing summary.
    assert "jobs: 6 (1 failed, 5 succeeded)" in out
    assert "dispatch latency (polled -> Job released): median" in out
    assert "report latency (Job finished -> result accepted): mean" in out
    assert "CodePipeline calls the operator made: PollForJobs" in out
    if shutil.which("kubectl"):
        header = next(line for line in lines if line.startswith("NAME"))
        assert header.split()[:6] == ["NAME", "READY", "REASON", "IN-FLIGHT", "SUCCEEDED", "FAILED"]
        row = next(line for line in lines if line.startswith("demo-builds"))
        assert row.split()[1:6] == ["True", "Polling", "0", "5", "1"]
    assert out.strip().endswith("demo succeeded")
    # The secret configuration value travels only inside the job's Secret.
    assert DEMO_SECRET not in out + result.stderr


def test_demo_fails_when_the_pipeline_cannot_finish() -> None:
    # Every PutJobSuccessResult is answered with a server error: the demo must not claim success.
    result = subprocess.run(
        [
            str(CPWORKER),
            "sandbox",
            "demo",
            "--timeout",
            "20",
            "--fault",
            "PutJobSuccessResult:error_probability=1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "demo FAILED" in result.stdout


def test_up_with_the_operator_serves_its_metrics_and_passes_the_check(tmp_path: Path) -> None:
    process, lines = start_up("--dir", str(tmp_path), "--operator", "--events-queue", "cp-events")
    try:
        env = parse_env((tmp_path / "env").read_text())
        metrics_url = env["CPWORKER_SANDBOX_METRICS_URL"]
        assert metrics_url.startswith("http://127.0.0.1:")
        assert metrics_url.endswith("/metrics")
        assert f"operator metrics: {metrics_url}\n" in lines
        assert scrape(metrics_url).value("cpworker_build_info") == 1
        # The sandbox is a setup `cpworker check` finds nothing wrong with.
        check = subprocess.run(
            [str(CPWORKER), "check", "--namespace", "default"],
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CPWORKER_"))},
                **env,
                "CPWORKER_EVENTS_QUEUE_URL": env["CPWORKER_SANDBOX_EVENTS_QUEUE_URL"],
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_worker_in_a_new_namespace_is_served_by_sandbox_up(tmp_path: Path) -> None:
    """The first thing a platform team does: `kubectl create ns ci && kubectl apply -n ci`."""
    import boto3  # noqa: PLC0415 - only this test drives the sandbox's AWS side directly
    import yaml  # noqa: PLC0415

    from cpworker.sandbox.codepipeline.environment import client_config  # noqa: PLC0415
    from cpworker.sandbox.codepipeline.scenario import create_scenario  # noqa: PLC0415

    process, lines = start_up("--dir", str(tmp_path), "--operator")
    try:
        assert "operator: running in-process, serving every namespace\n" in lines
        assert any("kubectl create namespace ci" in line for line in lines)
        env = parse_env((tmp_path / "env").read_text())
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CPWORKER_"))}
        user_env = {**clean, **env}

        def kubectl(*args: str, stdin: str | None = None) -> str:
            return subprocess.run(
                ["kubectl", *args],
                input=stdin,
                env=user_env,
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout

        region, key, secret = (
            env["AWS_DEFAULT_REGION"],
            env["AWS_ACCESS_KEY_ID"],
            env["AWS_SECRET_ACCESS_KEY"],
        )
        cp = boto3.client(
            "codepipeline",
            endpoint_url=env["AWS_ENDPOINT_URL_CODEPIPELINE"],
            region_name=region,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            config=client_config(),
        )
        s3 = boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL_S3"],
            region_name=region,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            config=client_config(),
        )
        scenario = create_scenario(cp, s3)
        kubectl("create", "namespace", "ci")
        worker = {
            "apiVersion": "cpworker.io/v1alpha1",
            "kind": "CustomActionWorker",
            "metadata": {"name": "builds", "namespace": "ci"},
            "spec": {
                "actionTypeId": dict(scenario.action_type_id),
                "queryParam": dict(scenario.query_param),
                "polling": {"minIntervalSeconds": 1, "maxIntervalSeconds": 2},
                "jobTemplate": {
                    "spec": {
                        "template": {
                            "metadata": {"annotations": {"sandbox.cpworker.io/duration": "200ms"}},
                            "spec": {"containers": [{"name": "build", "image": "example/b:1"}]},
                        }
                    }
                },
            },
        }
        kubectl("apply", "-n", "ci", "-f", "-", stdin=yaml.safe_dump(worker))
        kubectl("wait", "-n", "ci", "caw/builds", "--for=condition=Ready", "--timeout=60s")
        execution_id = scenario.start(cp)
        assert scenario.wait(cp, execution_id, timeout=60) == "Succeeded"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
