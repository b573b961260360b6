"""The `cpworker` command: one entry point, each subcommand owned by its own module.

Subcommands are imported lazily so that, say, `cpworker run` in the operator image never
imports the sandbox's test-only dependencies.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

# subcommand -> (module, one-line help). Each module exposes `main(argv: Sequence[str]) -> int`.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("cpworker.runner", "run the operator against the current kubeconfig and AWS settings"),
    "check": ("cpworker.preflight", "check that the operator can work here, and say what to fix"),
    "crd": ("cpworker.crd", "print or write the CustomActionWorker CRD generated from the models"),
    "sandbox": ("cpworker.sandbox.cli", "local stand-ins for CodePipeline, S3 and Kubernetes"),
    "artifacts": ("cpworker.artifacts.cli", "in a job's pod: pull input / push output artifacts"),
    "bench": (
        "cpworker.bench.cli",
        "measure dispatch latency, throughput and idle cost against the stand-ins",
    ),
}

# Optional libraries a subcommand's process never uses but a dependency would import when they
# are installed: kopf imports the kubernetes client (and pykube) to recognise their model
# objects (kopf/_cogs/helpers/thirdparty.py), which costs the operator about 40 MiB resident
# for nothing (cpworker.kube speaks JSON over aiohttp). The image does not install them; a
# development environment does, so `cpworker run` started from one keeps them out as well, and
# measures like the image. Likewise jsonschema's format checkers (25 MiB with what they import:
# arrow, lark, regex), which a development dependency installs (cyclonedx-bom needs
# jsonschema[format-nongpl]) and the jobTemplate check never uses.
NEVER_IMPORTED: dict[str, tuple[str, ...]] = {
    "run": (
        "kubernetes",
        "kubernetes_asyncio",
        "pykube",
        "fqdn",
        "isoduration",
        "rfc3339_validator",
        "rfc3986_validator",
        "rfc3987",
        "rfc3987_syntax",
        "uri_template",
        "webcolors",
    ),
}


def _keep_out(modules: Sequence[str]) -> None:
    for module in modules:
        # A None entry makes `import module` raise ImportError, as if it were not installed.
        sys.modules.setdefault(module, None)  # type: ignore[arg-type]


def _usage() -> str:
    lines = ["usage: cpworker <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {summary}" for name, (_, summary) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help"}:
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"cpworker: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, _ = SUBCOMMANDS[name]
    _keep_out(NEVER_IMPORTED.get(name, ()))
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        print(
            f"cpworker: {name!r} is not available in this installation ({exc.name} is missing); "
            "install the project with its extras: pip install 'cpworker[sandbox]'",
            file=sys.stderr,
        )
        return 2
    entry: Callable[[Sequence[str]], int] = module.main
    return entry(rest)


if __name__ == "__main__":
    raise SystemExit(main())
