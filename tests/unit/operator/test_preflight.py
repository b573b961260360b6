"""cpworker.preflight's pure checks (the CRD, queue policies, queryParam, the report) and the
permission table's expansion."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from cpworker import crd
from cpworker.permissions import Access, required_access
from cpworker.preflight import (
    crd_differences,
    eventbridge_may_send,
    known_regions,
    ok,
    problem,
    query_param_problem,
    render,
)


def _version(body: dict[str, Any]) -> dict[str, Any]:
    version: dict[str, Any] = body["spec"]["versions"][0]
    return version


def test_the_operators_own_crd_has_no_differences() -> None:
    assert crd_differences(crd.render_crd(), crd.render_crd()) == []


def test_crd_differences_name_what_differs() -> None:
    installed = crd.render_crd()
    _version(installed)["name"] = "v1alpha0"
    assert crd_differences(installed, crd.render_crd()) == [
        "it does not define version v1alpha1 (it has: v1alpha0)"
    ]
    older = crd.render_crd()
    schema = _version(older)["schema"]["openAPIV3Schema"]
    del schema["properties"]["spec"]["properties"]["maxInFlight"]
    schema["properties"]["spec"]["properties"]["legacy"] = {"type": "string"}
    _version(older)["storage"] = False
    assert crd_differences(older, crd.render_crd()) == [
        "v1alpha1 is not storage",
        "its schema differs at .spec.legacy, .spec.maxInFlight",
    ]


def test_crd_differences_are_capped() -> None:
    installed = copy.deepcopy(crd.render_crd())
    spec = _version(installed)["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for index in range(8):
        spec["properties"][f"extra{index}"] = {"type": "string"}
    (difference,) = crd_differences(installed, crd.render_crd())
    assert difference.endswith("and 3 more field(s)")


def _policy(**statement: Any) -> str:
    return json.dumps({"Statement": [{"Effect": "Allow", "Resource": "*", **statement}]})


@pytest.mark.parametrize(
    ("policy", "may_send"),
    [
        (_policy(Principal={"Service": "events.amazonaws.com"}, Action="sqs:SendMessage"), True),
        (_policy(Principal={"Service": ["events.amazonaws.com"]}, Action=["sqs:*"]), True),
        (_policy(Principal="*", Action="sqs:SendMessage"), True),
        (_policy(Principal={"Service": "sns.amazonaws.com"}, Action="sqs:SendMessage"), False),
        (
            _policy(Principal={"Service": "events.amazonaws.com"}, Action="sqs:ReceiveMessage"),
            False,
        ),
        (
            json.dumps(
                {
                    "Statement": {
                        "Effect": "Deny",
                        "Principal": {"Service": "events.amazonaws.com"},
                        "Action": "sqs:SendMessage",
                    }
                }
            ),
            False,
        ),
        (None, False),
        ("not json", False),
    ],
)
def test_eventbridge_may_send(policy: str | None, may_send: bool) -> None:
    assert eventbridge_may_send(policy) is may_send


POOL = [{"name": "Pool", "queryable": True, "required": True}, {"name": "Token", "secret": True}]


@pytest.mark.parametrize(
    ("query_param", "properties", "expected"),
    [
        ({"Pool": "gpu"}, POOL, None),
        ({}, [{"name": "Token"}], None),
        ({"Queue": "gpu"}, POOL, "queryParam 'Queue' is not the action type's queryable property"),
        ({}, POOL, "the action type's queryable property 'Pool' needs a queryParam entry"),
        ({"Pool": "gpu"}, [], "queryParam 'Pool' is set, but the action type has no queryable"),
    ],
)
def test_query_param_problem(
    query_param: dict[str, str], properties: list[dict[str, Any]], expected: str | None
) -> None:
    found = query_param_problem(query_param, properties)
    if expected is None:
        assert found is None
    else:
        assert found is not None
        assert found.startswith(expected)


def test_render_lists_problems_with_what_to_do() -> None:
    report = render([ok("AWS identity", "arn:x"), problem("worker a/b", "broken", "fix it")])
    assert report.splitlines() == [
        "cpworker check",
        "  ok    AWS identity: arn:x",
        "  FAIL  worker a/b: broken",
        "",
        "1 problem(s):",
        "  1. worker a/b: broken",
        "     what to do: fix it",
    ]
    assert render([ok("a", "b")]).endswith("no problems found")


def test_required_access_by_mode() -> None:
    cluster_wide = required_access()
    assert Access("delete", "batch", "jobs") in cluster_wide
    assert all(a.namespace == "" for a in cluster_wide)
    assert not any(a.resource == "namespaces" for a in cluster_wide)
    namespaced = required_access(("ci", "build"))
    assert Access("delete", "batch", "jobs", "ci") in namespaced
    assert Access("delete", "batch", "jobs", "build") in namespaced
    assert Access("list", "apiextensions.k8s.io", "customresourcedefinitions") in namespaced
    assert Access("watch", "", "namespaces") in namespaced
    assert Access("patch", "kopf.dev", "clusterkopfpeerings") in required_access(peering=True)
    assert Access("patch", "kopf.dev", "kopfpeerings", "ci") in required_access(
        ("ci",), peering=True
    )
    assert str(Access("patch", "cpworker.io", "customactionworkers/status", "ci")) == (
        "patch cpworker.io/customactionworkers/status in namespace ci"
    )


def test_known_regions_come_from_botocore() -> None:
    regions = known_regions()
    assert {"us-east-1", "eu-west-1"} <= regions
    assert "us-east-7" not in regions
