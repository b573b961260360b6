"""`cpworker check`: can the operator work here? A preflight of what the first hour with an
operator is usually spent finding out (in the spirit of `cmctl check api` and `flux check`).

    cpworker check [--namespace NS ... | --all-namespaces] [--standalone | --peering NAME]
                   [--kubeconfig PATH] [--service-account NAMESPACE/NAME]

It takes the scope arguments of `cpworker run`. Run it where the operator runs
(`kubectl exec deploy/cpworker -- cpworker check ...`), or anywhere with the operator's
kubeconfig and AWS settings. In order:

1. Kubernetes: the CustomActionWorker CRD is installed and is this operator's (same version,
   same schema).
2. RBAC: every verb on every resource of `cpworker.permissions`, in each served namespace,
   by SelfSubjectAccessReview (or SubjectAccessReview for `--service-account`).
3. AWS: credentials and identity (STS GetCallerIdentity).
4. Each CustomActionWorker: a valid spec, a region, its `roleArn` can be assumed, its action
   type exists in CodePipeline in that region (ListActionTypes), and its queryParam names
   the type's queryable property.
5. The events queue (CPWORKER_EVENTS_QUEUE_URL, when set): it answers GetQueueAttributes and
   its policy lets EventBridge deliver to it.

Every problem is printed with what to do; the exit status is 1 when there is any, 0 when
none. Nothing is changed anywhere, no job is polled and no secret is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import boto3
import botocore.exceptions
from botocore.config import Config

from cpworker import codepipeline, crd, kube, kubeconn, models, names, permissions, runner
from cpworker.settings import OperatorSettings, SettingsError, load_settings

T = TypeVar("T")

# The setting the events consumer reads (settings.events_queue_url).
EVENTS_QUEUE_ENV: Final = "CPWORKER_EVENTS_QUEUE_URL"
SESSION_NAME: Final = "cpworker-check"
RBAC_DOC: Final = "docs/operator-runtime.md (Permissions the operator uses)"
_SQS_REGION: Final = re.compile(r"^https://(?:sqs\.)?([a-z]{2}(?:-[a-z]+)+-\d+)\.")
_CRD_PATH: Final = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
_REVIEW_PATH: Final = "/apis/authorization.k8s.io/v1"
_MAX_SCHEMA_PATHS: Final = 5


@dataclass(frozen=True)
class Finding:
    """One result: what was checked, whether it is fine, and what to do when it is not."""

    subject: str
    ok: bool
    detail: str
    fix: str = ""


def ok(subject: str, detail: str) -> Finding:
    return Finding(subject, ok=True, detail=detail)


def problem(subject: str, detail: str, fix: str) -> Finding:
    return Finding(subject, ok=False, detail=detail, fix=fix)


def render(findings: Sequence[Finding]) -> str:
    """The report: every finding, then the problems numbered with what to do."""
    lines = ["cpworker check"]
    lines += [f"  {'ok  ' if f.ok else 'FAIL'}  {f.subject}: {f.detail}" for f in findings]
    problems = [f for f in findings if not f.ok]
    if not problems:
        lines += ["", "no problems found"]
        return "\n".join(lines)
    lines += ["", f"{len(problems)} problem(s):"]
    for number, found in enumerate(problems, 1):
        lines += [f"  {number}. {found.subject}: {found.detail}", f"     what to do: {found.fix}"]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Pure checks (no I/O): the CRD, queue policies, regions
# --------------------------------------------------------------------------------------------


def _schema_paths(node: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Field path -> its schema node without sub-properties (to compare level by level)."""
    paths = {prefix or ".": {k: v for k, v in node.items() if k not in {"properties", "items"}}}
    for key, child in (node.get("properties") or {}).items():
        paths |= _schema_paths(child, f"{prefix}.{key}")
    items = node.get("items")
    if isinstance(items, Mapping):
        paths |= _schema_paths(items, f"{prefix}[]")
    return paths


def crd_differences(installed: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """How the installed CRD differs from this operator's (empty: it is the same)."""
    version = names.VERSION
    served = {v.get("name"): v for v in (installed.get("spec") or {}).get("versions") or []}
    if version not in served:
        listed = ", ".join(sorted(str(name) for name in served)) or "none"
        return [f"it does not define version {version} (it has: {listed})"]
    ours = next(v for v in expected["spec"]["versions"] if v["name"] == version)
    theirs = served[version]
    differences = [
        f"{version} is not {flag}" for flag in ("served", "storage") if theirs.get(flag) is not True
    ]
    have = _schema_paths(((theirs.get("schema") or {}).get("openAPIV3Schema")) or {})
    want = _schema_paths(ours["schema"]["openAPIV3Schema"])
    changed = sorted(path for path in have.keys() | want.keys() if have.get(path) != want.get(path))
    if changed:
        shown = ", ".join(changed[:_MAX_SCHEMA_PATHS])
        more = len(changed) - _MAX_SCHEMA_PATHS
        differences.append(
            f"its schema differs at {shown}" + (f" and {more} more field(s)" if more > 0 else "")
        )
    return differences


def _listed(value: object) -> list[Any]:
    return value if isinstance(value, list) else [value]


def eventbridge_may_send(policy_text: str | None) -> bool:
    """Whether a queue policy lets EventBridge (events.amazonaws.com) send messages."""
    try:
        policy = json.loads(policy_text or "{}")
    except ValueError:
        return False
    for statement in _listed(policy.get("Statement") or []):
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal")
        services = _listed(principal.get("Service")) if isinstance(principal, Mapping) else []
        anyone = principal == "*" or (
            isinstance(principal, Mapping) and "*" in _listed(principal.get("AWS"))
        )
        actions = {str(a).lower() for a in _listed(statement.get("Action") or [])}
        if (anyone or "events.amazonaws.com" in services) and actions & {
            "sqs:sendmessage",
            "sqs:*",
            "*",
        }:
            return True
    return False


def known_regions() -> frozenset[str]:
    """Regions where botocore (this installation's endpoint data) knows CodePipeline."""
    session = boto3.session.Session()
    return frozenset(
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions("codepipeline", partition_name=partition)
    )


def _action_type_key(action_type: Mapping[str, Any]) -> tuple[str, str, str, str]:
    return (
        str(action_type.get("category")),
        str(action_type.get("owner", "Custom")),
        str(action_type.get("provider")),
        str(action_type.get("version")),
    )


def query_param_problem(
    query_param: Mapping[str, str], properties: Sequence[Mapping[str, Any]]
) -> str | None:
    """Why PollForJobs would refuse this queryParam for an action type with `properties`."""
    queryable = [str(p["name"]) for p in properties if p.get("queryable")]
    given = list(query_param)
    if not queryable and given:
        return f"queryParam {given[0]!r} is set, but the action type has no queryable property"
    if queryable and not given:
        return f"the action type's queryable property {queryable[0]!r} needs a queryParam entry"
    if queryable and given and given[0] != queryable[0]:
        return (
            f"queryParam {given[0]!r} is not the action type's queryable property {queryable[0]!r}"
        )
    return None


# --------------------------------------------------------------------------------------------
# The checks against the APIs
# --------------------------------------------------------------------------------------------


@dataclass
class Context:
    """What the checks talk to, and for whom."""

    settings: OperatorSettings
    kube: kube.KubeClient | None
    executor: concurrent.futures.Executor
    namespaces: tuple[str, ...] = ()
    peering: bool = False
    service_account: tuple[str, str] | None = None
    events_queue_url: str | None = None
    regions: frozenset[str] = field(default_factory=known_regions)

    @property
    def who(self) -> str:
        if self.service_account:
            return f"ServiceAccount {self.service_account[0]}/{self.service_account[1]}"
        return "the operator's Kubernetes identity"

    async def aws(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, call)

    def boto(self, service: str, region: str, credentials: Mapping[str, str] | None = None) -> Any:
        config = Config(
            retries={"total_max_attempts": 2, "mode": "standard"},
            connect_timeout=5,
            read_timeout=15,
        )
        keys = {}
        if credentials is not None:
            keys = {
                "aws_access_key_id": credentials["AccessKeyId"],
                "aws_secret_access_key": credentials["SecretAccessKey"],
                "aws_session_token": credentials["SessionToken"],
            }
        # One session per client: boto3 sessions are not thread-safe while creating clients.
        make: Any = boto3.session.Session(region_name=region).client
        return make(service, config=config, **keys)


async def check_crd(ctx: Context) -> list[Finding]:
    subject = f"CRD {names.CRD_NAME}"
    assert ctx.kube is not None
    try:
        listed = await ctx.kube.request(
            "GET", _CRD_PATH, query={"fieldSelector": f"metadata.name={names.CRD_NAME}"}
        )
    except kube.KubeError as exc:
        return [problem(subject, f"cannot be read: {exc.status} {exc.reason}", _kube_fix(exc))]
    found = [i for i in listed.get("items") or [] if i["metadata"]["name"] == names.CRD_NAME]
    if not found:
        return [
            problem(
                subject,
                "is not installed",
                "install it with the chart (crds.enabled=true, the default) or "
                "`kubectl apply --server-side -f crds/`",
            )
        ]
    differences = crd_differences(found[0], crd.render_crd())
    if differences:
        return [
            problem(
                subject,
                "is not this operator's: " + "; ".join(differences),
                "upgrade the CRD to this operator's version: `helm upgrade` (crds.enabled=true) "
                "or `kubectl apply --server-side -f crds/` from the same release",
            )
        ]
    return [ok(subject, f"serves {names.VERSION} with this operator's schema")]


def _kube_fix(exc: kube.KubeError) -> str:
    if exc.status in {401, 403}:
        return f"grant the missing permission (see {RBAC_DOC}) or use the operator's kubeconfig"
    return "check the kubeconfig (--kubeconfig, $KUBECONFIG) and that the API server is reachable"


async def _allowed(ctx: Context, access: permissions.Access) -> bool:
    assert ctx.kube is not None
    plural, _, subresource = access.resource.partition("/")
    attributes = {"verb": access.verb, "group": access.group, "resource": plural}
    if subresource:
        attributes["subresource"] = subresource
    if access.namespace:
        attributes["namespace"] = access.namespace
    spec: dict[str, Any] = {"resourceAttributes": attributes}
    kind, plural_kind = "SelfSubjectAccessReview", "selfsubjectaccessreviews"
    if ctx.service_account is not None:
        namespace, name = ctx.service_account
        kind, plural_kind = "SubjectAccessReview", "subjectaccessreviews"
        spec["user"] = f"system:serviceaccount:{namespace}:{name}"
        spec["groups"] = [
            "system:serviceaccounts",
            f"system:serviceaccounts:{namespace}",
            "system:authenticated",
        ]
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": kind, "spec": spec}
    answer = await ctx.kube.request("POST", f"{_REVIEW_PATH}/{plural_kind}", review)
    return bool((answer.get("status") or {}).get("allowed"))


async def check_rbac(ctx: Context) -> list[Finding]:
    wanted = permissions.required_access(ctx.namespaces, peering=ctx.peering)
    try:
        answers = await codepipeline.gather_limited([_allowed(ctx, a) for a in wanted], 8)
    except kube.KubeError as exc:
        return [
            problem(
                "RBAC",
                f"access reviews failed: {exc.status} {exc.reason}",
                "SelfSubjectAccessReview is open to every authenticated identity; "
                "SubjectAccessReview (--service-account) needs `create subjectaccessreviews`",
            )
        ]
    denied: dict[tuple[str, str, str], list[str]] = {}
    for access, allowed in zip(wanted, answers, strict=True):
        if not allowed:
            denied.setdefault((access.group, access.resource, access.namespace), []).append(
                access.verb
            )
    if not denied:
        return [ok("RBAC", f"{ctx.who} may do all {len(wanted)} things the operator needs")]
    scope = "watchNamespaces lists the namespace" if ctx.namespaces else "cluster-wide mode"
    return [
        problem(
            "RBAC",
            f"{ctx.who} may not {', '.join(verbs)} {group or 'core'}/{resource} "
            + (f"in namespace {namespace}" if namespace else "cluster-wide"),
            f"grant it: the chart's RBAC does (rbac.create=true, {scope}); "
            f"every permission and why: {RBAC_DOC}",
        )
        for (group, resource, namespace), verbs in sorted(denied.items())
    ]


async def list_workers(ctx: Context) -> tuple[list[kube.Body], list[Finding]]:
    assert ctx.kube is not None
    base = f"/apis/{names.GROUP}/{names.VERSION}"
    paths = [f"{base}/namespaces/{ns}/{names.PLURAL}" for ns in ctx.namespaces] or [
        f"{base}/{names.PLURAL}"
    ]
    workers: list[kube.Body] = []
    for path in paths:
        try:
            workers += (await ctx.kube.request("GET", path)).get("items") or []
        except kube.KubeError as exc:
            return [], [
                problem(
                    "CustomActionWorkers",
                    f"cannot be listed ({exc.status} {exc.reason}); the per-worker checks "
                    "were skipped",
                    _kube_fix(exc),
                )
            ]
    return workers, []


def _region_hint(ctx: Context, region: str) -> str:
    if region in ctx.regions:
        return ""
    return f" ({region} is not a region this botocore knows for CodePipeline: check its spelling)"


async def check_identity(ctx: Context) -> tuple[str | None, list[Finding]]:
    region = ctx.settings.default_region or "us-east-1"
    sts = ctx.boto("sts", region)
    try:
        identity = await ctx.aws(sts.get_caller_identity)
    except botocore.exceptions.NoCredentialsError:
        return None, [
            problem(
                "AWS credentials",
                "none found",
                "in the cluster, give the operator's ServiceAccount an IAM role (an EKS Pod "
                "Identity association, or IRSA: serviceAccount.annotations "
                "eks.amazonaws.com/role-arn; terraform/modules/operator-iam makes either); "
                "elsewhere set AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            )
        ]
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        error = codepipeline.map_error("GetCallerIdentity", exc)
        return None, [
            problem(
                "AWS credentials",
                f"STS refused them or could not be reached: {error.code}",
                "refresh or replace the credentials (expired session, wrong key, a region "
                "not enabled for the account) and check egress to STS",
            )
        ]
    arn = str(identity["Arn"])
    return arn, [ok("AWS identity", f"{arn} (account {identity['Account']})")]


@dataclass(frozen=True)
class WorkerSpec:
    ref: str  # namespace/name
    spec: models.CustomActionWorkerSpec
    region: str


def _parse_workers(
    ctx: Context, bodies: Sequence[kube.Body]
) -> tuple[list[WorkerSpec], list[Finding]]:
    parsed, findings = [], []
    for body in bodies:
        ref = f"{body['metadata'].get('namespace')}/{body['metadata']['name']}"
        try:
            spec = models.parse_spec(body.get("spec") or {})
        except models.InvalidSpecError as exc:
            findings.append(
                problem(
                    f"worker {ref}",
                    f"invalid spec: {exc.message}",
                    "fix the spec (kubectl describe shows the same InvalidSpec condition)",
                )
            )
            continue
        region = spec.effective_region(ctx.settings.default_region)
        if region is None:
            findings.append(
                problem(
                    f"worker {ref}",
                    "has no region",
                    "set spec.region, or the operator's default region "
                    "(aws.region in the chart: CPWORKER_DEFAULT_REGION)",
                )
            )
            continue
        parsed.append(WorkerSpec(ref, spec, region))
    return parsed, findings


async def _assume(ctx: Context, region: str, role_arn: str) -> Mapping[str, str]:
    sts = ctx.boto("sts", region)

    def call() -> Mapping[str, str]:
        answer = sts.assume_role(
            RoleArn=role_arn, RoleSessionName=SESSION_NAME, DurationSeconds=900
        )
        credentials: Mapping[str, str] = answer["Credentials"]
        return credentials

    return await ctx.aws(call)


async def _action_types(
    ctx: Context, region: str, credentials: Mapping[str, str] | None
) -> dict[tuple[str, str, str, str], list[Mapping[str, Any]]]:
    client = ctx.boto("codepipeline", region, credentials)

    def call() -> dict[tuple[str, str, str, str], list[Mapping[str, Any]]]:
        found = {}
        for page in client.get_paginator("list_action_types").paginate(actionOwnerFilter="Custom"):
            for action_type in page.get("actionTypes", []):
                found[_action_type_key(action_type["id"])] = list(
                    action_type.get("actionConfigurationProperties", [])
                )
        return found

    return await ctx.aws(call)


def _list_problem(
    ctx: Context, region: str, who: str, error: codepipeline.CodePipelineError
) -> tuple[str, str]:
    """(detail, fix) for a failed ListActionTypes."""
    if error.code == "InvalidSignatureException":
        return (
            f"CodePipeline refused requests signed for {region} ({error.detail})",
            (
                "the endpoint serves another region: set spec.region / CPWORKER_DEFAULT_REGION "
                "to the region of the action type, or point AWS_ENDPOINT_URL_CODEPIPELINE at it"
            ),
        )
    if isinstance(error, codepipeline.AccessDeniedError):
        return (
            f"{who} may not list action types in {region} ({error.code})",
            (
                "allow codepipeline:ListActionTypes, PollForJobs, AcknowledgeJob, GetJobDetails, "
                f"PutJobSuccessResult and PutJobFailureResult for {who}"
            ),
        )
    if isinstance(error, codepipeline.UnavailableError):
        return (
            f"CodePipeline in {region} cannot be reached ({error.code})"
            + _region_hint(ctx, region),
            (
                f"check the region name and egress to codepipeline.{region}.amazonaws.com "
                "(or AWS_ENDPOINT_URL_CODEPIPELINE)"
            ),
        )
    return (
        f"ListActionTypes in {region} failed: {error.code}: {error.detail[:200]}",
        "fix what CodePipeline names above and run the check again",
    )


async def check_workers(
    ctx: Context, bodies: Sequence[kube.Body], identity: str | None
) -> list[Finding]:
    if not bodies:
        return [ok("CustomActionWorkers", "none yet: only the operator's own setup was checked")]
    workers, findings = _parse_workers(ctx, bodies)
    groups: dict[tuple[str, str | None], list[WorkerSpec]] = {}
    for worker in workers:
        groups.setdefault((worker.region, worker.spec.role_arn), []).append(worker)
    for (region, role_arn), group in sorted(groups.items(), key=lambda item: str(item[0])):
        refs = ", ".join(w.ref for w in group)
        who = role_arn or identity or "the operator's AWS identity"
        credentials = None
        if role_arn:
            try:
                credentials = await _assume(ctx, region, role_arn)
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                error = codepipeline.map_error("AssumeRole", exc)
                findings.append(
                    problem(
                        f"role {role_arn}",
                        f"cannot be assumed ({error.code}) for {refs}",
                        f"let {identity or 'the operator'} assume it: its trust policy must "
                        "allow sts:AssumeRole (and sts:TagSession with EKS Pod Identity) for "
                        "that principal, and the principal's policy must allow sts:AssumeRole "
                        "on the role",
                    )
                )
                continue
            findings.append(ok(f"role {role_arn}", f"assumed for {refs}"))
        try:
            known = await _action_types(ctx, region, credentials)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            detail, fix = _list_problem(
                ctx, region, who, codepipeline.map_error("ListActionTypes", exc)
            )
            findings.append(problem(f"region {region}", f"{detail}; affects {refs}", fix))
            continue
        findings += [_check_action_type(worker, known) for worker in group]
    return findings


def _check_action_type(
    worker: WorkerSpec, known: Mapping[tuple[str, str, str, str], list[Mapping[str, Any]]]
) -> Finding:
    action_type = worker.spec.action_type_id.model_dump()
    shown = "/".join(_action_type_key(action_type))
    subject = f"worker {worker.ref}"
    properties = known.get(_action_type_key(action_type))
    if properties is None:
        return problem(
            subject,
            f"action type {shown} does not exist in CodePipeline in {worker.region}",
            "create it (terraform/modules/custom-action-type, or `aws codepipeline "
            "create-custom-action-type`) in that region, or fix spec.actionTypeId / spec.region",
        )
    wrong = query_param_problem(dict(worker.spec.query_param), properties)
    if wrong is not None:
        return problem(subject, wrong, "set spec.queryParam to {<queryable property>: <value>}")
    return ok(subject, f"action type {shown} exists in {worker.region}")


async def check_events_queue(ctx: Context) -> list[Finding]:
    url = ctx.events_queue_url
    if not url:
        return [ok("events queue", f"not configured ({EVENTS_QUEUE_ENV}): workers poll on timers")]
    match = _SQS_REGION.match(url)
    region = match.group(1) if match else (ctx.settings.default_region or "us-east-1")
    sqs = ctx.boto("sqs", region)

    def call() -> Mapping[str, str]:
        names_ = ["QueueArn", "Policy", "ApproximateNumberOfMessages"]
        attributes: Mapping[str, str] = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=names_
        ).get("Attributes", {})
        return attributes

    try:
        attributes = await ctx.aws(call)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        code = codepipeline.map_error("GetQueueAttributes", exc).code
        missing = "NonExistentQueue" in code or "QueueDoesNotExist" in code
        return [
            problem(
                "events queue",
                f"{url} " + ("does not exist" if missing else f"cannot be read ({code})"),
                "create it (terraform/modules/job-events) or fix CPWORKER_EVENTS_QUEUE_URL"
                if missing
                else "allow sqs:GetQueueAttributes, sqs:ReceiveMessage and sqs:DeleteMessage on "
                "the queue for the operator's AWS identity, and check egress to SQS",
            )
        ]
    arn = attributes.get("QueueArn", url)
    if not eventbridge_may_send(attributes.get("Policy")):
        return [
            problem(
                "events queue",
                f"{arn}: no queue policy lets EventBridge (events.amazonaws.com) send to it, "
                "so no event will ever arrive",
                "add a policy statement allowing events.amazonaws.com sqs:SendMessage "
                "(terraform/modules/job-events writes it), and an EventBridge rule targeting "
                "the queue",
            )
        ]
    waiting = attributes.get("ApproximateNumberOfMessages", "?")
    return [ok("events queue", f"{arn} answers; EventBridge may deliver ({waiting} waiting)")]


async def _checks_then_close(ctx: Context) -> list[Finding]:
    try:
        return await run_checks(ctx)
    finally:
        if ctx.kube is not None:
            await ctx.kube.close()


async def run_checks(ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    workers: list[kube.Body] = []
    if ctx.kube is not None:
        findings += await check_crd(ctx)
        findings += await check_rbac(ctx)
        workers, listing = await list_workers(ctx)
        findings += listing
    identity, found = await check_identity(ctx)
    findings += found
    if identity is not None:
        findings += await check_workers(ctx, workers, identity)
    findings += await check_events_queue(ctx)
    return findings


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cpworker check", description=__doc__.split("\n")[0])
    runner.add_scope_arguments(parser)
    parser.add_argument(
        "--service-account",
        metavar="NAMESPACE/NAME",
        help="check this ServiceAccount's RBAC (SubjectAccessReview) instead of the caller's",
    )
    return parser.parse_args(list(argv))


def _service_account(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    namespace, _, name = text.partition("/")
    if not namespace or not name:
        raise SystemExit("cpworker check: --service-account takes NAMESPACE/NAME")
    return namespace, name


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(render([problem("settings", str(exc), "fix the CPWORKER_* variables named")]))
        return 1
    findings: list[Finding] = []
    client = None
    try:
        client = kube.KubeClient(kubeconn.load(args.kubeconfig), attempts=2, request_timeout=15)
    except kubeconn.ConfigError as exc:
        findings.append(
            problem(
                "Kubernetes",
                f"no usable configuration: {exc}",
                "set KUBECONFIG or --kubeconfig; in a pod, the ServiceAccount token is used",
            )
        )
    namespaces = () if args.all_namespaces else tuple(args.namespace or settings.namespaces)
    with concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="cpworker-check") as pool:
        ctx = Context(
            settings=settings,
            kube=client,
            executor=pool,
            namespaces=namespaces,
            peering=not args.standalone and bool(args.peering or settings.peering_name),
            service_account=_service_account(args.service_account),
            events_queue_url=settings.events_queue_url,
        )
        findings += asyncio.run(_checks_then_close(ctx))
    print(render(findings))
    return 1 if any(not f.ok for f in findings) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
