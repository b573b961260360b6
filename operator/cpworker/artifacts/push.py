"""`cpworker artifacts push`: each output directory zipped and uploaded, matched by name.

For each output artifact NAME of the job: zip `OUTPUT_DIR/NAME/` into
`OUTPUT_DIR/.cpworker-NAME.zip` (packing.py), upload it to that artifact's own S3 location with
SSE-KMS (the job's encryption key when it has one, else the AWS-managed key), delete the zip.
Outputs are found by name, never by position; a directory in OUTPUT_DIR that names no output
artifact is left alone (with a warning), and a missing one fails the push: an output that was
never written must not pass as an empty success.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Final

from cpworker.artifacts.failures import ArtifactFailure
from cpworker.artifacts.jobfile import location_of, read_job
from cpworker.artifacts.packing import pack
from cpworker.artifacts.progress import log_event
from cpworker.artifacts.safe_target import shown
from cpworker.artifacts.settings import HelperSettings
from cpworker.artifacts.transfer import ArtifactStore
from cpworker.jobdata import Artifact

logger = logging.getLogger(__name__)

ARCHIVE_PREFIX: Final = ".cpworker-"


def _source(output_dir: Path, artifact: Artifact) -> Path:
    source = output_dir / artifact.name
    if source.is_symlink() or not source.is_dir():
        what = "is a link" if source.is_symlink() else "is missing or not a directory"
        raise ArtifactFailure(
            "JobFailed",
            f"Output artifact {artifact.name!r}: {source} {what}. The job's containers must "
            f"write the artifact's files into $CPWORKER_OUTPUT_DIR/{artifact.name}/ (the "
            "directory exists, empty, when they start) and leave the directory itself in "
            "place.",
        )
    return source


def _push_one(
    store: ArtifactStore, artifact: Artifact, output_dir: Path, kms_key_id: str | None
) -> None:
    location = location_of(artifact, "output")
    source = _source(output_dir, artifact)
    archive = output_dir / f"{ARCHIVE_PREFIX}{artifact.name}.zip"
    started = time.monotonic()
    with contextlib.suppress(FileNotFoundError):
        archive.unlink()  # left over by an earlier, interrupted push
    try:
        packed = pack(source, archive, artifact.name)
        log_event(
            "packed",
            artifact=artifact.name,
            files=packed.files,
            directories=packed.directories,
            links=packed.links,
            skipped=packed.skipped,
            bytes=packed.bytes_read,
            archive_bytes=archive.stat().st_size,
            seconds=time.monotonic() - started,
        )
        store.upload(archive, location, artifact=artifact.name, kms_key_id=kms_key_id)
    finally:
        with contextlib.suppress(FileNotFoundError):
            archive.unlink()


def _warn_about_strays(output_dir: Path, names: set[str]) -> None:
    with contextlib.suppress(OSError):
        for child in sorted(output_dir.iterdir()):
            if child.name not in names and not child.name.startswith(ARCHIVE_PREFIX):
                logger.warning(
                    "%s in %s names no output artifact of this job (outputs: %s); not uploaded",
                    shown(child.name),
                    output_dir,
                    ", ".join(sorted(names)) or "none",
                )


def push(settings: HelperSettings) -> None:
    """Upload every output artifact; ArtifactFailure at the first one that fails."""
    job = read_job(settings.job_file)
    started = time.monotonic()
    kms_key_id = job.encryption_key.id if job.encryption_key else None
    if job.output_artifacts:
        with ArtifactStore(settings) as store:
            for artifact in job.output_artifacts:
                _push_one(store, artifact, settings.output_dir, kms_key_id)
    _warn_about_strays(settings.output_dir, {a.name for a in job.output_artifacts})
    log_event(
        "push finished",
        outputs=len(job.output_artifacts),
        seconds=time.monotonic() - started,
    )
