"""docs/gitops.md's YAML is what it claims: the argocd-cm snippet is the shipped health check,
the example Application's values are valid chart values, the example worker fits the CRD."""

from __future__ import annotations

import re
from typing import Any

import helm_python as helm
import jsonschema
import yaml

from tests.integration.helm.chart import REPO_ROOT, manifests, one
from tests.integration.helm.test_argocd_health import HEALTH_LUA, health

GITOPS_DOC = REPO_ROOT / "docs" / "gitops.md"
CRD_FILE = REPO_ROOT / "crds" / "cpworker.io_customactionworkers.yaml"


def _documents() -> dict[str, dict[str, Any]]:
    """The YAML blocks of the page, by kind."""
    text = GITOPS_DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    documents = [yaml.safe_load(block) for block in blocks]
    return {doc["kind"]: doc for doc in documents}


def test_argocd_cm_snippet_is_the_shipped_health_check() -> None:
    config_map = _documents()["ConfigMap"]
    script = config_map["data"]["resource.customizations.health.cpworker.io_CustomActionWorker"]
    assert script.strip() == HEALTH_LUA.read_text(encoding="utf-8").strip()


def test_example_application_values_are_valid(chart: helm.Chart) -> None:
    application = _documents()["Application"]
    source = application["spec"]["source"]
    assert source["path"] == "helm/cpworker"
    values = source["helm"]["valuesObject"]
    chart.validate_schema(values)
    documents = manifests(chart, values)
    args = one(documents, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=ci" in args
    assert (
        "eks.amazonaws.com/role-arn" in one(documents, "ServiceAccount")["metadata"]["annotations"]
    )


def test_example_worker_fits_the_crd_and_comes_after_the_operator() -> None:
    worker = _documents()["CustomActionWorker"]
    assert int(worker["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) > 0
    crd = yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))
    (version,) = [v for v in crd["spec"]["versions"] if v["storage"]]
    assert worker["apiVersion"] == f"{crd['spec']['group']}/{version['name']}"
    schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    jsonschema.validate(worker["spec"], schema)
    # A freshly applied worker, before the operator reports: Progressing in Argo CD.
    assert health(HEALTH_LUA.read_text(encoding="utf-8"), worker)["status"] == "Progressing"
