"""The in-pod artifact helper: `cpworker artifacts pull|push` (run from the operator's image).

pull: the job's input artifacts downloaded (boto3's transfer manager, streamed to disk), told
apart by content (zip, tar, tar.gz, else a single file) and extracted safely with limits into
`$CPWORKER_INPUT_DIR/<name>/`; an empty `$CPWORKER_OUTPUT_DIR/<name>/` for each output.
push: each output directory zipped deterministically and uploaded with SSE-KMS to that output
artifact's location, matched by name.
Both sign with the mounted, refreshed credentials file and report a failure in the job
contract's format (docs/job-contract.md, "Artifacts").

Modules, by question: settings (what the pod configures), jobfile (which artifacts), credentials
(which keys sign, and when they renew), transfer (moving bytes to and from S3), s3errors (what an
S3 error means for the job), formats (what a download is), limits (how much may be extracted),
safe_target (how an entry is written without escaping), extraction (zip and tar entries),
packing (a directory as a zip), progress (log lines), failures (the report), pull, push, cli.
"""
