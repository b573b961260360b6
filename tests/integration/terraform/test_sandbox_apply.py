"""`terraform apply` of the AWS-side modules against the local CodePipeline and moto.

One lifecycle, checked with boto3 at each step: create (action type, operator role, wake-up
event queue and rule), an event delivered through the rule, retag in place, a refused edit
of a published definition, destroy, and the proof that a destroyed version cannot come back.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.terraform.sandbox import client as _client
from tests.integration.terraform.sandbox import sandbox_up
from tests.integration.terraform.tf import Terraform

FIXTURE = Path(__file__).parent / "fixtures" / "sandbox-root" / "main.tf"
ACTION_TYPE_ADDRESS = (
    'module.action_types.aws_codepipeline_custom_action_type.this["Build/TfSandboxBuild/1"]'
)
PROVIDER = "TfSandboxBuild"


@pytest.fixture(scope="module")
def sandbox_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with sandbox_up(tmp_path_factory.mktemp("sandbox")) as env:
        yield env


@pytest.fixture
def root(tf_tree: Path, tmp_path: Path) -> Path:
    shutil.copytree(tf_tree, tmp_path / "terraform")
    shutil.copy(FIXTURE, tmp_path / "main.tf")
    return tmp_path


def _with_eventbridge(env: dict[str, str]) -> dict[str, str]:
    # moto serves every service on one port; the sandbox exports no EventBridge endpoint of
    # its own, so point EventBridge at the same server as SQS.
    return {**env, "AWS_ENDPOINT_URL_EVENTBRIDGE": env["AWS_ENDPOINT_URL_SQS"]}


def _our_action_types(codepipeline: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for page in codepipeline.get_paginator("list_action_types").paginate(
        actionOwnerFilter="Custom"
    ):
        found += [t for t in page["actionTypes"] if t["id"]["provider"] == PROVIDER]
    return found


def _action_event(state: str, provider: str) -> dict[str, str]:
    """An EventBridge entry shaped like CodePipeline's action execution state change."""
    detail = {
        "pipeline": "demo",
        "execution-id": f"{state}-{provider}",
        "stage": "Build",
        "action": "Build",
        "state": state,
        "type": {"owner": "Custom", "category": "Build", "provider": provider, "version": "1"},
    }
    return {
        "Source": "aws.codepipeline",
        "DetailType": "CodePipeline Action Execution State Change",
        "Detail": json.dumps(detail),
    }


def _vars(tags: dict[str, str], **extra: str) -> list[str]:
    args = ["-var", f"tags={json.dumps(tags)}"]
    for name, value in extra.items():
        args += ["-var", f"{name}={value}"]
    return args


def _planned_actions(terraform: Terraform, root: Path, args: list[str]) -> dict[str, list[str]]:
    terraform.run(["plan", "-input=false", "-out=change.tfplan", *args], root)
    plan = json.loads(terraform.run(["show", "-json", "change.tfplan"], root).stdout)
    return {c["address"]: c["change"]["actions"] for c in plan.get("resource_changes", [])}


def test_apply_retag_refuse_edit_and_destroy(
    terraform: Terraform, root: Path, sandbox_env: dict[str, str]
) -> None:
    env = _with_eventbridge(sandbox_env)
    tf = terraform.with_env(env)
    region = ["-var", f"region={env['AWS_REGION']}"]
    codepipeline = _client("codepipeline", env)
    iam = _client("iam", env)
    sqs = _client("sqs", env)
    events = _client("events", env)

    # --- create
    tf.init(root)
    tf.run(["apply", "-auto-approve", "-input=false", *region, *_vars({"team": "ci"})], root)
    outputs = tf.outputs(root)

    [created] = _our_action_types(codepipeline)
    assert created["id"] == {
        "category": "Build",
        "owner": "Custom",
        "provider": PROVIDER,
        "version": "1",
    }
    assert outputs["action_type_ids"]["gpu"] == created["id"]
    assert created["settings"]["executionUrlTemplate"] == (
        "https://ci.example.com/jobs/{ExternalExecutionId}"
    )
    properties = {p["name"]: p for p in created["actionConfigurationProperties"]}
    assert properties["Pool"]["queryable"] is True
    assert properties["Pool"]["required"] is True
    assert properties["Token"]["secret"] is True
    assert created["inputArtifactDetails"] == {"minimumCount": 1, "maximumCount": 2}
    assert created["outputArtifactDetails"] == {"minimumCount": 0, "maximumCount": 1}
    tags = codepipeline.list_tags_for_resource(resourceArn=outputs["action_type_arn"])["tags"]
    assert tags == [{"key": "team", "value": "ci"}]

    role = iam.get_role(RoleName=outputs["role_name"])["Role"]
    trust = role["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Action"] == "sts:AssumeRoleWithWebIdentity"
    policy = iam.get_role_policy(RoleName=outputs["role_name"], PolicyName=outputs["role_name"])
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    # The ARN the IAM module builds is the one the provider reports for the action type.
    poll_resource = statements["PollForOwnedActionTypes"]["Resource"]
    poll_resources = [poll_resource] if isinstance(poll_resource, str) else poll_resource
    assert poll_resources == [outputs["action_type_arn"]]
    assume = iam.get_role_policy(
        RoleName=outputs["role_name"], PolicyName=f"{outputs['role_name']}-assume-worker-roles"
    )
    [assume_statement] = assume["PolicyDocument"]["Statement"]
    assert assume_statement["Action"] == "sts:AssumeRole"
    assert assume_statement["Resource"] in (
        "arn:aws:iam::123456789012:role/ci-gpu",
        ["arn:aws:iam::123456789012:role/ci-gpu"],
    )

    read_queue = iam.get_role_policy(
        RoleName=outputs["role_name"], PolicyName=f"{outputs['role_name']}-read-event-queues"
    )
    by_sid = {s["Sid"]: s for s in read_queue["PolicyDocument"]["Statement"]}
    read_statement = by_sid["ReadWakeUpEvents"]
    assert read_statement["Resource"] in (
        outputs["event_queue_arn"],
        [outputs["event_queue_arn"]],
    )
    # Reading a started action's pipeline (its queryParam) is granted with the queue.
    assert by_sid["ReadPipelinesOfWakeUpEvents"]["Action"] == "codepipeline:GetPipeline"

    # --- STARTED and early-ended executions of our action type reach the queue; the
    # SUCCEEDED ones our own results cause, and other action types', do not
    events.put_events(
        Entries=[
            _action_event("SUCCEEDED", PROVIDER),
            _action_event("STARTED", "SomeoneElsesBuild"),
            _action_event("STARTED", PROVIDER),
            _action_event("FAILED", PROVIDER),
        ]
    )
    received = sqs.receive_message(
        QueueUrl=outputs["event_queue_url"], MaxNumberOfMessages=10, WaitTimeSeconds=1
    ).get("Messages", [])
    assert sorted(json.loads(m["Body"])["detail"]["execution-id"] for m in received) == [
        f"FAILED-{PROVIDER}",
        f"STARTED-{PROVIDER}",
    ]

    # --- a plan right after the apply is empty and raises no immutability warning: the
    # deployed definition, as the provider reads it back, equals the desired one
    settled = tf.run(
        ["plan", "-input=false", "-detailed-exitcode", *region, *_vars({"team": "ci"})],
        root,
        check=False,
    )
    assert settled.returncode == 0, settled.stdout + settled.stderr
    assert "definitions_are_immutable" not in settled.stdout + settled.stderr

    # --- retag: an in-place update, never a replacement (which would delete the version)
    new_tags = {"team": "platform", "stage": "prod"}
    actions = _planned_actions(tf, root, [*region, *_vars(new_tags)])
    assert actions[ACTION_TYPE_ADDRESS] == ["update"]
    tf.run(["apply", "-auto-approve", "-input=false", "change.tfplan"], root)
    tags = codepipeline.list_tags_for_resource(resourceArn=outputs["action_type_arn"])["tags"]
    assert {t["key"]: t["value"] for t in tags} == new_tags
    assert len(_our_action_types(codepipeline)) == 1

    # --- an edit of the published definition is refused: warned about, nothing planned
    edited = _vars(
        new_tags, execution_url_template="https://elsewhere.example.com/{ExternalExecutionId}"
    )
    plan = tf.run(
        ["plan", "-input=false", "-detailed-exitcode", *region, *edited], root, check=False
    )
    assert plan.returncode == 0, plan.stdout + plan.stderr  # 0: no changes
    assert "definitions_are_immutable" in plan.stdout + plan.stderr
    [unchanged] = _our_action_types(codepipeline)
    assert unchanged["settings"]["executionUrlTemplate"] == (
        "https://ci.example.com/jobs/{ExternalExecutionId}"
    )

    # --- destroy
    tf.run(["destroy", "-auto-approve", "-input=false", *region, *_vars(new_tags)], root)
    assert _our_action_types(codepipeline) == []
    with pytest.raises(ClientError) as missing:
        iam.get_role(RoleName=outputs["role_name"])
    assert missing.value.response["Error"]["Code"] == "NoSuchEntity"
    assert outputs["event_queue_url"] not in sqs.list_queues().get("QueueUrls", [])
    assert events.list_rules(NamePrefix="cpworker-sandbox-events")["Rules"] == []

    # --- the README's warning, proven: a destroyed version cannot be created again
    again = tf.run(
        [
            "apply",
            "-auto-approve",
            "-input=false",
            "-target=module.action_types",
            *region,
            *_vars(new_tags),
        ],
        root,
        check=False,
    )
    assert again.returncode != 0
    assert "cannot be re-created" in again.stdout + again.stderr
