"""hypothesis strategies for hostile CodePipeline job data (what PollForJobs could hand out).

`hostile_jobs()` starts from a complete job (tests/unit/operator/samples.py RAW_JOB) and then
removes members, sets members to hostile values (huge, shell metacharacters, newlines, NUL,
unpaired surrogates, unicode, wrong JSON types), replaces the configuration with hostile names
and values, and puts up to 100 input artifacts in. `keep_identity=True` keeps the job's id,
nonce and `data` object, so that the claimer can acknowledge and report it.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

from tests.unit.operator import samples

SHELL = [
    "$(touch /tmp/cpworker-pwned)",
    "`touch /tmp/cpworker-pwned`",
    "; rm -rf / #",
    "a && b || c | d > e < f",
    "'\"\\",
    "$HOME ${PATH} $1",
    "$(CPWORKER_JOB_ID)",
    "$(AWS_SHARED_CREDENTIALS_FILE)",
    "$$",
    "price: $$5",
    "$(",
    "a$",
    "%s%n{}{{}}",
]
LINES = ["\n", "\r\n", "line one\nline two", "\t", "\x1b[31mred\x1b[0m", " leading", "trailing "]
UNICODE = ["é", "日本語", "🦄", "\u202e", "\u200b", "\ufeff", "A\u0308", "Ω≈ç√"]
UNCARRIABLE = ["\x00", "a\x00b", "\ud800", "x\udfffy"]
WRONG_TYPES: list[Any] = [None, True, 0, -1, 2**64, 1.5, [], {}, ["a"], {"a": "b"}]

# Members of RAW_JOB that hostile values go into (dict keys, or a list index).
PATHS: list[tuple[str | int, ...]] = [
    ("id",),
    ("nonce",),
    ("accountId",),
    ("data",),
    ("data", "actionTypeId"),
    ("data", "actionTypeId", "provider"),
    ("data", "actionConfiguration"),
    ("data", "actionConfiguration", "configuration"),
    ("data", "pipelineContext"),
    ("data", "pipelineContext", "pipelineName"),
    ("data", "pipelineContext", "stage", "name"),
    ("data", "pipelineContext", "action", "name"),
    ("data", "pipelineContext", "action", "actionExecutionId"),
    ("data", "pipelineContext", "pipelineExecutionId"),
    ("data", "pipelineContext", "pipelineArn"),
    ("data", "inputArtifacts"),
    ("data", "inputArtifacts", 0, "name"),
    ("data", "inputArtifacts", 0, "revision"),
    ("data", "inputArtifacts", 0, "location", "s3Location", "bucketName"),
    ("data", "inputArtifacts", 0, "location", "s3Location", "objectKey"),
    ("data", "outputArtifacts", 0, "name"),
    ("data", "artifactCredentials"),
    ("data", "artifactCredentials", "secretAccessKey"),
    ("data", "encryptionKey", "id"),
]
IDENTITY = {("id",), ("nonce",), ("accountId",), ("data",)}


def hostile_text(*, max_size: int = 60) -> st.SearchStrategy[str]:
    """Short hostile strings, drawn text (any code point, surrogates included), and huge."""
    return st.one_of(
        st.sampled_from(SHELL + LINES + UNICODE + UNCARRIABLE),
        st.text(st.characters(codec=None), min_size=1, max_size=max_size),
        st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=max_size),
        st.integers(1, 3).map(lambda n: "x" * (1000 * n + 1)),
        st.just("y" * 100_000),
    )


def hostile_values() -> st.SearchStrategy[Any]:
    return st.one_of(hostile_text(), st.sampled_from(WRONG_TYPES))


@st.composite
def _artifact(draw: st.DrawFn) -> dict[str, Any]:
    artifact: dict[str, Any] = copy.deepcopy(samples.RAW_JOB["data"]["inputArtifacts"][0])
    if draw(st.booleans()):
        artifact["name"] = draw(hostile_text(max_size=20))
    return artifact


def _set(job: dict[str, Any], path: tuple[str | int, ...], value: Any, *, delete: bool) -> None:
    node: Any = job
    for part in path[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return  # an earlier edit removed or replaced it
    last = path[-1]
    try:
        if delete:
            del node[last]
        else:
            node[last] = value
    except (KeyError, IndexError, TypeError):
        return


@st.composite
def hostile_jobs(draw: st.DrawFn, *, keep_identity: bool = False) -> dict[str, Any]:
    job = samples.raw_job(id=str(draw(st.uuids())))
    paths = [p for p in PATHS if not (keep_identity and p in IDENTITY)]
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(paths))
        _set(job, path, draw(hostile_values()), delete=draw(st.booleans()))
    if draw(st.booleans()) and isinstance(job.get("data"), dict):
        configuration = draw(
            st.dictionaries(hostile_text(max_size=60), hostile_text(), max_size=12)
        )
        job["data"]["actionConfiguration"] = {"configuration": configuration}
    if draw(st.integers(0, 4)) == 0 and isinstance(job.get("data"), dict):
        job["data"]["inputArtifacts"] = draw(st.lists(_artifact(), min_size=6, max_size=100))
    return job
