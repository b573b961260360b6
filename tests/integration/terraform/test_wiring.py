"""Static checks of the modules and the example that need providers absent here.

The helm and kubernetes providers are not installed on these machines, so the release
module and the complete example cannot be `terraform init`ed. They are parsed with
python-hcl2 instead: every module call passes only variables the called module declares
and every variable it requires, and the chart values the release sets exist in the chart.
"""

from __future__ import annotations

import pytest
import yaml

from tests.integration.terraform import hcl
from tests.integration.terraform.tf import REPO_ROOT, TERRAFORM_DIR

CHART_DIR = REPO_ROOT / "helm" / "cpworker"
RELEASE_MODULE = TERRAFORM_DIR / "modules" / "operator-release"
RENDER_MODULE = RELEASE_MODULE / "modules" / "render"

CALLERS = sorted(
    path.parent.relative_to(TERRAFORM_DIR).as_posix()
    for path in TERRAFORM_DIR.rglob("*.tf")
    if ".terraform" not in path.parts and hcl.module_calls(path.parent)
)


def test_there_are_module_calls_to_check() -> None:
    assert {"examples/complete", "modules/operator-release"} <= set(CALLERS)


@pytest.mark.parametrize("caller", sorted(set(CALLERS)))
def test_module_calls_match_called_variables(caller: str) -> None:
    caller_dir = TERRAFORM_DIR / caller
    for name, call in hcl.module_calls(caller_dir).items():
        target = (caller_dir / hcl.unquote(call["source"])).resolve()
        assert (target / "variables.tf").is_file(), f"module {name}: no module at {target}"
        declared = set(hcl.variables(target))
        passed = hcl.call_arguments(call)
        assert passed - declared == set(), f"module {name} passes undeclared inputs"
        assert hcl.required_variables(target) - passed == set(), (
            f"module {name} misses required inputs"
        )


def test_release_forwards_every_render_input() -> None:
    render_call = hcl.module_calls(RELEASE_MODULE)["render"]
    assert hcl.call_arguments(render_call) == set(hcl.variables(RENDER_MODULE))
    # ... under the same names in the release module's own interface.
    assert set(hcl.variables(RENDER_MODULE)) <= set(hcl.variables(RELEASE_MODULE))


def test_release_installs_this_repositorys_chart_by_default() -> None:
    release = hcl.resources(RELEASE_MODULE, "helm_release")["this"]
    default_chart = hcl.unquote(release["chart"]).split(" : ")[-1].strip(' "}')
    chart_path = (RELEASE_MODULE / default_chart.replace("${path.module}", ".")).resolve()
    assert chart_path == CHART_DIR.resolve()
    assert (chart_path / "Chart.yaml").is_file()


def test_every_value_the_release_sets_exists_in_the_chart() -> None:
    chart_values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    set_values = hcl.local_values(RENDER_MODULE)["chart_values"]
    paths = list(hcl.key_paths(set_values))
    assert len(paths) >= 10
    for path in paths:
        node = chart_values
        for key in path:
            assert isinstance(node, dict), f"{'.'.join(path)}: the chart has no map here"
            assert key in node, (
                f"the release sets {'.'.join(path)}, which helm/cpworker/values.yaml lacks"
            )
            node = node[key]


def test_release_module_declares_the_helm_and_kubernetes_providers() -> None:
    terraform_block = hcl.load_dir(RELEASE_MODULE)["terraform"][0]
    providers = terraform_block["required_providers"][0]
    assert {"helm", "kubernetes"} <= set(providers)


def test_example_readme_lists_every_required_input() -> None:
    example = TERRAFORM_DIR / "examples" / "complete"
    readme = (example / "README.md").read_text()
    for name in hcl.required_variables(example):
        assert f"`{name}`" in readme, f"examples/complete/README.md does not explain {name}"


MODULES_WITH_README = sorted(
    path.parent.relative_to(TERRAFORM_DIR).as_posix()
    for path in TERRAFORM_DIR.rglob("variables.tf")
    if ".terraform" not in path.parts
)


@pytest.mark.parametrize("module", MODULES_WITH_README)
def test_readme_documents_every_input_and_output(module: str) -> None:
    module_dir = TERRAFORM_DIR / module
    readme = (module_dir / "README.md").read_text()
    names = set(hcl.variables(module_dir))
    if module.startswith("modules/"):
        names |= {name for name, _ in hcl.named_blocks(hcl.load_dir(module_dir), "output")}
    undocumented = sorted(name for name in names if f"`{name}`" not in readme)
    assert undocumented == [], f"{module}/README.md does not mention {undocumented}"
