"""Run the Kubernetes stand-in in the foreground:

    python -m cpworker.sandbox.kube --kubeconfig ./kubeconfig [--crds crds/*.yaml]

Then `KUBECONFIG=./kubeconfig kubectl get ns`. Stops on Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence
from pathlib import Path

from cpworker.sandbox.kube.standin import PROJECT_CRDS, KubeStandIn


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cpworker.sandbox.kube")
    parser.add_argument("--kubeconfig", type=Path, default=Path("kubeconfig"))
    parser.add_argument(
        "--crds",
        type=Path,
        nargs="*",
        help=f"CRD files to load (default: {PROJECT_CRDS}/*.yaml if present)",
    )
    parser.add_argument("--no-job-runner", action="store_true")
    args = parser.parse_args(argv)
    stopped = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with KubeStandIn(job_runner=not args.no_job_runner) as kube:
        if args.crds or any(PROJECT_CRDS.glob("*.yaml")):
            kube.load_crds(*(args.crds or ()))
        path = kube.write_kubeconfig(args.kubeconfig)
        print(f"Kubernetes stand-in at {kube.url}; kubeconfig: {path}", flush=True)
        stopped.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
