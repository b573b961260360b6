"""hypothesis strategies for CustomActionWorker specs that reach the edges of every rule.

`worker_specs()` draws mostly a valid spec with one or two mutations (so that a rule is met
alone, not hidden behind another one), and sometimes a spec whose every field is drawn wild.
A field's value is one of: absent, null, the wrong JSON type, a value just inside or just
outside a bound, a string one character too long, a pattern broken by one character (a
newline at the end, unicode, NUL, whitespace, shell metacharacters); unknown fields (typos) are
added at every level now and then.
"""

from __future__ import annotations

import string
from typing import Any

from hypothesis import strategies as st

from cpworker.models import (
    INTERVAL_LIMIT_SECONDS,
    MAX_BATCH_SIZE_LIMIT,
    MAX_IN_FLIGHT_LIMIT,
    QUERY_KEY_MAX,
)

ABSENT = object()  # a field left out
CANARY = "zq9CANARYzq9"  # put into invalid values: a model message must never echo them
NAME_CHARS = string.ascii_letters + string.digits + "_-"
NASTY = st.sampled_from(
    ["\n", "\r\n", "\x00", " ", "\t", "/", ".", "$(id)", "`id`", ";", "é", "Ω", "💥", "\u200b"]
)
CATEGORIES = ["Source", "Build", "Deploy", "Test", "Invoke", "Approval", "Compute"]


def _wrong_types() -> st.SearchStrategy[Any]:
    return st.sampled_from([None, True, 0, 1.5, "x", [], {}, ["a"]])


def _near(low: int, high: int) -> st.SearchStrategy[int]:
    """Integers at and around the bounds, and some far outside (int64 overflow included)."""
    edges = [low - 1, low, low + 1, high - 1, high, high + 1, 0, -1, 2**31, 2**63, -(2**63) - 1]
    return st.sampled_from(edges) | st.integers(low, high)


def _integer_field(low: int, high: int) -> st.SearchStrategy[Any]:
    lax: st.SearchStrategy[Any] = st.sampled_from([True, False, "5", 5.0, 1.0, "1", None, [], {}])
    return st.one_of(_near(low, high), _near(low, high), lax)


@st.composite
def _name_like(draw: st.DrawFn, max_len: int) -> str:
    """Mostly [0-9A-Za-z_-]{1,max_len}; or empty, too long, or broken by one character."""
    size = draw(st.sampled_from([1, max_len, max_len + 1, 0]) | st.integers(1, max_len))
    text = draw(st.text(NAME_CHARS, min_size=size, max_size=size))
    how = draw(st.sampled_from(["keep", "keep", "keep", "nasty", "unicode", "canary"]))
    if how == "nasty":
        where = draw(st.integers(0, len(text)))
        text = text[:where] + draw(NASTY) + text[where:]
    elif how == "unicode":
        text += draw(st.text(min_size=1, max_size=3))
    elif how == "canary":
        text = CANARY + "/" + text
    return text


def _string_field(valid: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.one_of(valid, valid, valid, _wrong_types())


def _maybe(field: st.SearchStrategy[Any], absent: int = 1) -> st.SearchStrategy[Any]:
    return st.one_of(*([st.just(ABSENT)] * absent), field, field)


@st.composite
def action_type_ids(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 30)) == 0:
        return draw(_wrong_types())
    fields = {
        "category": _maybe(
            st.sampled_from([*CATEGORIES, "build", "Build ", "", None, 1]), absent=1
        ),
        "owner": _maybe(st.sampled_from(["Custom", "Custom", "AWS", "ThirdParty", "custom", None])),
        "provider": _maybe(_string_field(_name_like(35))),
        "version": _maybe(_string_field(_name_like(9) | st.just("1"))),
    }
    result = {}
    for key, strategy in fields.items():
        value = draw(strategy)
        if value is not ABSENT:
            result[key] = value
    if draw(st.integers(0, 8)) == 0:
        result[draw(st.sampled_from(["Provider", "name", "extra"]))] = "x"
    return result


@st.composite
def query_params(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 30)) == 0:
        return draw(_wrong_types())
    size = draw(st.sampled_from([0, 1, 1, 1, 2, 3]))
    keys = st.text(min_size=1, max_size=QUERY_KEY_MAX) | st.sampled_from(
        ["", "Pool", "p" * QUERY_KEY_MAX, "p" * (QUERY_KEY_MAX + 1), "é" * QUERY_KEY_MAX]
    )
    values = _string_field(_name_like(50) | st.sampled_from(["x" * 21, "x" * 50, "x" * 51]))
    return draw(st.dictionaries(keys, values, min_size=size, max_size=size))


@st.composite
def regions(draw: st.DrawFn) -> Any:
    valid = st.sampled_from(["us-east-1", "eu-west-2", "ap-southeast-1", "us-gov-west-1"])
    invalid = st.sampled_from(
        ["US-east-1", "us-east-1\n", "useast1", "us-east", "", "us-east-1 ", "ü-east-1"]
    )
    return draw(_string_field(valid | invalid))


@st.composite
def role_arns(draw: st.DrawFn) -> Any:
    partition = draw(st.sampled_from(["aws", "aws-cn", "aws-us-gov", "AWS", "aws-"]))
    account = draw(st.sampled_from(["123456789012", "12345678901", "1234567890123", "x" * 12]))
    size = draw(st.sampled_from([1, 512, 513]) | st.integers(1, 64))
    name = draw(st.text(string.ascii_letters + "+=,.@_/-", min_size=size, max_size=size))
    suffix = draw(st.sampled_from(["", "", "", "\n", " ", "$(id)"]))
    return draw(_string_field(st.just(f"arn:{partition}:iam::{account}:role/{name}{suffix}")))


@st.composite
def pollings(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 20)) == 0:
        return draw(_wrong_types())
    result = {}
    for key in ("minIntervalSeconds", "maxIntervalSeconds"):
        value = draw(_maybe(_integer_field(1, INTERVAL_LIMIT_SECONDS)))
        if value is not ABSENT:
            result[key] = value
    return result


@st.composite
def job_templates(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 20)) == 0:
        return draw(_wrong_types())
    result: dict[str, Any] = {}
    spec = draw(
        st.sampled_from(
            [
                {"template": {"spec": {"containers": [{"name": "b", "image": "x:1"}]}}},
                {},
                {"anything": ["goes", 1, None]},
                None,
                ABSENT,
                "x",
            ]
        )
    )
    if spec is not ABSENT:
        result["spec"] = spec
    if draw(st.booleans()):
        text = st.text(max_size=20)
        metadata = {
            "labels": st.dictionaries(text, text | _wrong_types(), max_size=2) | _wrong_types(),
            "annotations": st.dictionaries(text, text, max_size=2),
            "name": st.just("not-allowed"),
        }
        result["metadata"] = {
            key: draw(strategy) for key, strategy in metadata.items() if draw(st.booleans())
        }
    return result


@st.composite
def wild_specs(draw: st.DrawFn) -> dict[str, Any]:
    """A spec whose every field is drawn from its full range."""
    max_in_flight = draw(_maybe(_integer_field(1, MAX_IN_FLIGHT_LIMIT)))
    fields: dict[str, st.SearchStrategy[Any]] = {
        "actionTypeId": _maybe(action_type_ids(), absent=1),
        "queryParam": _maybe(query_params()),
        "region": _maybe(regions(), absent=2),
        "roleArn": _maybe(role_arns(), absent=2),
        "maxBatchSize": _maybe(_integer_field(1, MAX_BATCH_SIZE_LIMIT)),
        "polling": _maybe(pollings()),
        "paused": _maybe(st.booleans() | _wrong_types()),
        "deletionPolicy": _maybe(st.sampled_from(["Drain", "Cancel", "drain", "", None, 1])),
        "jobTemplate": _maybe(job_templates(), absent=1),
    }
    spec: dict[str, Any] = {}
    if max_in_flight is not ABSENT:
        spec["maxInFlight"] = max_in_flight
    for key, strategy in fields.items():
        value = draw(strategy)
        if value is not ABSENT:
            spec[key] = value
    if draw(st.integers(0, 6)) == 0:  # a typo or a field from another version
        spec[draw(st.sampled_from(["maxInflight", "queryParams", "timeout", "status"]))] = 1
    return spec


# -- valid specs and single mutations ---------------------------------------------------------
def _valid_name(max_len: int) -> st.SearchStrategy[str]:
    return st.text(NAME_CHARS, min_size=1, max_size=max_len) | st.sampled_from(
        ["a", "Z" * max_len, "-" * max_len, "_"]
    )


@st.composite
def valid_specs(draw: st.DrawFn) -> dict[str, Any]:
    """A spec every rule accepts, bounds included."""
    max_in_flight = draw(st.sampled_from([1, MAX_IN_FLIGHT_LIMIT]) | st.integers(1, 1000))
    low = draw(st.sampled_from([1, INTERVAL_LIMIT_SECONDS]) | st.integers(1, 3600))
    spec: dict[str, Any] = {
        "actionTypeId": {
            "category": draw(st.sampled_from(CATEGORIES)),
            "provider": draw(_valid_name(35)),
            "version": draw(_valid_name(9)),
        },
        "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}},
    }
    optional: dict[str, Any] = {
        "owner": "Custom",
        "maxInFlight": max_in_flight,
        "maxBatchSize": draw(st.integers(1, min(MAX_BATCH_SIZE_LIMIT, max_in_flight))),
        "polling": {
            "minIntervalSeconds": low,
            "maxIntervalSeconds": draw(st.integers(low, INTERVAL_LIMIT_SECONDS)),
        },
        "queryParam": {draw(st.text(min_size=1, max_size=QUERY_KEY_MAX)): draw(_valid_name(50))},
        "region": draw(st.sampled_from(["us-east-1", "eu-central-1", "us-gov-west-1"])),
        "roleArn": f"arn:aws:iam::123456789012:role/{draw(_valid_name(64))}",
        "paused": draw(st.booleans()),
        "deletionPolicy": draw(st.sampled_from(["Drain", "Cancel"])),
    }
    for key, value in optional.items():
        if draw(st.booleans()):
            if key == "owner":
                spec["actionTypeId"]["owner"] = value
            else:
                spec[key] = value
    return spec


Path = tuple[str, ...]
Edit = tuple[tuple[Path, Any], ...]  # (where, value) pairs; ABSENT removes the field
_JUNK: list[Any] = [None, True, 1, 1.5, "x", [], {}]


def _string_edges(valid: str, max_len: int) -> list[Any]:
    return [
        "",
        valid[:1],
        "a" * max_len,
        "a" * (max_len + 1),
        valid + "\n",
        "\n" + valid,
        valid + " ",
        valid + "\x00",
        "é" * min(max_len, 3),
        valid + "💥",
        "$(id)",
        f"{CANARY}/x",
        *_JUNK,
    ]


def _integer_edges(low: int, high: int) -> list[Any]:
    return [low - 1, low, high, high + 1, -1, 0, 2**63, "5", 5.0, 1.0, True, None, []]


def _edits() -> list[Edit]:
    """Every edge of every rule as a small edit of a valid spec, one entry each."""
    strings = {
        ("actionTypeId", "provider"): ("Acme", 35),
        ("actionTypeId", "version"): ("1", 9),
        ("queryParam", "Pool"): ("gpu", 50),
        ("region",): ("us-east-1", 20),
        ("roleArn",): ("arn:aws:iam::123456789012:role/r", 2048),
    }
    integers = {
        ("maxInFlight",): (1, MAX_IN_FLIGHT_LIMIT),
        ("maxBatchSize",): (1, MAX_BATCH_SIZE_LIMIT),
        ("polling", "minIntervalSeconds"): (1, INTERVAL_LIMIT_SECONDS),
        ("polling", "maxIntervalSeconds"): (1, INTERVAL_LIMIT_SECONDS),
    }
    edits: list[Edit] = []
    for where, (valid, max_len) in strings.items():
        edits += [((where, value),) for value in _string_edges(valid, max_len)]
    for where, (low, high) in integers.items():
        edits += [((where, value),) for value in _integer_edges(low, high)]
    singles: dict[Path, list[Any]] = {
        ("actionTypeId",): [ABSENT, *_JUNK],
        ("actionTypeId", "category"): ["build", "Build ", "", ABSENT, *_JUNK],
        ("actionTypeId", "owner"): ["AWS", "ThirdParty", "custom", "", *_JUNK],
        ("actionTypeId", "provider"): [ABSENT],
        ("actionTypeId", "version"): [ABSENT],
        ("actionTypeId", "Provider"): ["typo"],
        ("queryParam",): [
            {},
            {"a": "1", "b": "2"},
            {"": "x"},
            {"k" * QUERY_KEY_MAX: "x"},
            {"k" * (QUERY_KEY_MAX + 1): "x"},
            {"é" * QUERY_KEY_MAX: "x"},
            {"💥" * QUERY_KEY_MAX: "x"},
            {"a b\n": "x"},
            {"Pool": "x" * 21},
            *_JUNK,
        ],
        ("polling",): [{}, *_JUNK],
        ("polling", "every"): [5],
        ("paused",): ["true", "yes", 1, 0, *_JUNK],
        ("deletionPolicy",): ["drain", "", "Orphan", *_JUNK],
        ("jobTemplate",): [ABSENT, {}, *_JUNK],
        ("jobTemplate", "spec"): [ABSENT, {}, {"x": None}, *_JUNK],
        ("jobTemplate", "metadata"): [{}, {"name": "x"}, *_JUNK],
        ("jobTemplate", "metadata", "labels"): [{"a": 1}, {"a": None}, {"": ""}, *_JUNK],
        ("jobTemplate", "metadata", "annotations"): [{"a": True}, *_JUNK],
        ("maxInflight",): [5],
        ("status",): [{"inFlight": 1}],
        ("apiVersion",): ["v2"],
    }
    for where, values in singles.items():
        edits += [((where, value),) for value in values]
    edits += [  # rules across fields, defaults included
        ((("maxInFlight",), 5), (("maxBatchSize",), 6)),
        ((("maxInFlight",), 5), (("maxBatchSize",), 5)),
        ((("maxInFlight",), ABSENT), (("maxBatchSize",), 11)),  # the default maxInFlight is 10
        ((("maxInFlight",), ABSENT), (("maxBatchSize",), 10)),
        ((("maxInFlight",), None), (("maxBatchSize",), 11)),
        ((("polling",), {"minIntervalSeconds": 61}),),  # the default maximum is 60
        ((("polling",), {"maxIntervalSeconds": 1}),),
        ((("polling",), {"minIntervalSeconds": 10, "maxIntervalSeconds": 9}),),
        ((("polling",), {"minIntervalSeconds": 10, "maxIntervalSeconds": 10}),),
        ((("polling",), {"minIntervalSeconds": None, "maxIntervalSeconds": 0}),),
    ]
    return edits


EDITS = _edits()
_RANDOM_EDITS: list[tuple[Path, st.SearchStrategy[Any]]] = [
    (("actionTypeId",), action_type_ids()),
    (("actionTypeId", "provider"), _name_like(35)),
    (("actionTypeId", "version"), _name_like(9)),
    (("queryParam",), query_params()),
    (("region",), regions()),
    (("roleArn",), role_arns()),
    (("maxInFlight",), _integer_field(1, MAX_IN_FLIGHT_LIMIT)),
    (("maxBatchSize",), _integer_field(1, MAX_BATCH_SIZE_LIMIT)),
    (("polling",), pollings()),
    (("jobTemplate",), job_templates()),
]


@st.composite
def edits(draw: st.DrawFn) -> Edit:
    if draw(st.integers(0, 3)) == 0:  # now and then a value drawn from a field's full range
        where, values = draw(st.sampled_from(_RANDOM_EDITS))
        return ((where, draw(values)),)
    return draw(st.sampled_from(EDITS))


def apply_edit(spec: dict[str, Any], edit: Edit) -> None:
    for where, value in edit:
        _apply(spec, where, value)


def _apply(spec: dict[str, Any], where: tuple[str, ...], value: Any) -> None:
    target: Any = spec
    for key in where[:-1]:
        if not isinstance(target, dict):
            return
        target = target.setdefault(key, {})
    if not isinstance(target, dict):
        return
    if value is ABSENT:
        target.pop(where[-1], None)
    else:
        target[where[-1]] = value


@st.composite
def mutated_specs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid spec with one or two edits (or none)."""
    spec = draw(valid_specs())
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2]))):
        apply_edit(spec, draw(edits()))
    return spec


def worker_specs() -> st.SearchStrategy[dict[str, Any]]:
    """A CustomActionWorker `.spec`, valid or not (mostly one rule away from valid)."""
    return st.one_of(mutated_specs(), mutated_specs(), mutated_specs(), wild_specs())
