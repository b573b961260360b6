"""`cpworker artifacts pull|push`: the in-pod artifact helper's command line.

    cpworker artifacts pull                     # inputs extracted, output directories created
    cpworker artifacts push                     # outputs zipped and uploaded
    cpworker artifacts push --wait-for-sigterm  # as a sidecar: push when the kubelet stops it
    cpworker artifacts pull --wait-for-push     # ... and wait until that sidecar is ready

Why the handshake: a native sidecar without a startup probe counts as started the moment its
process exists, so the job's containers may start, finish, and have the kubelet stop the push
sidecar before Python has installed its SIGTERM handler: the default action kills it (143)
and nothing is uploaded. The operator therefore starts the push sidecar *before* pull; push
writes `OUTPUT_DIR/.cpworker-push-ready` once its handler is in place, and pull, an ordinary
init container that everything after it waits for, ends only when it has seen that file (and
removes it, so the job's containers find their output directories as the contract says).

Everything has a default from the pod's environment (docs/job-contract.md), so in a job pod the
bare commands do the right thing; flags override it. Exit status: 0 done, 1 failed (the failure
report is in the termination message file), 2 unusable settings (reported likewise).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from cpworker import logging_setup
from cpworker.artifacts.failures import DEFAULT_RESULT_FILE, ArtifactFailure, write_report
from cpworker.artifacts.progress import log_event
from cpworker.artifacts.settings import (
    HelperSettings,
    HelperSettingsError,
    load_helper_settings,
    variable_names,
)

logger = logging.getLogger("cpworker.artifacts")

EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
PUSH_READY_FILE: Final = ".cpworker-push-ready"
_READY_POLL_SECONDS: Final = 0.05
# Flags with a value, as settings field names (each also read from its environment variable).
_VALUE_FLAGS: Final = (
    ("job_file", Path),
    ("credentials_file", Path),
    ("input_dir", Path),
    ("output_dir", Path),
    ("result_file", Path),
    ("region", str),
    ("max_total_bytes", int),
    ("max_files", int),
    ("max_compression_ratio", int),
    ("credentials_wait_seconds", float),
    ("max_bandwidth", int),
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cpworker artifacts",
        description="Move a CodePipeline job's artifacts in its Kubernetes pod: pull extracts "
        "the input artifacts and prepares the output directories, push zips and uploads the "
        "outputs (SSE-KMS).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{pull,push}")
    pull = commands.add_parser("pull", help="download and safely extract the input artifacts")
    push = commands.add_parser("push", help="zip and upload the output artifacts")
    push.add_argument(
        "--wait-for-sigterm",
        action="store_true",
        help="wait for SIGTERM (a native sidecar is stopped after the job's containers "
        f"exited), then push; OUTPUT_DIR/{PUSH_READY_FILE} says it is waiting",
    )
    pull.add_argument(
        "--wait-for-push",
        action="store_true",
        help=f"after pulling, wait until the push sidecar is ready (OUTPUT_DIR/{PUSH_READY_FILE}"
        ", at most CPWORKER_ARTIFACTS_PUSH_READY_SECONDS) and remove that file",
    )
    for command in (pull, push):
        for field, kind in _VALUE_FLAGS:
            info = HelperSettings.model_fields[field]
            command.add_argument(
                f"--{field.replace('_', '-')}",
                dest=field,
                type=kind,
                default=None,
                help=f"{info.description} (env {', '.join(variable_names(field))})",
            )
        command.add_argument(
            "--log-format", dest="log_format", choices=["json", "text"], default=None
        )
    return parser


def _result_file(args: argparse.Namespace) -> Path:
    chosen = args.result_file or os.environ.get("CPWORKER_RESULT_FILE")
    return Path(chosen) if chosen else DEFAULT_RESULT_FILE


STOP_SIGNALS: Final = frozenset({signal.SIGTERM, signal.SIGINT})


def wait_for_sigterm(announce: Callable[[], None] | None = None) -> None:
    """Block until SIGTERM or SIGINT arrives (later ones are ignored: the push is under way).

    Taken synchronously (sigwait on the blocked signals), not by a handler: a handler that
    sets a threading.Event deadlocks when the signal lands while the main thread holds the
    Event's lock inside wait(), and the kubelet's SIGTERM may come the moment the ready file
    exists (a job that takes no time). Blocked before the announcement, so that none is lost.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        if announce is not None:
            announce()
        signal.sigwait(STOP_SIGNALS)
    finally:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def announce_ready(settings: HelperSettings) -> None:
    """The push sidecar's SIGTERM handler is in place: say so to pull (see the module doc)."""
    log_event("waiting for SIGTERM before pushing")
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    (settings.output_dir / PUSH_READY_FILE).write_text("ready\n", encoding="utf-8")


def wait_for_push(settings: HelperSettings) -> None:
    """Wait until the push sidecar announced itself; ArtifactFailure when it never does."""
    ready = settings.output_dir / PUSH_READY_FILE
    started = time.monotonic()
    deadline = started + settings.push_ready_seconds
    while not ready.exists():
        if time.monotonic() >= deadline:
            raise ArtifactFailure(
                "ConfigurationError",
                f"The artifact upload container (cpworker-push) did not get ready within "
                f"{settings.push_ready_seconds:g} s ({ready} never appeared), so the job's "
                "outputs could not be uploaded. Its log says why (kubectl logs POD -c "
                "cpworker-push): an image without cpworker, or unusable settings.",
            )
        time.sleep(_READY_POLL_SECONDS)
    ready.unlink(missing_ok=True)
    log_event("push sidecar ready", seconds=time.monotonic() - started)


def run(command: str, settings: HelperSettings) -> None:
    """Run one command; ArtifactFailure when it cannot finish. Imports boto3 only now."""
    if command == "pull":
        from cpworker.artifacts.pull import pull  # noqa: PLC0415 - keep an idle sidecar small

        pull(settings)
    else:
        from cpworker.artifacts.push import push  # noqa: PLC0415 - keep an idle sidecar small

        push(settings)


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    overrides = {field: getattr(args, field) for field, _ in _VALUE_FLAGS}
    overrides["log_format"] = args.log_format
    try:
        settings = load_helper_settings(overrides)
    except HelperSettingsError as error:
        print(f"cpworker artifacts: {error}", file=sys.stderr)  # noqa: T201 - before logging
        write_report(_result_file(args), ArtifactFailure("ConfigurationError", str(error)))
        return EXIT_USAGE
    handler = logging_setup.configure(settings.log_format)
    # botocore's INFO lines (where it found the endpoint) are not the helper's progress.
    logging.getLogger("botocore").setLevel(logging.WARNING)
    try:
        return _run_and_report(args, settings)
    finally:
        logging.getLogger().removeHandler(handler)  # for callers in the same process (tests)


def _run_and_report(args: argparse.Namespace, settings: HelperSettings) -> int:
    try:
        if getattr(args, "wait_for_sigterm", False):
            wait_for_sigterm(lambda: announce_ready(settings))
        run(args.command, settings)
        if getattr(args, "wait_for_push", False):
            wait_for_push(settings)
    except ArtifactFailure as failure:
        logger.error("%s failed: %s: %s", args.command, failure.failure_type, failure.message)  # noqa: TRY400 - the message is the report
        write_report(settings.result_file, failure)
        return EXIT_FAILED
    except Exception as error:
        logger.exception("%s failed unexpectedly", args.command)
        unexpected = ArtifactFailure(
            "JobFailed",
            f"The artifact helper failed unexpectedly during {args.command} "
            f"({type(error).__name__}); its log has the details. Re-run the action, and report "
            "the log to the cpworker maintainers if it happens again.",
        )
        write_report(settings.result_file, unexpected)
        return EXIT_FAILED
    return 0
