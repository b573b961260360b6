"""One permission table (`cpworker.permissions`): the chart grants exactly it in every install
mode, and docs/operator-runtime.md lists it. `cpworker check` asks for each of its rows."""

from __future__ import annotations

import re

import helm_python as helm
import pytest

from cpworker.permissions import PERMISSIONS, required_access
from tests.integration.helm.chart import RELEASE_NAMESPACE, REPO_ROOT, VALUES_MATRIX, manifests
from tests.integration.helm.rbac import ApiCall, grants_cover, grants_for, unused_permissions

SERVICE_ACCOUNT = "cpw-cpworker"
DOC = REPO_ROOT / "docs" / "operator-runtime.md"
# values -> (namespaces served, peering)
MODES = {
    "defaults": ((), False),
    "namespaced": (("ci", "build"), False),
    "ha": ((), True),
    "ha-namespaced": (("ci",), True),
}


def _calls(namespaces: tuple[str, ...], *, peering: bool) -> list[ApiCall]:
    calls = []
    for access in required_access(namespaces, peering=peering):
        plural, _, subresource = access.resource.partition("/")
        calls.append(ApiCall(access.verb, access.group, plural, subresource, access.namespace))
    return calls


@pytest.mark.parametrize("mode", MODES)
def test_the_chart_grants_exactly_the_table(chart: helm.Chart, mode: str) -> None:
    namespaces, peering = MODES[mode]
    grants = grants_for(manifests(chart, VALUES_MATRIX[mode]), SERVICE_ACCOUNT, RELEASE_NAMESPACE)
    calls = _calls(namespaces, peering=peering)
    assert grants_cover(grants, calls) == []
    rules = [rule for grant in grants for rule in grant.rules]
    assert unused_permissions(rules, calls) == []


def test_the_docs_list_the_table() -> None:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Permissions the operator uses", 1)[1].split("\n## ", 1)[0]
    rows = set()
    for line in section.splitlines():
        match = re.match(r"^\| (?:`([\w.]+)`|core) (\S+).*? \| ([a-z, ]+) \|", line)
        if match:
            verbs = tuple(v.strip() for v in match.group(3).split(","))
            rows.add((match.group(1) or "", match.group(2), verbs))
    assert rows == {(p.group, p.resource, p.verbs) for p in PERMISSIONS}
