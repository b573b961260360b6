"""The Helm commands in docs/install.md use values the chart accepts and that do what the
text says (parsed with Helm's own --set parser, then rendered)."""

from __future__ import annotations

import itertools
import re
import shlex
from typing import Any

import helm_python as helm
import pytest

from tests.integration.helm.chart import REPO_ROOT, manifests, one

INSTALL_DOC = REPO_ROOT / "docs" / "install.md"


def _helm_commands() -> list[list[str]]:
    text = INSTALL_DOC.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL):
        for command in block.replace("\\\n", " ").splitlines():
            words = shlex.split(command, comments=True)
            if words[:1] == ["helm"]:
                commands.append(words)
    return commands


def _merge(target: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value
    return target


def values_of(words: list[str]) -> dict[str, Any]:
    parsers = {"--set": helm.parse_set_string, "--set-string": helm.parse_set_string_values}
    values: dict[str, Any] = {}
    for flag, argument in itertools.pairwise(words):
        if flag in parsers:
            _merge(values, parsers[flag](argument))
    return values


COMMANDS = _helm_commands()


def test_the_docs_have_helm_commands() -> None:
    assert len(COMMANDS) >= 3


@pytest.mark.parametrize("words", COMMANDS, ids=[" ".join(w[:3]) for w in COMMANDS])
def test_documented_helm_command_renders(chart: helm.Chart, words: list[str]) -> None:
    assert "./helm/cpworker" in words
    values = values_of(words)
    chart.validate_schema(values)
    assert one(manifests(chart, values), "Deployment")


def test_documented_irsa_command_annotates_the_service_account(chart: helm.Chart) -> None:
    (words,) = [w for w in COMMANDS if any("role-arn" in word for word in w)]
    account = one(manifests(chart, values_of(words)), "ServiceAccount")
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/cpworker"
    }
