"""The release's values and worker manifests, evaluated by Terraform and checked for real.

The render submodule has no providers, so Terraform evaluates it here (a root module that
calls it, `terraform apply` with local state). Its outputs are then fed to the chart with the
real Helm engine and to the operator's own CustomActionWorker spec model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from cpworker.models import CustomActionWorkerSpec
from tests.integration.helm.chart import load_chart, manifests, one
from tests.integration.terraform import hcl
from tests.integration.terraform.tf import REPO_ROOT, Terraform

CHART_DIR = REPO_ROOT / "helm" / "cpworker"
ROLE_ARN = "arn:aws:iam::123456789012:role/cpworker-prod"

# A root module calling the render submodule the way the complete example does.
ROOT_MODULE = Path(__file__).parent / "fixtures" / "render-root" / "main.tf"


@pytest.fixture(scope="module")
def rendered(terraform: Terraform, tf_tree: Path) -> dict[str, Any]:
    root = tf_tree.parent
    (root / "main.tf").write_text(ROOT_MODULE.read_text())
    terraform.init(root)
    terraform.run(["apply", "-auto-approve", "-input=false"], root)
    return terraform.outputs(root)


@pytest.fixture(scope="module")
def chart() -> Any:
    with load_chart(CHART_DIR) as loaded:
        yield loaded


def test_every_value_set_by_terraform_exists_in_the_chart(rendered: dict[str, Any]) -> None:
    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    for path in hcl.key_paths(rendered["chart_values"]):
        node: Any = defaults
        value: Any = rendered["chart_values"]
        for key in path:
            if node == {}:
                break  # a free-form map in the chart (annotations...): any key is fine
            assert isinstance(node, dict), f"{'.'.join(path)}: the chart has no map here"
            assert key in node, f"{'.'.join(path)} not in values.yaml"
            node, value = node[key], value[key]
        # The same kind of value as the chart's default (its schema is strict about types).
        assert isinstance(value, type(node)), f"{'.'.join(path)}: {value!r} vs default {node!r}"


def test_chart_renders_with_the_values_and_binds_the_role(
    rendered: dict[str, Any], chart: helm.Chart
) -> None:
    documents = manifests(chart, rendered["chart_values"])

    service_account = one(documents, "ServiceAccount")
    assert service_account["metadata"]["name"] == "cpw-operator"
    assert service_account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == ROLE_ARN
    deployment = one(documents, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "cpw-operator"
    assert deployment["spec"]["replicas"] == 2
    env = {e["name"]: e.get("value") for e in pod["containers"][0].get("env", [])}
    assert env.get("CPWORKER_POLL_CEILING_SECONDS") == "30"
    assert pod["containers"][0]["image"].endswith(":0.1.0")
    # The job-events queue and the shard's selector reach the operator's settings.
    assert env.get("CPWORKER_EVENTS_QUEUE_URL") == (
        "https://sqs.eu-west-1.amazonaws.com/123456789012/cpworker-job-events"
    )
    assert "CPWORKER_EVENTS_QUEUE_REGION" not in env  # empty: the region in the URL
    assert env.get("CPWORKER_WORKER_SELECTOR") == "shard in (a,b)"
    assert "--peering=cpworker-prod" in pod["containers"][0]["args"]


def test_chart_rejects_what_the_schema_forbids(chart: helm.Chart) -> None:
    # The check above is only meaningful if the chart validates values at all.
    with pytest.raises(Exception, match=r"(?i)schema|additional|not allowed|invalid"):
        manifests(chart, {"serviceAcount": {"name": "typo"}})


def test_worker_manifest_is_a_valid_custom_action_worker(rendered: dict[str, Any]) -> None:
    manifest = rendered["worker_manifests"]["gpu-builds"]
    assert manifest["apiVersion"] == "cpworker.io/v1alpha1"
    assert manifest["kind"] == "CustomActionWorker"
    assert manifest["metadata"] == {
        "name": "gpu-builds",
        "namespace": "ci",
        "labels": {"app.kubernetes.io/managed-by": "terraform"},
    }
    spec = CustomActionWorkerSpec.model_validate(manifest["spec"])
    assert spec.action_type_id.provider == "AcmeGpuBuild"
    assert spec.query_param == {"Pool": "gpu-a100"}
    assert spec.max_in_flight == 20
    containers = spec.job_template.spec["template"]["spec"]["containers"]
    assert json.dumps(containers[0]["command"]) == '["./ci/build.sh"]'
