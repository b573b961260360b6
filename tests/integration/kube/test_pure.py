"""The stand-in's pure pieces, checked directly: selectors, patches, CRD schemas, JSONPath,
protobuf decoding, quantities, termination-message cuts, the pod phase. (Everything else is
proven through real clients.)"""

from __future__ import annotations

import base64
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cpworker.sandbox.kube import (
    localexec,
    patching,
    podstatus,
    protobuf,
    quantity,
    schema,
    selectors,
    tables,
    termination,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=10,
)
documents = st.dictionaries(st.text(max_size=3), json_values, max_size=4)


@given(documents, documents)
def test_merge_patch_is_idempotent_and_drops_nulls(target: Any, patch: Any) -> None:
    once = patching.merge_patch(target, patch)
    assert patching.merge_patch(once, patch) == once
    for key, value in patch.items():
        if value is None:
            assert key not in once


@given(documents)
def test_json_patch_replace_whole_document(document: Any) -> None:
    assert (
        patching.json_patch({"a": 1}, [{"op": "replace", "path": "", "value": document}])
        == document
    )


def test_json_patch_operations_and_test_failure() -> None:
    doc = {"a": {"b": [1, 2]}, "c": "x"}
    result = patching.json_patch(
        doc,
        [
            {"op": "add", "path": "/a/b/-", "value": 3},
            {"op": "move", "from": "/c", "path": "/d"},
            {"op": "copy", "from": "/d", "path": "/e~1f"},
            {"op": "test", "path": "/a/b/2", "value": 3},
        ],
    )
    assert result == {"a": {"b": [1, 2, 3]}, "d": "x", "e/f": "x"}
    assert doc == {"a": {"b": [1, 2]}, "c": "x"}  # the input is untouched
    with pytest.raises(patching.PatchTestFailedError):
        patching.json_patch(doc, [{"op": "test", "path": "/c", "value": "y"}])
    with pytest.raises(patching.PatchError):
        patching.json_patch(doc, [{"op": "remove", "path": "/missing"}])


def test_strategic_merge_keys_and_directives() -> None:
    live = {
        "containers": [
            {"name": "a", "image": "1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "2"},
        ],
        "finalizers": ["f1"],
    }
    patch = {
        "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
        "containers": [
            {"name": "a", "env": [{"name": "Y", "value": "2"}]},
            {"name": "b", "$patch": "delete"},
        ],
        "finalizers": ["f2"],
    }
    merged = patching.strategic_merge(live, patch)
    assert merged == {
        "containers": [
            {
                "name": "a",
                "image": "1",
                "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}],
            }
        ],
        "finalizers": ["f1", "f2"],
    }
    replaced = patching.strategic_merge(
        live, {"containers": [{"$patch": "replace"}, {"name": "z", "image": "9"}]}
    )
    assert replaced["containers"] == [{"name": "z", "image": "9"}]


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("a=1", {"a": "1"}, True),
        ("a==1,b!=2", {"a": "1"}, True),
        ("a in (1, 2),!c", {"a": "2"}, True),
        ("a notin (1)", {}, True),
        ("a", {}, False),
        ("!a", {"a": "x"}, False),
        ("a in (1,2),b", {"a": "1"}, False),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], expected: bool) -> None:
    requirements = selectors.parse_label_selector(selector)
    assert selectors.labels_match(requirements, {"metadata": {"labels": labels}}) is expected


def test_selector_errors() -> None:
    with pytest.raises(selectors.SelectorError):
        selectors.parse_label_selector("a in (1")
    with pytest.raises(selectors.SelectorError):
        selectors.parse_field_selector("spec.unknown=1", "Secret")
    pod = {"metadata": {"name": "p"}, "status": {"phase": "Running"}}
    matchers = selectors.parse_field_selector("status.phase!=Failed,metadata.name=p", "Pod")
    assert selectors.fields_match(matchers, pod)


def test_schema_prune_default_validate() -> None:
    spec_schema = {
        "type": "object",
        "required": ["n"],
        "properties": {
            "n": {"type": "integer", "minimum": 1, "maximum": 3, "exclusiveMaximum": True},
            "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
            "mode": {"type": "string", "default": "fast", "enum": ["fast", "slow"]},
            "port": {"x-kubernetes-int-or-string": True},
            "maybe": {"type": "string", "nullable": True},
        },
    }
    dropped: list[str] = []
    pruned = schema.prune(spec_schema, {"n": 1, "x": {"y": 1}}, dropped=dropped)
    assert pruned == {"n": 1}
    assert dropped == ["x"]
    assert schema.apply_defaults(spec_schema, {"n": 1}) == {"n": 1, "mode": "fast"}
    assert schema.validate(spec_schema, {"n": 2, "port": "http", "maybe": None}, "spec") == []
    failures = schema.validate(spec_schema, {"n": 3, "tags": ["a", "b", "c"], "port": 1.5}, "spec")
    assert sorted(path for _, path, _ in failures) == ["spec.n", "spec.port", "spec.tags"]


def test_cel_transition_rules_need_an_old_value() -> None:
    rule = {
        "type": "string",
        "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "immutable"}],
    }
    assert schema.validate(rule, "a", "spec.x") == []
    assert schema.validate(rule, "a", "spec.x", "a", has_old=True) == []
    (failure,) = schema.validate(rule, "b", "spec.x", "a", has_old=True)
    assert failure[1] == "spec.x"
    assert "immutable" in failure[2]


def test_jsonpath_subset() -> None:
    obj = {
        "status": {
            "conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]
        },
        "metadata": {"labels": {"a.b/c": "v"}},
    }
    assert tables.jsonpath(obj, '.status.conditions[?(@.type=="Ready")].status') == ["True"]
    assert tables.jsonpath(obj, ".status.conditions[0].type") == ["A"]
    assert tables.jsonpath(obj, ".metadata.labels['a.b/c']") == ["v"]
    assert tables.jsonpath(obj, ".status.missing") == []


def _field(number: int, payload: bytes) -> bytes:
    return bytes([(number << 3) | 2, len(payload)]) + payload


def test_protobuf_secret_envelope() -> None:
    meta = _field(1, b"creds") + _field(11, _field(1, b"app") + _field(2, b"x"))
    secret = (
        _field(1, meta)
        + _field(2, _field(1, b"token") + _field(2, b"\x00\x01"))
        + _field(3, b"Opaque")
    )
    type_meta = _field(1, b"v1") + _field(2, b"Secret")
    body = protobuf.MAGIC + _field(1, type_meta) + _field(2, secret)
    decoded = protobuf.decode_body(body)
    assert decoded == {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": "creds", "labels": {"app": "x"}},
        "data": {"token": base64.b64encode(b"\x00\x01").decode()},
    }
    with pytest.raises(protobuf.ProtobufError):
        protobuf.decode_body(protobuf.MAGIC + _field(1, _field(1, b"batch/v1") + _field(2, b"Job")))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Fraction(1, 2)),
        ("2", Fraction(2)),
        ("1Gi", Fraction(2**30)),
        ("1e3", Fraction(1000)),
    ],
)
def test_quantities(text: str, value: Fraction) -> None:
    assert quantity.parse(text) == value


def test_quantities_print_canonically() -> None:
    assert quantity.format_quantity(Fraction(1, 2), binary=False) == "500m"
    assert quantity.format_quantity(Fraction(2**31), binary=True) == "2Gi"
    with pytest.raises(quantity.QuantityError):
        quantity.parse("lots")


@given(st.binary(max_size=9000))
def test_termination_file_cut_keeps_the_tail(content: bytes) -> None:
    kept = termination.from_file(content)
    assert kept == content[-4096:].decode(errors="replace")


def _pod(init: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "spec": {"restartPolicy": "Never", "initContainers": init, "containers": [{"name": "m"}]}
    }


def test_phase_follows_regular_containers_and_waits_for_sidecars() -> None:
    pod = _pod([{"name": "s", "restartPolicy": "Always"}])
    done = {"terminated": {"exitCode": 0}}
    sidecar_killed = {"terminated": {"exitCode": 143}}
    assert podstatus.phase(pod, {"s": {"running": {}}, "m": done}) == "Running"
    assert podstatus.phase(pod, {"s": sidecar_killed, "m": done}) == "Succeeded"
    failed = {"terminated": {"exitCode": 1}}
    assert podstatus.phase(pod, {"s": sidecar_killed, "m": failed}) == "Failed"
    assert podstatus.phase(_pod([{"name": "i"}]), {"i": failed, "m": {"waiting": {}}}) == "Failed"


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("$(A)", "x"),
        ("$$", "$"),  # the escape
        ("$$(A)", "$(A)"),
        ("$(UNDEFINED)", "$(UNDEFINED)"),  # kept as written
        ("$(", "$("),  # an incomplete reference
        ("$(A", "$(A"),
        ("$x $", "$x $"),  # a $ that begins nothing
        ("$(B)", "$(A)"),  # one pass: a value is not expanded again
        ("$$$(A)", "$x"),
        ("a$(A)b$(A)", "axbx"),
    ],
)
def test_variables_expand_as_the_kubelet_expands_them(text: str, expanded: str) -> None:
    """kubernetes/kubernetes third_party/forked/golang/expansion/expand.go (before: a regex
    that knew no `$$` escape)."""
    assert localexec.expand(text, {"A": "x", "B": "$(A)"}) == expanded


@given(st.text())
def test_doubling_every_dollar_makes_any_value_literal(value: str) -> None:
    assert localexec.expand(value.replace("$", "$$"), {"A": "x"}) == value
