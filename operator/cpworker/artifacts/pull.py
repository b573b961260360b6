"""`cpworker artifacts pull`: the job's inputs on disk, its output directories ready.

For each input artifact NAME: download the object (streamed to `INPUT_DIR/.cpworker-NAME.download`),
tell its format by content, extract it safely into `INPUT_DIR/NAME/` (or, for a file that is no
archive, move it there under the last segment of its object key), then delete the download.
For each output artifact NAME: create `OUTPUT_DIR/NAME/`, empty and writable by every user of
the pod (the job's containers may run as another uid than the helper).

A failure removes what the failing artifact had extracted: a rejected archive leaves nothing.
"""

from __future__ import annotations

import contextlib
import posixpath
import shutil
import time
from pathlib import Path
from typing import Final

from cpworker.artifacts.extraction import extract
from cpworker.artifacts.failures import ArtifactFailure
from cpworker.artifacts.formats import ArchiveFormat, detect
from cpworker.artifacts.jobfile import location_of, read_job
from cpworker.artifacts.limits import ExtractionBudget
from cpworker.artifacts.progress import log_event
from cpworker.artifacts.settings import HelperSettings
from cpworker.artifacts.transfer import ArtifactStore
from cpworker.jobdata import Artifact

DOWNLOAD_PREFIX: Final = ".cpworker-"
INPUT_DIRECTORY_MODE: Final = 0o755
# World-writable: the pod is the job's alone, and its containers may run as any uid.
OUTPUT_DIRECTORY_MODE: Final = 0o777


def single_file_name(object_key: str, artifact: str) -> str:
    """The file name a non-archive input gets: its key's last segment (else the artifact name)."""
    name = posixpath.basename(object_key.rstrip("/"))
    return name if name not in {"", ".", ".."} else artifact


def _empty_directory(path: Path, mode: int) -> None:
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        if path.is_symlink() or not path.is_dir() or any(path.iterdir()):
            raise ArtifactFailure(
                "ConfigurationError",
                f"{path} already exists and is not an empty directory; the artifact helper "
                "only writes into fresh directories (spec.artifacts.inputDir/outputDir should "
                "be empty when the pod starts).",
            ) from None
    path.chmod(mode)


def _pull_one(
    store: ArtifactStore, artifact: Artifact, input_dir: Path, budget: ExtractionBudget
) -> None:
    location = location_of(artifact, "input")
    target = input_dir / artifact.name
    download = input_dir / f"{DOWNLOAD_PREFIX}{artifact.name}.download"
    started = time.monotonic()
    _empty_directory(target, INPUT_DIRECTORY_MODE)
    try:
        size = store.download(location, download, artifact=artifact.name)
        fmt = detect(download)
        if fmt is ArchiveFormat.SINGLE_FILE:
            meter = budget.archive(artifact.name, size)
            meter.entry()
            meter.write(size)
            name = single_file_name(location.object_key, artifact.name)
            download.replace(target / name)
            (target / name).chmod(0o644)
        else:
            meter = extract(download, fmt, target, artifact.name, budget)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            download.unlink()
    log_event(
        "extracted",
        artifact=artifact.name,
        format=str(fmt),
        entries=meter.entries,
        bytes=meter.bytes_written,
        archive_bytes=size,
        seconds=time.monotonic() - started,
        target=target,
    )


def pull(settings: HelperSettings) -> None:
    """Pull every input artifact and prepare every output directory; ArtifactFailure if not."""
    job = read_job(settings.job_file)
    started = time.monotonic()
    budget = ExtractionBudget(settings.limits())
    if job.input_artifacts:
        settings.input_dir.mkdir(parents=True, exist_ok=True)
        with ArtifactStore(settings) as store:
            for artifact in job.input_artifacts:
                _pull_one(store, artifact, settings.input_dir, budget)
    for artifact in job.output_artifacts:
        _empty_directory(settings.output_dir / artifact.name, OUTPUT_DIRECTORY_MODE)
    log_event(
        "pull finished",
        inputs=len(job.input_artifacts),
        outputs=len(job.output_artifacts),
        entries=budget.entries,
        bytes=budget.bytes_written,
        seconds=time.monotonic() - started,
    )
