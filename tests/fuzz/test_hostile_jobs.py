"""Hostile job data from CodePipeline: each job is dispatched safely or failed with
ConfigurationError naming the problem; never a crash, never command injection, never a
malformed manifest sent to the API.

Two paths: the pure one (jobdata.parse_job -> jobmanifest.build_job / jobsecret.build_secret,
the manifests validated against the batch/v1 and v1 schemas with kubernetes_validate, as the
unit tests do), and the claimer over the protocol fakes (the Kubernetes API's own checks, the
CodePipeline job protocol). The end-to-end sample through both stand-ins is
tests/e2e/test_hostile_jobs.py.

Bounded for `make test` (100 examples each, a few seconds); `CPWORKER_FUZZ_EXAMPLES=5000` runs
a longer search.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from typing import Any

import kubernetes_validate
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cpworker import claimer, jobmanifest, names
from cpworker.jobdata import InvalidJobDataError, Job, parse_job
from cpworker.jobmanifest import ManifestError, build_job
from cpworker.jobsecret import build_secret
from cpworker.models import parse_spec
from cpworker.sandbox.kube.localexec import expand
from tests.fuzz.hostile_jobs import hostile_jobs
from tests.unit.operator import samples
from tests.unit.protocol.world import World

EXAMPLES = int(os.environ.get("CPWORKER_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
ANNOTATIONS_MAX = 256 * 1024  # apimachinery ValidateAnnotations: total size
HUNDRED_ARTIFACTS = samples.raw_job(
    data={
        **samples.RAW_JOB["data"],
        "inputArtifacts": samples.RAW_JOB["data"]["inputArtifacts"] * 100,
    }
)


def configuration_values(raw: Any) -> list[str]:
    try:
        configuration = raw["data"]["actionConfiguration"]["configuration"]
    except (KeyError, TypeError):
        return []
    return (
        [v for v in configuration.values() if isinstance(v, str)]
        if isinstance(configuration, dict)
        else []
    )


def configuration_keys(raw: Any) -> list[str]:
    try:
        return [str(k) for k in raw["data"]["actionConfiguration"]["configuration"]]
    except (KeyError, TypeError, AttributeError):
        return []


def assert_refusal_is_clear(error: InvalidJobDataError, raw: Any) -> None:
    message = error.message
    assert message.startswith("malformed CodePipeline job data: "), message
    assert message.isprintable(), message  # no newline, NUL or escape from the data
    assert len(message) < 4000
    keys = "\n".join(samples.strings(configuration_keys(raw)))  # keys are names: shown
    for value in configuration_values(raw):  # values (maybe secret) are never repeated
        if len(value) >= 8 and value not in keys:
            assert value not in message
    for canary in samples.CANARIES:
        assert canary not in message


def parsed(raw: Any) -> Job | InvalidJobDataError:
    try:
        return parse_job(raw)
    except InvalidJobDataError as error:
        return error


def built(job: Job, secret_names: frozenset[str]) -> dict[str, Any] | ManifestError:
    try:
        return build_job(
            worker=samples.WORKER,
            spec=parse_spec(samples.spec()),
            job=job,
            secret_property_names=secret_names,
            settings=samples.settings(),
            now=samples.NOW,
        )
    except ManifestError as error:
        return error


def assert_safe_manifests(job: Job, secret_names: frozenset[str]) -> None:
    spec = parse_spec(samples.spec())
    manifest = built(job, secret_names)
    if isinstance(manifest, ManifestError):
        assert str(manifest)
        return
    secret = build_secret(
        job_name=manifest["metadata"]["name"],
        namespace=samples.WORKER.namespace,
        job_uid="0b6d6a7e-0000-4000-8000-000000000001",
        worker_name=samples.WORKER.name,
        job=job,
        secret_property_names=secret_names,
    )
    kubernetes_validate.validate(manifest, "1.30", strict=True)
    kubernetes_validate.validate(secret, "1.30", strict=True)
    for text in (*samples.strings(manifest), *samples.strings(secret)):
        text.encode("utf-8")  # no unpaired surrogate reaches the API
        assert "\x00" not in text
    assert len(json.dumps(manifest)) <= jobmanifest.MAX_JOB_BYTES
    metadata = manifest["metadata"]
    assert all(names.is_valid_label_value(v) for v in metadata["labels"].values())
    assert sum(len(k) + len(v) for k, v in metadata["annotations"].items()) < ANNOTATIONS_MAX
    assert all(SECRET_KEY.match(key) for key in secret["data"])
    template = spec.job_template.spec["template"]["spec"]["containers"][0]
    configuration = {k: v.get_secret_value() for k, v in job.data.configuration().items()}
    public_env = jobmanifest.config_env_names([k for k in configuration if k not in secret_names])
    for container in manifest["spec"]["template"]["spec"]["containers"]:
        # No injection: the command is the template's, whatever the data says.
        assert container["command"] == template["command"]
        assert "args" not in container
        env: dict[str, str] = {}
        for variable in container["env"]:
            assert ENV_NAME.match(variable["name"]), variable["name"]
            assert variable["name"] not in env, "an env name twice"
            # What the container sees after the kubelet's $(VAR) expansion.
            env[variable["name"]] = expand(variable["value"], env)
        for key, env_name in public_env.items():
            assert env[env_name] == configuration[key]  # exactly the value CodePipeline sent
    text = json.dumps(manifest)
    # The data's other strings (public values, names) may well be in the Job.
    elsewhere = "\n".join(
        [*configuration, *(v for k, v in configuration.items() if k not in secret_names)]
    )
    for key in secret_names:
        value = configuration[key]
        if len(value) >= 4 and value not in elsewhere:
            assert json.dumps(value)[1:-1] not in text, "a secret value in the Job"


@FUZZ
@given(hostile_jobs(), st.randoms(use_true_random=False))
@example(HUNDRED_ARTIFACTS, None)
def test_hostile_job_data_gives_safe_manifests_or_a_clear_refusal(raw: Any, rng: Any) -> None:
    job = parsed(raw)
    if isinstance(job, InvalidJobDataError):
        assert_refusal_is_clear(job, raw)
        return
    keys = sorted(job.data.configuration())
    secret = frozenset(k for k in keys if rng is not None and rng.random() < 0.5)
    assert_safe_manifests(job, secret | ({"ApiToken"} & set(keys)))


def test_a_hundred_input_artifacts_are_refused_naming_the_limit() -> None:
    error = parsed(HUNDRED_ARTIFACTS)
    assert isinstance(error, InvalidJobDataError), "100 input artifacts accepted"
    assert "inputArtifacts" in error.message
    assert "at most 5" in error.message
    assert error.job_id == HUNDRED_ARTIFACTS["id"]


def with_configuration(**configuration: Any) -> dict[str, Any]:
    job = samples.raw_job()
    job["data"]["actionConfiguration"] = {"configuration": configuration}
    return job


@FUZZ
@given(hostile_jobs(keep_identity=True))
@example(with_configuration(ApiToken="lone \ud800 surrogate"))  # crashed the claim's Secret
@example(with_configuration(Target="a\x00b"))
@example(with_configuration(Target="$(AWS_SHARED_CREDENTIALS_FILE)", **{"Odd key\n": "x"}))
def test_the_claimer_dispatches_or_fails_each_hostile_job_and_never_crashes(raw: Any) -> None:
    world = World.create()
    job_id = world.cp.queue(raw)
    delivered = world.cp.deliver(job_id)
    outcome = asyncio.run(world.life().claim(delivered))
    accepted = world.cp.accepted_for(job_id)
    if outcome is claimer.ClaimOutcome.REJECTED:
        [failure] = accepted
        assert failure.params["failureDetails"]["type"] == "ConfigurationError"
        message = failure.params["failureDetails"]["message"]
        assert 0 < len(message) <= 5000
        assert not world.kube.objects("jobs"), "a refused job left a Job"
        return
    assert outcome is claimer.ClaimOutcome.DISPATCHED, outcome
    assert accepted == []
    assert world.job(job_id) is not None
    assert world.secret(job_id) is not None
    assert world.annotations(job_id)[names.ANNOTATION_PHASE] == "running"
