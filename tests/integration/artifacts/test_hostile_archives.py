"""The hostile corpus, uploaded as input artifacts and pulled: each refused with its message,
nothing written outside the artifact's directory, nothing of it kept."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.artifacts.pod import Pod, canary_credentials, make_job
from tests.unit.artifacts.archives import HOSTILE

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

FLAGS = {"max_total_bytes": "--max-total-bytes", "max_files": "--max-files"}


def files_below(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("case", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_input_is_refused(pod: Pod, s3_client: S3Client, case: Any) -> None:
    data, _ = make_job(s3_client, inputs={"Source": case.build()}, outputs=["Out"])
    pod.volume.publish_job(data)
    pod.volume.publish_credentials(canary_credentials())
    before = files_below(pod.root)
    flags = [part for name, value in case.limits.items() for part in (FLAGS[name], str(value))]
    pulled = pod.run("pull", *flags)
    assert pulled.returncode == 1, pulled.stderr
    failure = pod.report().failure
    assert failure is not None
    assert failure.type == "JobFailed"
    assert case.message in failure.message
    assert "'Source'" in failure.message
    # Only the input directory appeared, empty (the download and the partial tree are gone),
    # plus the termination message; no output directories were prepared for a failed pull.
    assert files_below(pod.root) - before == {"workspace", "workspace/in", "termination-log"}
    assert not Path("/tmp/cpworker-absolute-escape.txt").exists()
