"""examples/terraform: offline `init` + `validate`, then `apply` against the sandbox.

The root reads the action types from examples/codepipeline/*.json; applied to the local
CodePipeline it must create exactly what `aws codepipeline create-custom-action-type
--cli-input-json` would (compared with ListActionTypes), a plan right after must be empty, the
operator's role may poll for exactly those types and read the events queue, and its
`helm_values` output, layered over examples/helm/values-namespaced.yaml, must give a chart
whose operator reads that queue with that role.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.examples.conftest import ACTION_TYPES, EXAMPLES, HELM_VALUES, load_json, merge_values
from tests.integration.helm.chart import manifests, one, operator_container
from tests.integration.terraform import hcl
from tests.integration.terraform.conftest import provider_mirror, terraform, terraform_binary
from tests.integration.terraform.sandbox import client as _client
from tests.integration.terraform.sandbox import sandbox_up
from tests.integration.terraform.tf import Terraform, copy_tree

__all__ = ["provider_mirror", "terraform", "terraform_binary"]

ROOT = EXAMPLES / "terraform"
CLUSTER = "sandbox"
OIDC_PROVIDER = (
    "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/SANDBOX"
)
ROLE_NAME = f"cpworker-{CLUSTER}"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """examples/terraform with its neighbours, as in the repository (relative sources)."""
    copy_tree(tmp_path)
    shutil.copytree(EXAMPLES / "terraform", tmp_path / "examples" / "terraform")
    shutil.copytree(EXAMPLES / "codepipeline", tmp_path / "examples" / "codepipeline")
    return tmp_path / "examples" / "terraform"


@pytest.fixture
def sandbox_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with sandbox_up(tmp_path_factory.mktemp("sandbox")) as env:
        yield env


def _as_listed(definition: dict[str, Any]) -> dict[str, Any]:
    """A CreateCustomActionType input as ListActionTypes shows the created type."""
    return {
        "id": {
            "category": definition["category"],
            "owner": "Custom",
            "provider": definition["provider"],
            "version": definition["version"],
        },
        "settings": definition["settings"],
        "actionConfigurationProperties": [
            _property(p) for p in definition["configurationProperties"]
        ],
        "inputArtifactDetails": definition["inputArtifactDetails"],
        "outputArtifactDetails": definition["outputArtifactDetails"],
    }


def _property(listed: dict[str, Any]) -> dict[str, Any]:
    """A configuration property, `queryable` spelled out (the wire may leave out a false)."""
    return {"queryable": False, **listed}


def _statement_resources(statement: dict[str, Any]) -> list[str]:
    resource = statement["Resource"]
    return sorted([resource] if isinstance(resource, str) else resource)


def test_the_readme_documents_every_variable_and_output() -> None:
    readme = (ROOT / "README.md").read_text()
    names = set(hcl.variables(ROOT)) | {
        n for n, _ in hcl.named_blocks(hcl.load_dir(ROOT), "output")
    }
    assert len(names) > 8
    assert sorted(name for name in names if f"`{name}`" not in readme) == []


def test_the_root_validates_offline(terraform: Terraform, root: Path) -> None:
    terraform.run(["fmt", "-check", "-diff", "."], root)
    terraform.init(root)
    result = json.loads(terraform.run(["validate", "-json"], root).stdout)
    assert result["valid"], result
    assert result["warning_count"] == 0, result


def test_the_root_applies_to_the_sandbox_and_feeds_the_chart(
    terraform: Terraform, root: Path, sandbox_env: dict[str, str], chart: Any
) -> None:
    tf = terraform.with_env(sandbox_env)
    variables = [
        *("-var", f"region={sandbox_env['AWS_REGION']}"),
        *("-var", f"cluster_name={CLUSTER}"),
        *("-var", "identity=irsa"),
        *("-var", f"oidc_provider_arn={OIDC_PROVIDER}"),
        *("-var", 'tags={"managed-by": "terraform"}'),
    ]
    tf.init(root)
    tf.run(["apply", "-auto-approve", "-input=false", *variables], root)
    outputs = tf.outputs(root)

    # The same action types as the AWS CLI creates from the JSON files.
    codepipeline = _client("codepipeline", sandbox_env)
    listed = codepipeline.list_action_types(actionOwnerFilter="Custom")["actionTypes"]
    for action_type in listed:
        properties = action_type["actionConfigurationProperties"]
        action_type["actionConfigurationProperties"] = [_property(p) for p in properties]
    by_provider = {t["id"]["provider"]: t for t in listed}
    expected = {d["provider"]: _as_listed(d) for d in map(load_json, ACTION_TYPES)}
    assert by_provider == expected
    account = "123456789012"
    region = sandbox_env["AWS_REGION"]
    arns = []
    for definition in map(load_json, ACTION_TYPES):
        arn = (
            f"arn:aws:codepipeline:{region}:{account}:actiontype:Custom/"
            f"{definition['category']}/{definition['provider']}/{definition['version']}"
        )
        arns.append(arn)
        tags = codepipeline.list_tags_for_resource(resourceArn=arn)["tags"]
        want = {t["key"]: t["value"] for t in definition["tags"]} | {"managed-by": "terraform"}
        assert {t["key"]: t["value"] for t in tags} == want

    # A plan right after the apply changes nothing: the JSON -> module mapping round-trips.
    settled = tf.run(["plan", "-input=false", "-detailed-exitcode", *variables], root, check=False)
    assert settled.returncode == 0, settled.stdout + settled.stderr

    # The operator's role polls for exactly these types and reads the events queue.
    iam = _client("iam", sandbox_env)
    assert outputs["operator_role_arn"] == f"arn:aws:iam::{account}:role/{ROLE_NAME}"
    policy = iam.get_role_policy(RoleName=ROLE_NAME, PolicyName=ROLE_NAME)["PolicyDocument"]
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert _statement_resources(statements["PollForOwnedActionTypes"]) == sorted(arns)
    queue_url = outputs["event_queue_url"]
    queue_arn = _client("sqs", sandbox_env).get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    read = iam.get_role_policy(RoleName=ROLE_NAME, PolicyName=f"{ROLE_NAME}-read-event-queues")
    assert _statement_resources(read["PolicyDocument"]["Statement"][0]) == [queue_arn]

    # helm install -f examples/helm/values-namespaced.yaml -f <terraform output helm_values>
    values = merge_values(
        yaml.safe_load(HELM_VALUES.read_text()), yaml.safe_load(outputs["helm_values"])
    )
    chart.validate_schema(values)
    documents = manifests(chart, values)
    env = {e["name"]: e.get("value") for e in operator_container(documents)["env"]}
    assert env["CPWORKER_EVENTS_QUEUE_URL"] == queue_url
    assert env["CPWORKER_DEFAULT_REGION"] == region
    account_ = one(documents, "ServiceAccount")
    assert account_["metadata"]["name"] == "cpworker"
    assert account_["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": outputs["operator_role_arn"]
    }
    deployment = one(documents, "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "cpworker"
