"""The committed CRD served by the local Kubernetes API, driven by the real kubernetes client.

The stand-in (cpworker.sandbox.kube) loads `crds/` and applies its schema defaults and CEL
rules the way an API server does, so these tests show what a user of `kubectl apply` meets.
"""

from __future__ import annotations

import json
from typing import Any

import kubernetes
import pytest

from cpworker import models, names
from tests.unit.operator.samples import NOW, spec

Client = Any  # the kubernetes package is untyped


def _api(kube_api: Client) -> Client:
    return kubernetes.client.CustomObjectsApi(kube_api)


def _create(kube_api: Client, name: str, spec_: dict[str, Any]) -> dict[str, Any]:
    body = {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec_,
    }
    created: dict[str, Any] = _api(kube_api).create_namespaced_custom_object(
        names.GROUP, names.VERSION, "default", names.PLURAL, body
    )
    return created


def _rejection(kube_api: Client, name: str, spec_: dict[str, Any]) -> str:
    with pytest.raises(kubernetes.client.ApiException) as caught:
        _create(kube_api, name, spec_)
    assert caught.value.status == 422
    return str(caught.value.body)


def test_valid_worker_is_stored_with_defaults(kube_api: Client) -> None:
    raw = spec()
    del raw["maxInFlight"]
    del raw["actionTypeId"]["owner"]
    created = _create(kube_api, "gpu-builds", raw)
    stored = created["spec"]
    assert stored["actionTypeId"]["owner"] == "Custom"
    assert stored["maxInFlight"] == models.DEFAULT_MAX_IN_FLIGHT
    assert stored["paused"] is False
    assert stored["deletionPolicy"] == "Drain"
    # What the API server stored is what the operator parses.
    assert models.parse_spec(stored).max_in_flight == models.DEFAULT_MAX_IN_FLIGHT


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {
                "actionTypeId": {
                    "category": "Build",
                    "owner": "AWS",
                    "provider": "P",
                    "version": "1",
                }
            },
            models.OWNER_MESSAGE,
        ),
        ({"maxInFlight": 2, "maxBatchSize": 3}, models.BATCH_MESSAGE),
        ({"polling": {"minIntervalSeconds": 61}}, models.INTERVAL_MESSAGE),
        ({"queryParam": {"Pool": "has space"}}, "queryParam"),
    ],
)
def test_invalid_workers_are_refused_with_the_reason(
    kube_api: Client, changes: dict[str, Any], message: str
) -> None:
    assert message in _rejection(kube_api, "bad", spec(**changes))


def test_action_type_is_immutable_but_the_rest_is_not(kube_api: Client) -> None:
    _create(kube_api, "w", spec())
    api = _api(kube_api)
    patched = api.patch_namespaced_custom_object(
        names.GROUP, names.VERSION, "default", names.PLURAL, "w", {"spec": {"maxInFlight": 3}}
    )
    assert patched["spec"]["maxInFlight"] == 3
    with pytest.raises(kubernetes.client.ApiException) as caught:
        api.patch_namespaced_custom_object(
            names.GROUP,
            names.VERSION,
            "default",
            names.PLURAL,
            "w",
            {"spec": {"actionTypeId": {"version": "2"}}},
        )
    assert caught.value.status == 422
    assert models.IMMUTABLE_MESSAGE in str(caught.value.body)


def test_status_written_by_the_operator_round_trips(kube_api: Client) -> None:
    _create(kube_api, "w", spec())
    status = models.CustomActionWorkerStatus(
        conditions=[
            models.ready_condition(
                ready=True,
                reason=models.Reason.POLLING,
                message="ok",
                now=NOW,
                observed_generation=1,
            )
        ],
        observed_generation=1,
        in_flight=2,
        succeeded=7,
        failed=1,
        lost_races=0,
        last_poll_time=NOW,
    )
    stored = _api(kube_api).patch_namespaced_custom_object_status(
        names.GROUP,
        names.VERSION,
        "default",
        names.PLURAL,
        "w",
        {"status": models.status_patch(status)},
    )
    assert models.CustomActionWorkerStatus.model_validate(stored["status"]) == status
    table = _table(kube_api)
    columns = [column["name"] for column in table["columnDefinitions"]]
    row = dict(zip(columns, table["rows"][0]["cells"], strict=True))
    assert row["Ready"] == "True"
    assert row["Reason"] == "Polling"
    assert row["In-flight"] == 2
    assert row["Succeeded"] == 7
    assert row["Failed"] == 1


def _table(kube_api: Client) -> dict[str, Any]:
    """What `kubectl get caw` shows: the server-side Table with the CRD's printer columns."""
    method, url, headers, body, _ = kube_api.param_serialize(
        "GET",
        f"/apis/{names.GROUP}/{names.VERSION}/namespaces/default/{names.PLURAL}",
        header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        auth_settings=["BearerToken"],
    )
    response = kube_api.call_api(method, url, header_params=headers, body=body)
    response.read()
    table: dict[str, Any] = json.loads(response.data)
    return table
