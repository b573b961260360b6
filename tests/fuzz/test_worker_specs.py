"""Fuzzed CustomActionWorker specs through the CRD (the local Kubernetes' structural schema and
CEL rules) and through the models (`cpworker.models.parse_spec`): each spec is accepted, or
rejected with a message that says where; and the two never disagree.

The comparison is made on what each side actually sees. The API server prunes unknown fields
(or refuses them with `fieldValidation=Strict`, as kubectl sends), drops nulls its schema does
not allow and applies defaults before it validates; `parse_spec` only ever sees what the API
server stored. So: the CRD accepts a spec exactly when `parse_spec` accepts the spec as the
API server would hand it on, and both then mean the same worker (same defaults).

Bounded for `make test` (100 examples and every edge alone, about 20 s);
`CPWORKER_FUZZ_EXAMPLES=5000` runs a longer search (the sample sent through the real API is an
eighth of it).
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
from hypothesis import HealthCheck, given, settings

from cpworker.models import CustomActionWorkerSpec, InvalidSpecError, parse_spec
from cpworker.sandbox.kube import KubeStandIn
from cpworker.sandbox.kube.errors import ApiError
from tests.fuzz.crd_gate import GROUP, NAMESPACE, PLURAL, VERSION, Admission, CrdGate, worker
from tests.fuzz.worker_specs import CANARY, EDITS, apply_edit, worker_specs

EXAMPLES = int(os.environ.get("CPWORKER_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
THROUGH_API = settings(FUZZ, max_examples=max(EXAMPLES // 8, 10))
# celpy's parser raises the recursion limit while hypothesis runs a test; harmless here
pytestmark = pytest.mark.filterwarnings("ignore:The recursion limit will not be reset")
_new_client: Any = kubernetes.config.new_client_from_config


def _models(spec: Any) -> CustomActionWorkerSpec | InvalidSpecError:
    try:
        return parse_spec(spec)
    except InvalidSpecError as error:
        return error


def _assert_clear_crd_refusal(error: ApiError, spec: Any) -> None:
    """422 with a cause per problem, each naming a field under spec (or 400 for a strict
    decoding error naming the unknown field)."""
    assert error.message, spec
    if error.code == 400:
        assert error.message.startswith('strict decoding error: unknown field "spec.'), error
        return
    assert error.code == 422, error.status()
    causes = error.details["causes"]
    assert causes, error.status()
    for cause in causes:
        assert cause["field"].startswith("spec"), cause
        assert cause["message"], cause


def _assert_clear_model_refusal(error: InvalidSpecError) -> None:
    """Every part names the field at fault; no part echoes a value (the canary)."""
    assert error.message.startswith(("spec.", "spec:")), error.message
    for part in re.split(r"; (?=spec[.:])", error.message):
        assert part.split(": ", 1)[1:], error.message  # "<field>: <what is wrong>"
    assert CANARY not in error.message, error.message


def _check_agreement(spec: Any, admission: Admission, handed_on: Any, *, strict: bool) -> None:
    mode = "strict" if strict else "non-strict"
    verdict = _models(handed_on)
    if admission.accepted:
        assert not isinstance(verdict, InvalidSpecError), (
            f"{mode}: the CRD accepts, the models refuse: {verdict.message}\n"
            f"spec: {json.dumps(spec)}\nas stored: {json.dumps(admission.spec)}"
        )
        # the operator parses what was stored: the same worker, defaults included
        assert admission.spec == handed_on, (spec, admission.spec, handed_on)
        assert parse_spec(admission.spec) == verdict
    else:
        assert admission.error is not None
        _assert_clear_crd_refusal(admission.error, spec)
        assert isinstance(verdict, InvalidSpecError), (
            f"{mode}: the CRD refuses ({admission.error.message}), the models accept\n"
            f"spec: {json.dumps(spec)}\nhanded on: {json.dumps(handed_on)}"
        )
    if isinstance(verdict, InvalidSpecError):
        _assert_clear_model_refusal(verdict)


@pytest.fixture(scope="module")
def kube() -> Iterator[KubeStandIn]:
    """One stand-in for the module (hypothesis runs many examples per test)."""
    with KubeStandIn(job_runner=False) as standin:
        standin.load_crds()
        yield standin


@pytest.fixture(scope="module")
def gate(kube: KubeStandIn) -> CrdGate:
    return CrdGate(kube)


@FUZZ
@given(spec=worker_specs())
def test_crd_and_models_agree(gate: CrdGate, spec: dict[str, Any]) -> None:
    # as most clients send it: unknown fields are pruned and the rest is validated
    _check_agreement(
        spec, gate.admit(spec, strict=False), gate.normalize(spec, prune_unknown=True), strict=False
    )
    # as kubectl sends it (fieldValidation=Strict): unknown fields are refused
    _check_agreement(
        spec, gate.admit(spec, strict=True), gate.normalize(spec, prune_unknown=False), strict=True
    )


BASES: list[dict[str, Any]] = [  # a minimal spec and a full one: defaults matter to some rules
    {
        "actionTypeId": {"category": "Build", "provider": "Acme", "version": "1"},
        "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}},
    },
    {
        "actionTypeId": {"category": "Deploy", "owner": "Custom", "provider": "A", "version": "v"},
        "queryParam": {"Pool": "gpu"},
        "region": "eu-west-1",
        "roleArn": "arn:aws:iam::123456789012:role/worker",
        "maxInFlight": 20,
        "maxBatchSize": 20,
        "polling": {"minIntervalSeconds": 5, "maxIntervalSeconds": 5},
        "paused": True,
        "deletionPolicy": "Cancel",
        "jobTemplate": {"metadata": {"labels": {"a": "b"}}, "spec": {}},
    },
]


def test_every_edge_alone(gate: CrdGate) -> None:
    """Each edge of the catalogue on its own, deterministically (hypothesis may not draw a
    given one in a short run); every disagreement is listed at once."""
    problems = []
    for base in BASES:
        for edit in EDITS:
            spec = copy.deepcopy(base)
            apply_edit(spec, edit)
            for strict in (False, True):
                try:
                    _check_agreement(
                        spec,
                        gate.admit(spec, strict=strict),
                        gate.normalize(spec, prune_unknown=not strict),
                        strict=strict,
                    )
                except AssertionError as failure:
                    problems.append(str(failure).split("\n")[0])
    assert not problems, "\n".join(problems)


@FUZZ
@given(worker_specs())
def test_model_refusals_never_echo_values(spec: dict[str, Any]) -> None:
    verdict = _models(spec)  # the raw spec, as a cluster without the CRD's rules would pass it
    if isinstance(verdict, InvalidSpecError):
        _assert_clear_model_refusal(verdict)


@pytest.fixture(scope="module")
def api_client(kube: KubeStandIn, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    client = _new_client(str(kube.write_kubeconfig(tmp_path_factory.mktemp("fuzz") / "kc")))
    yield client
    client.close()


def _through_api(client: Any, spec: Any, *, strict: bool) -> Admission:
    custom: Any = kubernetes.client.CustomObjectsApi(client)
    try:
        stored = custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            NAMESPACE,
            PLURAL,
            worker(spec),
            dry_run="All",
            field_validation="Strict" if strict else "Ignore",
        )
    except kubernetes.client.ApiException as exc:
        status = json.loads(exc.body or "{}")
        return Admission(
            error=ApiError(
                status["code"], status["reason"], status["message"], details=status.get("details")
            )
        )
    return Admission(spec=stored["spec"])


@THROUGH_API
@given(spec=worker_specs())
def test_the_real_api_answers_as_the_gate(
    gate: CrdGate, api_client: Any, spec: dict[str, Any]
) -> None:
    """A sample through HTTP with the kubernetes client: the same verdicts, stored specs and
    causes as the in-process gate the other tests use."""
    for strict in (False, True):
        direct = gate.admit(spec, strict=strict)
        answered = _through_api(api_client, spec, strict=strict)
        assert answered.spec == direct.spec, spec
        if direct.error is not None:
            assert answered.error is not None
            assert answered.error.status() == direct.error.status(), spec


def test_the_gate_prunes_nulls_and_matches_patterns_as_kube_apiserver(
    gate: CrdGate, api_client: Any
) -> None:
    """What the comparison above relies on, through the real API: nulls the schema does not
    allow are dropped or defaulted (apiextensions-apiserver defaulting/prunenulls.go,
    algorithm.go), and patterns are RE2, so `$` does not match before a final newline (Go's
    regexp; Python's `re` would)."""
    base = copy.deepcopy(BASES[0])
    nulls = {**base, "region": None, "maxInFlight": None, "queryParam": {"Pool": None}}
    stored = _through_api(api_client, nulls, strict=True)
    assert stored.spec is not None
    assert "region" not in stored.spec
    assert stored.spec["maxInFlight"] == 10  # null with a default: defaulted
    assert stored.spec["queryParam"] == {}
    newline = copy.deepcopy(base)
    newline["actionTypeId"] = {**base["actionTypeId"], "provider": "Acme\n"}
    refused = _through_api(api_client, newline, strict=False)
    assert refused.error is not None
    assert refused.error.details["causes"][0]["field"] == "spec.actionTypeId.provider"
