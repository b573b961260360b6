"""`cpworker check` as an operator's admin runs it: against the CodePipeline stand-in, moto
(STS, IAM, SQS) and the Kubernetes stand-in with the chart's RBAC installed and enforced for
the operator's ServiceAccount token. It passes on a good setup, and on a broken one names
every problem with what to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import helm_python as helm
import pytest

from cpworker.sandbox.codepipeline.environment import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    client_config,
)
from cpworker.sandbox.kube.standin import KubeStandIn
from tests.e2e.conftest import NAMESPACE, Cluster, cluster, worker_manifest
from tests.integration.helm.chart import CHART_DIR, RELEASE, RELEASE_NAMESPACE

__all__ = ["cluster"]  # the fixture used below

SERVICE_ACCOUNT = f"{RELEASE}-cpworker"
ROLE_ARN = "arn:aws:iam::123456789012:role/cpw-builds"
EVENTBRIDGE_MAY_SEND = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": "*",
        }
    ],
}


def _aws(service: str, moto_server: str) -> Any:
    client: Any = boto3.client
    return client(
        service,
        endpoint_url=moto_server,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=client_config(),
    )


def _queue(moto_server: str, name: str, *, policy: dict[str, Any] | None) -> str:
    sqs = _aws("sqs", moto_server)
    url: str = sqs.create_queue(QueueName=name)["QueueUrl"]
    if policy is not None:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    return url


def _role(moto_server: str) -> None:
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
    _aws("iam", moto_server).create_role(
        RoleName=ROLE_ARN.rsplit("/", 1)[1], AssumeRolePolicyDocument=json.dumps(trust)
    )


@pytest.fixture
def operator_kubeconfig(kube: KubeStandIn, kubeconfig: Path) -> Path:
    """The chart installed in namespaced mode; a kubeconfig with its ServiceAccount's token."""
    with helm.Config(kubeconfig_path=kubeconfig, namespace=RELEASE_NAMESPACE) as config:
        config.install(
            CHART_DIR,
            RELEASE,
            {"watchNamespaces": [NAMESPACE], "crds": {"enabled": False}},
            namespace=RELEASE_NAMESPACE,
            create_namespace=True,
        )
    token = kube.service_account_token(RELEASE_NAMESPACE, SERVICE_ACCOUNT)
    return kube.write_kubeconfig(kubeconfig.with_name("operator"), token=token)


# (the problem as reported, the start of what to do) for test_a_broken_setup_...
BROKEN = [
    (
        "RBAC: the operator's Kubernetes identity may not delete batch/jobs in namespace default",
        "what to do: grant it: the chart's RBAC does",
    ),
    (
        (
            "worker default/missing-type: action type Build/Custom/NoSuchProvider/1 does not "
            "exist in CodePipeline in us-east-1"
        ),
        "what to do: create it (terraform/modules/custom-action-type",
    ),
    (
        "region eu-west-1: CodePipeline refused requests signed for eu-west-1",
        "what to do: the endpoint serves another region: set spec.region",
    ),
    (
        "events queue: arn:aws:sqs:us-east-1:123456789012:cpw-events-bad: no queue policy lets",
        "what to do: add a policy statement allowing events.amazonaws.com sqs:SendMessage",
    ),
]


def check(aws_env: dict[str, str], kubeconfig: Path, queue_url: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CPWORKER_", "AWS_"))}
    env |= {**aws_env, "KUBECONFIG": str(kubeconfig), "CPWORKER_EVENTS_QUEUE_URL": queue_url}
    result = subprocess.run(
        [sys.executable, "-m", "cpworker.cli", "check", "--namespace", NAMESPACE],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stderr == "", result.stderr
    return result.returncode, result.stdout


def test_a_good_setup_passes(
    aws_env: dict[str, str],
    moto_server: str,
    cp_scenario: Any,
    cluster: Cluster,
    operator_kubeconfig: Path,
) -> None:
    scenario = cp_scenario()
    provider = scenario.action_type_id["provider"]
    _role(moto_server)
    cluster.apply(worker_manifest(scenario, spec={"roleArn": ROLE_ARN}))
    queue = _queue(moto_server, "cpw-events-good", policy=EVENTBRIDGE_MAY_SEND)
    code, output = check(aws_env, operator_kubeconfig, queue)
    assert code == 0, output
    assert "FAIL" not in output
    assert "no problems found" in output
    for expected in (
        "ok    CRD customactionworkers.cpworker.io: serves v1alpha1 with this operator's schema",
        "ok    RBAC: the operator's Kubernetes identity may do all",
        "ok    AWS identity: arn:aws:",
        f"ok    role {ROLE_ARN}: assumed for default/builds",
        f"ok    worker default/builds: action type Build/Custom/{provider}/1 exists in us-east-1",
        "ok    events queue: arn:aws:sqs:us-east-1:",
    ):
        assert expected in output, output


def test_a_broken_setup_names_each_problem_and_what_to_do(
    *,
    aws_env: dict[str, str],
    moto_server: str,
    cp_scenario: Any,
    cluster: Cluster,
    kube_api: Any,
    operator_kubeconfig: Path,
) -> None:
    scenario = cp_scenario()
    provider = scenario.action_type_id["provider"]
    cluster.apply(worker_manifest(scenario))  # this one is fine
    missing = worker_manifest(scenario, "missing-type")
    missing["spec"]["actionTypeId"]["provider"] = "NoSuchProvider"
    cluster.apply(missing)
    cluster.apply(worker_manifest(scenario, "wrong-region", spec={"region": "eu-west-1"}))
    # The chart's Role in the served namespace, without "delete" on Jobs.
    roles = cluster.request(
        "GET", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NAMESPACE}/roles"
    )
    (role,) = roles["items"]
    for rule in role["rules"]:
        if rule["resources"] == ["jobs"]:
            rule["verbs"] = [verb for verb in rule["verbs"] if verb != "delete"]
    cluster.request(
        "PUT",
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NAMESPACE}/roles/{role['metadata']['name']}",
        role,
    )
    queue = _queue(moto_server, "cpw-events-bad", policy=None)

    code, output = check(aws_env, operator_kubeconfig, queue)

    assert code == 1, output
    problems = output.split("problem(s):", 1)[1]
    assert "4 problem(s)" in output, output
    for detail, fix in BROKEN:
        assert detail in problems, output
        assert fix in problems.split(detail, 1)[1].split("\n  ")[1], output
    assert "affects default/wrong-region" in problems
    assert f"ok    worker default/builds: action type Build/Custom/{provider}/1" in output
    assert SECRET_ACCESS_KEY not in output
