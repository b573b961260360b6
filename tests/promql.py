"""Which metrics does a PromQL expression read, and which does the operator export?

`metric_names` is a small tokenizer, not a full parser: it skips strings, label matchers
(`{...}`), ranges and subqueries (`[...]`), label lists after by/without/on/ignoring/
group_left/group_right, function and aggregation names (an identifier before `(`), keywords
and numbers, and answers the identifiers left: the metric selectors. That is enough for the
expressions in the chart's alerts and the dashboard, which `promtool check rules` parses for
real (tests/integration/helm/test_alerts.py, test_dashboard.py).
"""

from __future__ import annotations

import re
from typing import Final

from prometheus_client import CollectorRegistry

_KEYWORDS: Final = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or"}
    | {"unless", "offset", "inf", "nan", "start", "end"}
)
# Aggregation operators may be followed by `by (...)` rather than by their parenthesis.
_AGGREGATIONS: Final = frozenset(
    {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values"}
    | {"bottomk", "topk", "quantile", "limitk", "limit_ratio"}
)
_LABEL_LISTS: Final = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_TOKEN: Final = re.compile(
    r"""(?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
      | (?P<braces>\{[^}]*\})
      | (?P<brackets>\[[^\]]*\])
      | (?P<number>\d+(?:\.\d+)?(?:e[+-]?\d+)?(?:ms|s|m|h|d|w|y)?)
      | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
      | (?P<paren>\()
      | (?P<other>\S)""",
    re.VERBOSE,
)
# Suffixes each metric type adds to its family name in the exposition.
_SUFFIXES: Final = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created", ""),
    "gauge": ("",),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}


def metric_names(expression: str) -> set[str]:
    """The metric names an expression selects."""
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(expression)]
    names: set[str] = set()
    index = 0
    while index < len(tokens):
        kind, text = tokens[index]
        following = tokens[index + 1][1] if index + 1 < len(tokens) else ""
        index += 1
        if kind != "ident" or text in _KEYWORDS | _AGGREGATIONS or following == "(":
            if text in _LABEL_LISTS and following == "(":
                index = _after_parentheses(tokens, index)
            continue
        names.add(text)
    return names


def _after_parentheses(tokens: list[tuple[str | None, str]], start: int) -> int:
    """The index after the parenthesised group that opens at `start`."""
    depth = 0
    for index in range(start, len(tokens)):
        depth += tokens[index][1] == "("
        depth -= tokens[index][1] == ")"
        if depth == 0:
            return index + 1
    return len(tokens)


def exported_series(registry: CollectorRegistry) -> set[str]:
    """Every series name the registry's collectors can expose, whether or not a labelled
    metric has a child yet (its family's type says which suffixes it will carry)."""
    names: set[str] = set()
    for family in registry.collect():
        names |= {sample.name for sample in family.samples}
        names |= {family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",))}
    return names
