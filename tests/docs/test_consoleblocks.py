"""The console-block checker itself: parsing, markers, and what "in substance" lets through."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.consoleblocks import BlockError, blocks, first_mismatch, matches

TABLE = """\
NAME       READY   REASON    IN-FLIGHT   SUCCEEDED   FAILED   LAST POLL   AGE
build      True    Polling   0           1           0        3s          2m10s
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "doc.md"
    path.write_text(text)
    return path


def test_commands_continuations_output_and_exit_status(tmp_path: Path) -> None:
    doc = _write(
        tmp_path,
        "intro\n\n```console\n$ kubectl get caw -n ci \\\n    -o wide\nNAME  READY\n\n"
        "$ cpworker check\n  FAIL  worker ci/x\n[exit status 1]\n```\n",
    )
    (block,) = blocks(doc)
    assert block.line == 3
    assert block.runnable
    first, second = block.commands
    assert first.text == "kubectl get caw -n ci \\\n    -o wide"
    assert first.expected == ("NAME  READY",)
    assert first.exit_status == 0
    assert second.expected == ("  FAIL  worker ci/x",)
    assert second.exit_status == 1


def test_indented_blocks_in_lists(tmp_path: Path) -> None:
    doc = _write(tmp_path, "- step\n\n  ```console\n  $ echo hi\n  hi\n  ```\n")
    (block,) = blocks(doc)
    assert block.commands[0].text == "echo hi"
    assert block.commands[0].expected == ("hi",)


def test_markers(tmp_path: Path) -> None:
    doc = _write(
        tmp_path,
        "<!-- needs: real-cluster, aws-account -->\n```console\n$ helm install x\n```\n"
        "```console\n$ echo run me\n```\n",
    )
    marked, unmarked = blocks(doc)
    assert marked.needs == ("real-cluster", "aws-account")
    assert not marked.runnable
    assert unmarked.runnable


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("```console\nmake test\n```\n", "starts with a `\\$ ` command", 1),
        ("```console\n```\n", "at least one `\\$ ` command", 1),
        ("<!-- needs: a-laptop -->\n```console\n$ x\n```\n", "unknown marker", 2),
        ("<!-- needs: real-cluster -->\n```sh\nx\n```\n", "right before a ```console", 1),
    ],
)
def test_what_the_checker_refuses(tmp_path: Path, text: str, message: str, line: int) -> None:
    with pytest.raises(BlockError, match=message) as refused:
        list(blocks(_write(tmp_path, text)))
    assert f"doc.md:{line}:" in str(refused.value)


def test_other_blocks_are_left_alone(tmp_path: Path) -> None:
    doc = _write(tmp_path, "```sh\nmake test\n```\n```yaml\na: 1\n```\n")
    assert list(blocks(doc)) == []


def test_a_table_matches_with_other_counts_and_ages() -> None:
    shown = [
        "NAME         READY   REASON    IN-FLIGHT   SUCCEEDED   FAILED   LAST POLL   AGE",
        "build        True    Polling   3           118         2        4s          9d",
    ]
    assert matches(shown, TABLE)


@pytest.mark.parametrize(
    "shown",
    [
        "build        False   Polling   0   1   0   3s   2m",  # another Ready
        "build        True    Throttled 0   1   0   3s   2m",  # another reason
        "deploy       True    Polling   0   1   0   3s   2m",  # another worker
        "build        True    Polling   0   1   0   3s",  # a column fewer
    ],
)
def test_substance_is_not_lost(shown: str) -> None:
    assert first_mismatch([shown], TABLE) == shown


def test_order_and_presence_of_lines() -> None:
    output = "one\ntwo\nthree\n"
    assert matches(["one", "three"], output)
    assert not matches(["three", "one"], output)
    assert not matches(["four"], output)
    assert matches([], output)


def test_ellipsis_and_variable_values() -> None:
    output = (
        "customactionworker.cpworker.io/build condition met\n"
        "Kubernetes Job ci/cpw-55a1851f-4731-480b-b2ee-38662089edd4 succeeded\n"
        "operator metrics: http://127.0.0.1:46787/metrics\n"
        "lastTransitionTime: 2026-12-02T10:00:03Z\n"
    )
    assert matches(["Kubernetes Job ci/cpw-... succeeded"], output)
    assert matches(["Kubernetes Job ci/cpw-0fd2f17a-2b75-4275-890a-0bf8f3af23e9 succeeded"], output)
    assert matches(["operator metrics: http://127.0.0.1:8080/metrics"], output)
    assert matches(["lastTransitionTime: 2026-11-29T08:00:00Z"], output)
    assert matches(["... condition met"], output)
    assert not matches(["Kubernetes Job default/cpw-... succeeded"], output)
    assert not matches(["... condition not met"], output)
