"""Terraform's AWS provider creates, reads, re-tags and destroys a custom action type here.

Engineer E's module tests cover the Terraform module; this one proves the stand-in speaks what
the provider itself calls (CreateCustomActionType, paged ListActionTypes, ListTagsForResource,
TagResource/UntagResource, DeleteCustomActionType).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from cpworker.sandbox.codepipeline import CodePipelineStandIn

if TYPE_CHECKING:
    from mypy_boto3_codepipeline import CodePipelineClient

KNOWN_MIRRORS = (
    "/opt/tf-plugins",
    "~/.terraform.d/plugins",
    "~/.local/share/terraform/plugins",
    "/usr/local/share/terraform/plugins",
    "/usr/share/terraform/plugins",
)

CONFIGURATION = """
terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}

provider "aws" {
  region                      = "us-east-1"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
}

variable "tags" {
  type = map(string)
}

resource "aws_codepipeline_custom_action_type" "build" {
  category      = "Build"
  provider_name = "TerraformBuild"
  version       = "1"

  settings {
    execution_url_template = "https://ci.example.com/runs/{ExternalExecutionId}"
  }

  configuration_property {
    name        = "Pool"
    key         = true
    required    = true
    secret      = false
    queryable   = true
    type        = "String"
    description = "worker pool"
  }

  configuration_property {
    name     = "Token"
    key      = false
    required = false
    secret   = true
    type     = "String"
  }

  input_artifact_details {
    minimum_count = 0
    maximum_count = 1
  }

  output_artifact_details {
    minimum_count = 0
    maximum_count = 1
  }

  tags = var.tags
}

output "arn" {
  value = aws_codepipeline_custom_action_type.build.arn
}
"""


def find_mirror() -> Path | None:
    """The provider mirror: $CPWORKER_TF_MIRROR, else the first known path holding hashicorp/aws."""
    override = os.environ.get("CPWORKER_TF_MIRROR")
    candidates = [override] if override else list(KNOWN_MIRRORS)
    for candidate in candidates:
        path = Path(candidate).expanduser()
        if (path / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
            return path
    return None


@pytest.fixture
def terraform(aws_env: dict[str, str], tmp_path: Path) -> tuple[str, dict[str, str], Path]:
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip("terraform is not on the PATH")
    mirror = find_mirror()
    if mirror is None:
        pytest.skip("no Terraform provider mirror with hashicorp/aws (set CPWORKER_TF_MIRROR)")
    cli_config = tmp_path / "terraformrc"
    cli_config.write_text(
        f'provider_installation {{\n  filesystem_mirror {{\n    path = "{mirror}"\n  }}\n}}\n'
    )
    work = tmp_path / "config"
    work.mkdir()
    (work / "main.tf").write_text(CONFIGURATION)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "TF_CLI_CONFIG_FILE": str(cli_config),
        "CHECKPOINT_DISABLE": "1",
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        **aws_env,
    }
    return binary, env, work


def run(
    terraform: tuple[str, dict[str, str], Path], *args: str
) -> subprocess.CompletedProcess[str]:
    binary, env, work = terraform
    return subprocess.run(
        [binary, *args, "-no-color"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def apply(terraform: tuple[str, dict[str, str], Path], tags: dict[str, str]) -> None:
    result = run(terraform, "apply", "-auto-approve", "-var", f"tags={json.dumps(tags)}")
    assert result.returncode == 0, result.stdout + result.stderr


def plan_exit_code(terraform: tuple[str, dict[str, str], Path], tags: dict[str, str]) -> int:
    result = run(terraform, "plan", "-detailed-exitcode", "-var", f"tags={json.dumps(tags)}")
    assert result.returncode in {0, 2}, result.stdout + result.stderr
    return result.returncode


def custom_types(client: CodePipelineClient) -> list[Any]:
    pages = client.get_paginator("list_action_types").paginate(actionOwnerFilter="Custom")
    return [action_type for page in pages for action_type in page["actionTypes"]]


def test_terraform_manages_a_custom_action_type(
    terraform: tuple[str, dict[str, str], Path],
    codepipeline: CodePipelineStandIn,
    cp_client: CodePipelineClient,
) -> None:
    codepipeline.config.list_page_size = 1  # make the provider page through ListActionTypes
    cp_client.create_custom_action_type(
        category="Build",
        provider="SomeoneElses",
        version="1",
        inputArtifactDetails={"minimumCount": 0, "maximumCount": 0},
        outputArtifactDetails={"minimumCount": 0, "maximumCount": 0},
    )
    init = run(terraform, "init")
    assert init.returncode == 0, init.stdout + init.stderr

    apply(terraform, {"team": "ci", "owner": "alice"})
    arn = "arn:aws:codepipeline:us-east-1:123456789012:actiontype:Custom/Build/TerraformBuild/1"
    tags = {t["key"]: t["value"] for t in cp_client.list_tags_for_resource(resourceArn=arn)["tags"]}
    assert tags == {"team": "ci", "owner": "alice"}
    (created,) = [t for t in custom_types(cp_client) if t["id"]["provider"] == "TerraformBuild"]
    assert [p["name"] for p in created["actionConfigurationProperties"]] == ["Pool", "Token"]

    assert plan_exit_code(terraform, {"team": "ci", "owner": "alice"}) == 0  # read back: no changes
    assert plan_exit_code(terraform, {"team": "ci"}) == 2  # and a change is seen as one

    apply(terraform, {"team": "platform", "env": "dev"})  # one changed, one added, one removed
    tags = {t["key"]: t["value"] for t in cp_client.list_tags_for_resource(resourceArn=arn)["tags"]}
    assert tags == {"team": "platform", "env": "dev"}
    assert plan_exit_code(terraform, {"team": "platform", "env": "dev"}) == 0

    destroy = run(
        terraform, "destroy", "-auto-approve", "-var", 'tags={"team":"platform","env":"dev"}'
    )
    assert destroy.returncode == 0, destroy.stdout + destroy.stderr
    remaining = [
        t["id"]["provider"]
        for t in cp_client.list_action_types(actionOwnerFilter="Custom")["actionTypes"]
    ]
    assert remaining == ["SomeoneElses"]
    calls = {r.operation for r in codepipeline.requests()}
    assert {
        "CreateCustomActionType",
        "ListActionTypes",
        "ListTagsForResource",
        "TagResource",
        "UntagResource",
        "DeleteCustomActionType",
    } <= calls
