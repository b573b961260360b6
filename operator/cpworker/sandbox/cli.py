"""`cpworker sandbox up | demo`: run the local stand-ins, or a scripted pipeline through them."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from cpworker.sandbox.codepipeline import Faults, StandInConfig, knobs
from cpworker.sandbox.components import METRICS_URL_VARIABLE, KubeComponent, OperatorComponent
from cpworker.sandbox.kube.faults import parse_fault as parse_kube_fault
from cpworker.sandbox.stack import SandboxStack, StackComponent

TIMING_KNOBS = {
    "redelivery_window": "seconds before an unacknowledged job is offered again",
    "job_timeout": "seconds before an unfinished job times out and fails its action",
    "credential_lifetime": "lifetime in seconds of the artifact credentials of a job",
    "continuation_delay": "seconds before a continuation token becomes a new job",
}


def parse_fault(text: str) -> tuple[str, dict[str, Any]]:
    """`OPERATION:name=value[,name=value...]`, e.g. `PollForJobs:throttle_probability=0.2`."""
    try:
        return knobs.parse_fault(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _kube_fault(text: str) -> tuple[str, dict[str, Any]]:
    try:
        return parse_kube_fault(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _stack_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", default="us-east-1")
    for knob, help_text in TIMING_KNOBS.items():
        parser.add_argument(f"--{knob.replace('_', '-')}", type=float, help=help_text)
    parser.add_argument(
        "--fault",
        action="append",
        type=parse_fault,
        default=[],
        metavar="OP:name=value,...",
        help="inject faults, e.g. 'PollForJobs:throttle_probability=0.2' or '*:latency=0.05' "
        "(settings: throttle_probability, throttle_rate, throttle_next, error_probability, "
        "error_next, error_status, latency)",
    )
    parser.add_argument("--fault-seed", type=int, help="seed for probabilistic faults")
    parser.add_argument(
        "--kube-fault",
        action="append",
        type=_kube_fault,
        default=[],
        metavar="VERBS:RESOURCES:name=value,...",
        help="inject Kubernetes API faults, e.g. 'create,patch:jobs:status=500|503,"
        "probability=0.1', 'get:secrets:status=429,next=3,retry_after=2', "
        "'watch:jobs:watch=cut,probability=0.2', '*:*:latency=0.05' (settings: status, watch "
        "[cut|abort|gone|error|too-large], probability, next, latency, retry_after, as_status, "
        "after, after_events, after_seconds; see docs/sandbox-kubernetes.md, Faults)",
    )
    parser.add_argument("--kube-fault-seed", type=int, help="seed for Kubernetes faults")
    parser.add_argument(
        "--kube-compaction-interval",
        type=float,
        metavar="SECONDS",
        help="compact the local Kubernetes' watch history this often: watches resuming from "
        "older resourceVersions then get 410 Gone, as after etcd compaction",
    )
    parser.add_argument(
        "--no-eventbridge",
        dest="eventbridge",
        action="store_false",
        help="do not put action execution events on moto's default EventBridge bus",
    )
    parser.add_argument(
        "--s3-guard",
        action="store_true",
        help="route S3 through a guard that refuses expired job credentials (as S3 would)",
    )
    parser.add_argument(
        "--events-queue",
        metavar="NAME",
        help="create this SQS queue and deliver action execution events to it "
        "(its URL goes to the env file as CPWORKER_SANDBOX_EVENTS_QUEUE_URL)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="check every response against the service model"
    )
    parser.add_argument(
        "--no-kube",
        dest="kube",
        action="store_false",
        help="do not start the local Kubernetes API (only the AWS side)",
    )


def build_stack(
    args: argparse.Namespace, directory: Path, *, with_operator: bool = False
) -> SandboxStack:
    config = StandInConfig(strict_conformance=args.strict)
    config.update({k: getattr(args, k) for k in TIMING_KNOBS if getattr(args, k) is not None})
    faults = Faults(seed=args.fault_seed)
    for operation, settings in args.fault:
        faults.set(operation, **settings)
    components: list[StackComponent] = []
    if args.kube or with_operator:
        components.append(
            KubeComponent(
                faults=args.kube_fault,
                fault_seed=args.kube_fault_seed,
                compaction_interval=args.kube_compaction_interval,
            )
        )
    if with_operator:
        components.append(OperatorComponent(namespaces=getattr(args, "namespace", None) or ()))
    return SandboxStack(
        directory=directory,
        components=components,
        region=args.region,
        config=config,
        faults=faults,
        events_queue=args.events_queue,
        s3_guard=args.s3_guard,
        eventbridge=args.eventbridge,
    )


def usage(env_file: Path, *, operator: bool) -> str:
    """What to try once the sandbox is up (every client reads its endpoints from the env file).

    Every indented line is a shell line, run from the repository root: a test runs them as
    printed (tests/examples/test_sandbox_usage.py)."""
    lines = [
        "",
        "try it (in another shell, from the repository root):",
        f"  source {env_file}",
        "  aws codepipeline list-action-types --action-owner-filter Custom",
        "  kubectl get caw -A",
    ]
    if operator:
        lines += [
            "  kubectl create namespace ci",
            (
                "  aws codepipeline create-custom-action-type"
                " --cli-input-json file://examples/codepipeline/action-type-build.json"
            ),
            "  kubectl apply -n ci -f examples/workers/build.yaml  # any namespace is served",
            "  kubectl get caw -n ci -w",
            '  curl -s "$CPWORKER_SANDBOX_METRICS_URL" | grep ^cpworker_worker_ready',
        ]
    lines += [
        "  # terraform and every AWS SDK read AWS_ENDPOINT_URL_* from the env (docs/terraform.md)",
        "",
    ]
    return "\n".join(lines)


def _wait_for_signal() -> None:
    stop = threading.Event()

    def handle(signum: int, _: FrameType | None) -> None:
        print(f"received {signal.Signals(signum).name}, shutting down", flush=True)
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    stop.wait()


def up(args: argparse.Namespace) -> int:
    with build_stack(args, Path(args.dir), with_operator=args.operator) as stack:
        assert stack.codepipeline is not None
        assert stack.moto is not None
        print(f"codepipeline: {stack.codepipeline.url}")
        print(f"s3/sts/iam/kms/sqs (moto): {stack.moto.url}")
        if "KUBECONFIG" in stack.env:
            print(f"kubernetes: KUBECONFIG={stack.env['KUBECONFIG']}")
            print("kubernetes faults: kubectl get --raw /_sandbox/faults (see --kube-fault)")
        if args.operator:
            scope = ", ".join(args.namespace) if args.namespace else "every namespace"
            print(f"operator: running in-process, serving {scope}")
            print(f"operator metrics: {stack.env[METRICS_URL_VARIABLE]}")
        print(f"environment: source {stack.env_file}")
        print(usage(stack.env_file, operator=args.operator), end="")
        print("cpworker sandbox ready", flush=True)
        _wait_for_signal()
    print("cpworker sandbox stopped", flush=True)
    return 0


def demo(args: argparse.Namespace) -> int:
    from cpworker.sandbox.demo import run_demo  # noqa: PLC0415 - only the demo needs it

    with tempfile.TemporaryDirectory(prefix="cpworker-sandbox-") as scratch:
        directory = Path(args.dir) if args.dir else Path(scratch)
        args.strict = True  # the demo also proves every answer conforms to the service model
        # Events wake the worker (the demo shows it); S3 through the guard, as the job pods'
        # credentials would meet S3 (expired ones refused).
        args.events_queue = args.events_queue or "cpworker-demo-events"
        args.s3_guard = True
        with build_stack(args, directory, with_operator=True) as stack:
            print("cpworker sandbox ready", flush=True)
            return run_demo(stack, timeout=args.timeout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cpworker sandbox", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="start the stand-ins and run until SIGINT/SIGTERM")
    up_parser.add_argument("--dir", required=True, help="directory for the env file")
    up_parser.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        help="with --operator: serve only this namespace (repeatable; default: every namespace)",
    )
    up_parser.add_argument(
        "--operator",
        action="store_true",
        help="also run the operator in-process (its metrics URL goes to the env file as "
        "CPWORKER_SANDBOX_METRICS_URL)",
    )
    _stack_options(up_parser)
    demo_parser = commands.add_parser("demo", help="run a scripted pipeline through the stand-ins")
    demo_parser.add_argument("--dir", help="directory for the env file (default: a temporary one)")
    demo_parser.add_argument("--timeout", type=float, default=150.0, help="give up after seconds")
    _stack_options(demo_parser)
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    try:
        return up(args) if args.command == "up" else demo(args)
    except (TypeError, ValueError) as exc:
        print(f"cpworker sandbox: {exc}", file=sys.stderr)
        return 2
