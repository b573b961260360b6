"""The ```console blocks of the Markdown docs: found, parsed, and their output compared.

A console block is a terminal session: lines starting with `$ ` are commands (a line ending
in `\\` continues on the next), the lines after a command are what it prints. A block is run by
tests/docs/test_console_blocks.py against the sandbox unless the line right before its fence
is a marker naming what it needs that the sandbox cannot give:

    <!-- needs: real-cluster -->      a Kubernetes cluster with nodes, images, the Helm CLI
    <!-- needs: aws-account -->       real AWS (EKS, IAM, CodePipeline in your account)
    <!-- needs: container-engine -->  docker or podman, a registry

(several: `<!-- needs: real-cluster, aws-account -->`). A snippet that is not a session (no
prompts, placeholders to fill in) belongs in a ```sh block, which nothing runs.

Output is compared "in substance" (`matches`): every shown line must appear in the actual
output, in order, other lines may come between; whitespace runs are one space; numbers, ages
and durations (`4s`, `9d`, `2m3s`), RFC 3339 times, UUIDs and long hex ids, and loopback ports
match any value of their kind; `...` inside a line matches anything. A last shown line
`[exit status N]` means the command must exit N (otherwise it must exit 0).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

NEEDS: Final = {
    "real-cluster": "a Kubernetes cluster with nodes, images and the Helm CLI",
    "aws-account": "a real AWS account (EKS, IAM, CodePipeline)",
    "container-engine": "docker or podman and a registry",
}
PROMPT: Final = "$ "
MARKER: Final = re.compile(r"^<!--\s*needs:\s*(?P<needs>[a-z, -]+?)\s*-->$")
FENCE: Final = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)(?P<info>[^`]*)$")
EXIT: Final = re.compile(r"^\[exit status (?P<code>\d+)\]$")


class BlockError(ValueError):
    """A console block that cannot be checked; the message says where and what to do."""


@dataclass(frozen=True)
class Command:
    """One `$` command of a block, with the output the doc shows for it."""

    text: str
    expected: tuple[str, ...]
    exit_status: int = 0


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    needs: tuple[str, ...]
    commands: tuple[Command, ...] = field(default=())

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def runnable(self) -> bool:
        return not self.needs


def _marker(lines: Sequence[str], fence_index: int, where: str) -> tuple[str, ...]:
    """What the marker right before the fence (blank lines between allowed) says it needs."""
    index = fence_index - 1
    while index >= 0 and not lines[index].strip():
        index -= 1
    if index < 0:
        return ()
    match = MARKER.match(lines[index].strip())
    if match is None:
        return ()
    needs = tuple(part.strip() for part in match["needs"].split(",") if part.strip())
    unknown = sorted(set(needs) - set(NEEDS))
    if unknown:
        raise BlockError(
            f"{where}: unknown marker value(s) {unknown}; use one of {sorted(NEEDS)} "
            "(tests/docs/consoleblocks.py)"
        )
    return needs


def parse_commands(body: Sequence[str], where: str) -> tuple[Command, ...]:
    """The block's commands, their continuation lines joined, each with its shown output."""
    commands: list[Command] = []
    text: list[str] | None = None
    shown: list[str] = []
    continuing = False

    def close() -> None:
        if text is None:
            return
        expected = [line.rstrip() for line in shown if line.strip()]
        status = 0
        if expected and (match := EXIT.match(expected[-1].strip())):
            status = int(match["code"])
            expected = expected[:-1]
        commands.append(Command("\n".join(text), tuple(expected), status))

    for line in body:
        if continuing:
            assert text is not None
            text.append(line)
            continuing = line.rstrip().endswith("\\")
            continue
        if line.startswith(PROMPT) or line.rstrip() == PROMPT.strip():
            close()
            text, shown = [line[len(PROMPT) :]], []
            continuing = line.rstrip().endswith("\\")
        elif text is None:
            if line.strip():
                raise BlockError(
                    f"{where}: a console block starts with a `$ ` command; for a snippet "
                    "without prompts use ```sh"
                )
        else:
            shown.append(line)
    close()
    if not commands:
        raise BlockError(
            f"{where}: a console block shows at least one `$ ` command; for a snippet without "
            "prompts use ```sh"
        )
    return tuple(commands)


def blocks(path: Path, display: Path | None = None) -> Iterator[Block]:
    """Every ```console block of a Markdown file (fences may be indented, as in lists)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    name = display or path
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            if MARKER.match(lines[index].strip()):
                _check_marker_target(lines, index, name)
            index += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        if opening["info"].strip().split(" ")[0] == "console":
            where = f"{name}:{index + 1}"
            body = [line.removeprefix(indent) for line in lines[index + 1 : end]]
            yield Block(
                path=name,
                line=index + 1,
                needs=_marker(lines, index, where),
                commands=parse_commands(body, where),
            )
        index = end + 1


def _check_marker_target(lines: Sequence[str], index: int, name: Path) -> None:
    """A marker must stand right before a console block: anywhere else it marks nothing."""
    following = index + 1
    while following < len(lines) and not lines[following].strip():
        following += 1
    fence = FENCE.match(lines[following]) if following < len(lines) else None
    if fence is None or fence["info"].strip().split(" ")[0] != "console":
        raise BlockError(
            f"{name}:{index + 1}: a `needs:` marker must stand right before a ```console block"
        )


# --- Output "in substance" -----------------------------------------------------------------

_AGE = re.compile(r"^\d+(\.\d+)?(ms|s|m|h|d|y)(\d+(s|m|h|d))?$")
_NUMBER = re.compile(r"^[-+]?\d+(\.\d+)?([eE][-+]?\d+)?%?$")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX = re.compile(r"(?<![0-9A-Za-z])[0-9a-f]{12,}(?![0-9A-Za-z])")
_PORT = re.compile(r"(127\.0\.0\.1|localhost):\d+")
ELLIPSIS: Final = "..."


def _token(token: str) -> str:
    if token == ELLIPSIS:
        return token
    if _AGE.match(token):
        return "<age>"
    if _NUMBER.match(token):
        return "<n>"
    token = _TIME.sub("<time>", token)
    token = _UUID.sub("<id>", token)
    token = _HEX.sub("<id>", token)
    return _PORT.sub(r"\1:<port>", token)


def normalise(line: str) -> list[str]:
    """A line as the comparison sees it: tokens, variable ones replaced by their kind."""
    tokens = []
    for token in line.split():
        if ELLIPSIS in token and token != ELLIPSIS:
            # `foo...` and `...bar`: the ellipsis stands apart from the literal part.
            parts = token.split(ELLIPSIS)
            for i, part in enumerate(parts):
                if part:
                    tokens.append(_token(part))
                if i < len(parts) - 1:
                    tokens.append(ELLIPSIS)
        else:
            tokens.append(_token(token))
    return tokens


def _line_matches(expected: list[str], actual: list[str]) -> bool:
    if ELLIPSIS not in expected:
        return expected == actual
    parts: list[str] = []
    for token in expected:
        if token == ELLIPSIS:
            parts.append(".*")
        else:
            if parts and parts[-1] != ".*":
                parts.append(" ")
            parts.append(re.escape(token))
    return re.fullmatch("".join(parts), " ".join(actual), re.DOTALL) is not None


def first_mismatch(expected: Sequence[str], actual: str) -> str | None:
    """None when `actual` shows every `expected` line in substance, in order; else the first
    expected line it does not show."""
    lines = [normalise(line) for line in actual.splitlines() if line.strip()]
    position = 0
    for wanted in expected:
        tokens = normalise(wanted)
        if tokens == [ELLIPSIS]:
            continue
        while position < len(lines) and not _line_matches(tokens, lines[position]):
            position += 1
        if position == len(lines):
            return wanted
        position += 1
    return None


def matches(expected: Sequence[str], actual: str) -> bool:
    return first_mismatch(expected, actual) is None
