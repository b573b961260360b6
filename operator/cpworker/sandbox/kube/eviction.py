"""The Eviction API (`POST pods/NAME/eviction`), as `pkg/registry/core/pod/storage/eviction.go`
answers it: a PodDisruptionBudget that selects the pod and allows no disruption refuses with
429 TooManyRequests; otherwise the pod gets a `DisruptionTarget` condition (reason
EvictionByEvictionAPI) and is deleted with the eviction's DeleteOptions, so the kubelet
terminates it gracefully. A terminal pod is deleted without looking at budgets.
PodDisruptionBudgets are read with integer `minAvailable`/`maxUnavailable` (no percentages),
and pods count as healthy when Ready.
"""

from __future__ import annotations

from typing import Any

from cpworker.sandbox.kube.api import Api, DeleteOptions
from cpworker.sandbox.kube.errors import ApiError, bad_request, not_found
from cpworker.sandbox.kube.podstatus import condition
from cpworker.sandbox.kube.selectors import Requirement, labels_match, parse_label_selector

Obj = dict[str, Any]
PODS = ("", "pods")


def _selector(pdb: Obj) -> tuple[Requirement, ...]:
    selector = (pdb.get("spec") or {}).get("selector") or {}
    terms = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for expression in selector.get("matchExpressions") or []:
        operator, key = expression.get("operator"), expression.get("key")
        values = ",".join(expression.get("values") or [])
        terms.append(
            {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})"}.get(
                str(operator), key if operator == "Exists" else f"!{key}"
            )
        )
    return parse_label_selector(",".join(terms)) if terms else ()


def _healthy(pod: Obj) -> bool:
    status = pod.get("status") or {}
    return not pod["metadata"].get("deletionTimestamp") and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _budget_refusal(api: Api, pod: Obj) -> ApiError | None:
    namespace = pod["metadata"]["namespace"]
    for pdb in api.store.iterate(("policy", "poddisruptionbudgets"), namespace):
        selector = _selector(pdb)
        if not selector or not labels_match(selector, pod):
            continue
        matching = [p for p in api.store.iterate(PODS, namespace) if labels_match(selector, p)]
        healthy = sum(1 for p in matching if _healthy(p))
        spec = pdb.get("spec") or {}
        if isinstance(spec.get("minAvailable"), int):
            desired = int(spec["minAvailable"])
        elif isinstance(spec.get("maxUnavailable"), int):
            desired = max(0, len(matching) - int(spec["maxUnavailable"]))
        else:
            continue
        if healthy - desired <= 0 and _healthy(pod):
            name = pdb["metadata"]["name"]
            return ApiError(
                429,
                "TooManyRequests",
                "Cannot evict pod as it would violate the pod's disruption budget.",
                details={
                    "causes": [
                        {
                            "reason": "DisruptionBudget",
                            "message": f"The disruption budget {name} needs {desired} healthy "
                            f"pods and has {healthy} currently",
                        }
                    ]
                },
            )
    return None


def evict(api: Api, namespace: str, name: str, body: Any) -> Obj:
    """Answer an Eviction (policy/v1); raises ApiError on refusal."""
    if not isinstance(body, dict):
        raise bad_request("the body of the request must be an Eviction")
    pod = api.store.get(PODS, namespace, name)
    if pod is None:
        raise not_found("", "pods", name)
    pods = api.storage_type(PODS)
    assert pods is not None
    options = DeleteOptions.from_body(body.get("deleteOptions"), {})
    terminal = (pod.get("status") or {}).get("phase") in {"Succeeded", "Failed"}
    if not terminal and not pod["metadata"].get("deletionTimestamp"):
        refusal = _budget_refusal(api, pod)
        if refusal is not None:
            raise refusal
        status = dict(pod.get("status") or {})
        status["conditions"] = [
            *(c for c in status.get("conditions") or [] if c.get("type") != "DisruptionTarget"),
            condition(
                "DisruptionTarget", "True", "EvictionByEvictionAPI", "Eviction API: evicting"
            ),
        ]
        api.update(pods, namespace, name, {**pod, "status": status}, subresource="status")
    api.delete(pods, namespace, name, options)
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
