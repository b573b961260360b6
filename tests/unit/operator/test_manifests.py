"""Job and Secret manifests: operator-owned parts, template checks, secrets only in the Secret."""

from __future__ import annotations

import base64
import configparser
import copy
import json
import re
import uuid
from typing import Any

import kubernetes_validate
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cpworker import continuation, jobmanifest, jobrecord, jobsecret, names
from cpworker.jobdata import parse_job
from cpworker.jobmanifest import MOUNT_PATH, ManifestError, build_job
from cpworker.jobsecret import build_secret
from cpworker.jobtemplate import validate_job_template
from cpworker.models import parse_spec
from cpworker.sandbox.kube.localexec import expand
from tests.unit.operator import samples
from tests.unit.operator.samples import (
    CANARIES,
    JOB_ID,
    NOW,
    RAW_JOB,
    SECRET_PROPERTIES,
    WORKER,
    raw_job,
    spec,
)

JOB_UID = "9a9a9a9a-0000-4000-8000-000000000001"


def _job(**spec_changes: Any) -> dict[str, Any]:
    return build_job(
        worker=WORKER,
        spec=parse_spec(spec(**spec_changes)),
        job=parse_job(RAW_JOB),
        secret_property_names=SECRET_PROPERTIES,
        settings=samples.settings(),
        now=NOW,
    )


def _secret() -> dict[str, Any]:
    return build_secret(
        job_name=names.job_object_name(JOB_ID),
        namespace=WORKER.namespace,
        job_uid=JOB_UID,
        worker_name=WORKER.name,
        job=parse_job(RAW_JOB),
        secret_property_names=SECRET_PROPERTIES,
    )


def _template(**pod_spec_changes: Any) -> dict[str, Any]:
    template: dict[str, Any] = copy.deepcopy(samples.SPEC["jobTemplate"])
    template["spec"]["template"]["spec"].update(pod_spec_changes)
    return template


def _containers(job: dict[str, Any]) -> list[dict[str, Any]]:
    pod_spec = job["spec"]["template"]["spec"]
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container["env"]}


# --- validate_job_template ------------------------------------------------------------------


def test_sample_template_is_valid() -> None:
    assert validate_job_template(samples.SPEC["jobTemplate"]) == []
    assert validate_job_template(parse_spec(spec()).job_template) == []


@pytest.mark.parametrize(
    ("template_change", "expected"),
    [
        ({"metadata": {"name": "mine"}}, "jobTemplate.metadata.name"),
        ({"metadata": {"namespace": "other"}}, "jobTemplate.metadata.namespace"),
        ({"metadata": {"ownerReferences": []}}, "ownerReferences"),
        ({"metadata": {"labels": {"cpworker.io/worker": "x"}}}, "cpworker.io/worker"),
        ({"metadata": {"annotations": {"cpworker.io/phase": "running"}}}, "cpworker.io/phase"),
        ({"spec": {"suspend": False}}, "spec.suspend"),
        ({"spec": {"selector": {"matchLabels": {"a": "b"}}}}, "spec.selector"),
        ({"spec": {"manualSelector": True}}, "spec.manualSelector"),
        ({"spec": {"ttlSecondsAfterFinished": 5}}, "ttlSecondsAfterFinished"),
        ({"spec": {"parallelism": 2}}, "spec.parallelism is 2"),
        ({"spec": {"completions": 3}}, "spec.completions is 3"),
        ({"spec": {"activeDeadlineSeconds": 999_999}}, "exceeds the operator's limit"),
        ({"spec": {"managedBy": "kueue.x-k8s.io/multikueue"}}, "managedBy"),
        ({"spec": {"unknownField": 1}}, "unknownField"),
        ({"spec": {"backoffLimit": "three"}}, "backoffLimit"),
    ],
)
def test_operator_owned_and_invalid_job_fields(
    template_change: dict[str, Any], expected: str
) -> None:
    template = _template()
    for part, change in template_change.items():
        template[part] = {**template.get(part, {}), **change}
    problems = validate_job_template(template, max_active_deadline_seconds=3300)
    assert any(expected in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("pod_change", "expected"),
    [
        ({"restartPolicy": "OnFailure"}, "restartPolicy is OnFailure"),
        ({"volumes": [{"name": "cpworker-x", "emptyDir": {}}]}, "volumes cpworker-x"),
        (
            {
                "containers": [
                    {"name": "b", "image": "i", "env": [{"name": "CPWORKER_JOB_ID", "value": "x"}]}
                ]
            },
            "env CPWORKER_JOB_ID",
        ),
        (
            {
                "containers": [
                    {
                        "name": "b",
                        "image": "i",
                        "env": [{"name": "AWS_SHARED_CREDENTIALS_FILE", "value": "/x"}],
                    }
                ]
            },
            "AWS_SHARED_CREDENTIALS_FILE",
        ),
        (
            {
                "containers": [
                    {
                        "name": "b",
                        "image": "i",
                        "volumeMounts": [{"name": "v", "mountPath": MOUNT_PATH}],
                    }
                ],
                "volumes": [{"name": "v", "emptyDir": {}}],
            },
            MOUNT_PATH,
        ),
        (
            {
                "initContainers": [
                    {
                        "name": "init",
                        "image": "i",
                        "volumeMounts": [{"name": "v", "mountPath": f"{MOUNT_PATH}/sub"}],
                    }
                ],
                "volumes": [{"name": "v", "emptyDir": {}}],
            },
            "container init",
        ),
        ({"containers": [{"name": "b"}], "bogus": 1}, "bogus"),
        ({"containers": "nope"}, "containers"),
    ],
)
def test_pod_level_problems(pod_change: dict[str, Any], expected: str) -> None:
    problems = validate_job_template(_template(**pod_change))
    assert any(expected in problem for problem in problems), problems


def test_pod_template_metadata_may_not_use_reserved_labels() -> None:
    template = _template()
    template["spec"]["template"]["metadata"] = {"labels": {"cpworker.io/job-id": "x"}}
    assert any("cpworker.io/job-id" in p for p in validate_job_template(template))


def test_restart_policy_never_and_lower_deadline_are_fine() -> None:
    template = _template(restartPolicy="Never")
    template["spec"]["activeDeadlineSeconds"] = 60
    template["spec"]["backoffLimit"] = 2
    assert validate_job_template(template, max_active_deadline_seconds=3300) == []


@pytest.mark.parametrize("raw", [None, "x", {"spec": "x"}, {"spec": {}}, {"metadata": {}}])
def test_garbage_templates_give_problems_not_crashes(raw: Any) -> None:
    assert validate_job_template(raw)


def test_problem_list_is_bounded() -> None:
    containers = [
        {"name": f"c{i}", "image": "i", "env": [{"name": f"CPWORKER_{i}", "value": "x"}]}
        for i in range(50)
    ]
    assert len(validate_job_template(_template(containers=containers))) <= 20


# --- build_job --------------------------------------------------------------------------------


def test_job_identity_and_ownership() -> None:
    job = _job()
    metadata = job["metadata"]
    assert metadata["name"] == f"cpw-{JOB_ID}"
    assert metadata["namespace"] == "ci"
    assert metadata["labels"] == {
        "team": "acme",
        "app.kubernetes.io/managed-by": "cpworker",
        "cpworker.io/worker": "gpu-builds",
        "cpworker.io/job-id": JOB_ID,
    }
    (owner,) = metadata["ownerReferences"]
    assert owner == {
        "apiVersion": "cpworker.io/v1alpha1",
        "kind": "CustomActionWorker",
        "name": "gpu-builds",
        "uid": WORKER.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def test_job_annotations_record_the_claim() -> None:
    annotations = _job(roleArn="arn:aws:iam::123456789012:role/other")["metadata"]["annotations"]
    assert annotations["note"] == "hello"
    assert annotations[names.ANNOTATION_PHASE] == "claiming"
    assert annotations[names.ANNOTATION_JOB_ID] == JOB_ID
    assert annotations[names.ANNOTATION_NONCE] == "3"
    assert annotations[names.ANNOTATION_REGION] == "us-east-1"
    assert annotations[names.ANNOTATION_ACCOUNT_ID] == "111122223333"
    assert annotations[names.ANNOTATION_ROLE_ARN] == "arn:aws:iam::123456789012:role/other"
    assert annotations[names.ANNOTATION_WORKER] == "gpu-builds"
    assert annotations[names.ANNOTATION_CREDENTIALS_ISSUED_AT] == "2026-11-29T10:00:00Z"
    assert annotations[names.ANNOTATION_PIPELINE] == "acme-main"


def test_job_spec_operator_parts() -> None:
    job_spec = _job()["spec"]
    assert job_spec["suspend"] is True
    assert job_spec["parallelism"] == job_spec["completions"] == 1
    assert job_spec["backoffLimit"] == 0
    assert job_spec["activeDeadlineSeconds"] == 3300
    # No TTL until the result is reported: a finished Job must survive an operator outage.
    assert "ttlSecondsAfterFinished" not in job_spec
    pod_spec = job_spec["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Never"
    assert job_spec["template"]["metadata"]["labels"]["cpworker.io/job-id"] == JOB_ID
    assert {
        "name": "cpworker-job",
        "secret": {"secretName": f"cpw-{JOB_ID}", "defaultMode": 0o444},
    } in (pod_spec["volumes"])


def test_operator_owned_fields_are_overwritten_even_if_validation_was_skipped() -> None:
    template = _template(restartPolicy="Always")
    template["spec"].update(
        suspend=False, parallelism=5, completions=5, ttlSecondsAfterFinished=1, manualSelector=True
    )
    job_spec = _job(jobTemplate=template)["spec"]
    assert job_spec["suspend"] is True
    assert job_spec["parallelism"] == job_spec["completions"] == 1
    assert "ttlSecondsAfterFinished" not in job_spec
    assert "manualSelector" not in job_spec
    assert job_spec["template"]["spec"]["restartPolicy"] == "Never"


def test_user_backoff_and_lower_deadline_are_kept_higher_deadline_is_capped() -> None:
    template = _template()
    template["spec"].update(backoffLimit=2, activeDeadlineSeconds=120)
    assert _job(jobTemplate=template)["spec"]["backoffLimit"] == 2
    assert _job(jobTemplate=template)["spec"]["activeDeadlineSeconds"] == 120
    template["spec"]["activeDeadlineSeconds"] = 10**6
    assert _job(jobTemplate=template)["spec"]["activeDeadlineSeconds"] == 3300


def test_region_from_spec_wins_and_missing_region_is_an_error() -> None:
    assert (
        _job(region="eu-west-1")["metadata"]["annotations"][names.ANNOTATION_REGION] == "eu-west-1"
    )
    with pytest.raises(ManifestError, match="no region"):
        build_job(
            worker=WORKER,
            spec=parse_spec(spec()),
            job=parse_job(RAW_JOB),
            secret_property_names=SECRET_PROPERTIES,
            settings=samples.settings(default_region=None),
            now=NOW,
        )


def test_every_container_gets_the_environment_and_the_mount() -> None:
    template = _template(
        initContainers=[{"name": "fetch", "image": "fetcher"}],
        containers=[
            {"name": "build", "image": "b", "env": [{"name": "AWS_REGION", "value": "xx-mine-1"}]},
            {"name": "sidecar", "image": "s", "terminationMessagePath": "/tmp/result.json"},
        ],
    )
    job = _job(jobTemplate=template)
    for container in _containers(job):
        env = _env(container)
        assert env["CPWORKER_JOB_ID"] == JOB_ID
        assert env["CPWORKER_PIPELINE_NAME"] == "acme-main"
        assert env["CPWORKER_STAGE_NAME"] == "Build"
        assert env["CPWORKER_ACTION_NAME"] == "GpuBuild"
        assert env["CPWORKER_PIPELINE_EXECUTION_ID"] == "0e0e0e0e-1111-4222-8333-444455556666"
        assert env["CPWORKER_ACTION_EXECUTION_ID"] == "ae-0001"
        assert env["CPWORKER_ACCOUNT_ID"] == "111122223333"
        assert env["CPWORKER_REGION"] == "us-east-1"
        assert env["CPWORKER_CONFIG_POOL"] == "gpu-a100"
        assert env["CPWORKER_CONFIG_MAKE_TARGET"] == "all"
        assert "CPWORKER_CONFIG_APITOKEN" not in env  # secret: only in the mounted Secret
        assert env["AWS_SHARED_CREDENTIALS_FILE"] == f"{MOUNT_PATH}/credentials"
        assert env["CPWORKER_JOB_FILE"] == f"{MOUNT_PATH}/job.json"
        assert env["CPWORKER_SECRET_CONFIG_FILE"] == f"{MOUNT_PATH}/secret-config.json"
        assert {"name": "cpworker-job", "mountPath": MOUNT_PATH, "readOnly": True} in container[
            "volumeMounts"
        ]
    build, sidecar = job["spec"]["template"]["spec"]["containers"]
    assert _env(build)["AWS_REGION"] == "xx-mine-1"  # the user's own value wins
    assert [e["name"] for e in build["env"]].count("AWS_REGION") == 1
    assert _env(sidecar)["AWS_REGION"] == "us-east-1"
    assert _env(sidecar)["CPWORKER_RESULT_FILE"] == "/tmp/result.json"
    assert _env(build)["CPWORKER_RESULT_FILE"] == "/dev/termination-log"


def test_user_env_comes_after_the_operators_so_it_can_refer_to_it() -> None:
    (container,) = _job()["spec"]["template"]["spec"]["containers"]
    names_in_order = [e["name"] for e in container["env"]]
    assert names_in_order[-1] == "MODE"
    assert names_in_order.index("CPWORKER_JOB_ID") < names_in_order.index("MODE")


def test_restricted_security_defaults_only_where_unset() -> None:
    (container,) = _job()["spec"]["template"]["spec"]["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    pod = _job()["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    template = _template(
        securityContext={"runAsUser": 0},
        containers=[
            {
                "name": "b",
                "image": "i",
                "securityContext": {"privileged": True, "capabilities": {"add": ["NET_ADMIN"]}},
            }
        ],
    )
    job = _job(jobTemplate=template)
    pod = job["spec"]["template"]["spec"]
    assert "runAsNonRoot" not in pod["securityContext"]
    assert pod["securityContext"]["runAsUser"] == 0
    (container,) = pod["containers"]
    assert container["securityContext"] == {
        "privileged": True,
        "capabilities": {"add": ["NET_ADMIN"]},
    }


def test_built_job_is_a_valid_batch_v1_job() -> None:
    template = _template(initContainers=[{"name": "fetch", "image": "fetcher"}])
    kubernetes_validate.validate(_job(jobTemplate=template), "1.30", strict=True)
    kubernetes_validate.validate(_secret(), "1.30", strict=True)


def test_build_job_is_pure() -> None:
    parsed = parse_spec(spec())
    before = parsed.model_dump()
    first = build_job(
        worker=WORKER,
        spec=parsed,
        job=parse_job(RAW_JOB),
        secret_property_names=SECRET_PROPERTIES,
        settings=samples.settings(),
        now=NOW,
    )
    again = build_job(
        worker=WORKER,
        spec=parsed,
        job=parse_job(RAW_JOB),
        secret_property_names=SECRET_PROPERTIES,
        settings=samples.settings(),
        now=NOW,
    )
    assert first == again
    assert parsed.model_dump() == before


# --- Secrets never leave the Secret's data ----------------------------------------------------


def test_no_secret_value_anywhere_in_the_job() -> None:
    text = json.dumps(_job())
    for canary in CANARIES:
        assert canary not in text
    # Not even encoded: a base64 copy in the Job would be just as readable.
    for canary in CANARIES:
        assert base64.b64encode(canary.encode()).decode()[:16] not in text


def test_secret_values_are_only_in_the_secret_data() -> None:
    secret = _secret()
    outside_data = {key: value for key, value in secret.items() if key != "data"}
    for text in samples.strings(outside_data):
        for canary in CANARIES:
            assert canary not in text
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    job_json = json.loads(decoded["job.json"])
    for canary in CANARIES:
        assert canary not in decoded["job.json"]
        assert canary not in " ".join(secret["data"])  # keys are file names, not values
    assert job_json["id"] == JOB_ID
    parser = configparser.ConfigParser()
    parser.read_string(decoded["credentials"])
    assert parser["default"]["aws_access_key_id"] == samples.CANARY_ACCESS_KEY
    assert parser["default"]["aws_secret_access_key"] == samples.CANARY_SECRET_KEY
    assert parser["default"]["aws_session_token"] == samples.CANARY_SESSION_TOKEN
    assert json.loads(decoded["secret-config.json"]) == {"ApiToken": samples.CANARY_CONFIG_VALUE}
    assert decoded["secret-config.ApiToken"] == samples.CANARY_CONFIG_VALUE


def test_secret_identity_and_ownership() -> None:
    secret = _secret()
    assert secret["type"] == "Opaque"
    assert secret["immutable"] is False  # a credential refresh rewrites it
    metadata = secret["metadata"]
    assert metadata["name"] == f"cpw-{JOB_ID}"
    assert metadata["labels"][names.LABEL_JOB_ID] == JOB_ID
    (owner,) = metadata["ownerReferences"]
    assert owner["kind"] == "Job"
    assert owner["apiVersion"] == "batch/v1"
    assert owner["uid"] == JOB_UID
    assert owner["name"] == metadata["name"]


def test_credentials_patch_has_the_same_keys_as_the_secret() -> None:
    job = parse_job(raw_job())
    patch = jobsecret.credentials_patch(job.id, job.account_id, job.data, SECRET_PROPERTIES)
    assert set(patch["data"]) == set(_secret()["data"])


def test_job_without_credentials_gets_an_empty_credentials_file() -> None:
    raw = raw_job()
    del raw["data"]["artifactCredentials"]
    text = jobsecret.credentials_file(parse_job(raw).data.artifact_credentials)
    parser = configparser.ConfigParser()
    parser.read_string(text)
    assert parser.sections() == []


# --- Names derived from property names ------------------------------------------------------


@given(st.sets(st.text(min_size=1, max_size=50), max_size=10))
def test_derived_env_and_file_names_are_valid_and_unique(property_names: set[str]) -> None:
    envs = jobmanifest.config_env_names(property_names)
    files = jobsecret.secret_file_names(property_names)
    assert set(envs) == set(files) == property_names
    assert len(set(envs.values())) == len(envs)
    assert len(set(files.values())) == len(files)
    for env in envs.values():
        assert re.fullmatch(r"CPWORKER_CONFIG_[A-Z0-9_]*", env)
    for key in files.values():
        assert re.fullmatch(r"[-._a-zA-Z0-9]+", key)
        assert len(key) <= 253


def test_colliding_property_names_get_distinct_env_names() -> None:
    envs = jobmanifest.config_env_names(["make-target", "Make Target"])
    assert len(set(envs.values())) == 2
    assert all(v.startswith("CPWORKER_CONFIG_MAKE_TARGET") for v in envs.values())


# --- Patches and continuation tokens --------------------------------------------------------


def test_release_patch() -> None:
    assert jobrecord.release_patch(NOW) == {
        "metadata": {
            "annotations": {
                "cpworker.io/phase": "running",
                "cpworker.io/released-at": "2026-11-29T10:00:00.000Z",
            }
        },
        "spec": {"suspend": False},
    }


def test_continuation_patch_moves_the_job_to_the_new_id() -> None:
    # Applied once CodePipeline answered InProgress to the continuation's nonce (the nonce was
    # a candidate before): the Job runs on, so it is `running` at once, never `claiming`.
    new_id = "5f0d3c1e-2b7a-4c55-9e1d-0a1b2c3d4e5f"
    job = parse_job(raw_job(id=new_id, nonce="9"))
    patch = jobrecord.continuation_patch(job, previous_job_id=JOB_ID, now=NOW)
    assert patch["metadata"]["labels"][names.LABEL_JOB_ID] == new_id
    annotations = patch["metadata"]["annotations"]
    assert annotations[names.ANNOTATION_JOB_ID] == new_id
    assert annotations[names.ANNOTATION_NONCE] == "9"
    assert annotations[names.ANNOTATION_CONTINUATION_OF] == JOB_ID
    assert annotations[names.ANNOTATION_PHASE] == "running"
    assert annotations[names.ANNOTATION_RESULT] is None  # the previous job's `continued` goes


dns_labels = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?\Z")


@settings(max_examples=100)
@given(dns_labels, st.uuids(), st.one_of(st.none(), dns_labels))
def test_continuation_tokens_round_trip(name: str, uid: Any, namespace: str | None) -> None:
    token = continuation.continuation_token(name, str(uid), namespace)
    assert 1 <= len(token) <= 2048
    ref = continuation.parse_continuation_token(token)
    assert ref == continuation.ContinuationRef(namespace=namespace, job_name=name, job_uid=str(uid))


@pytest.mark.parametrize(
    "token",
    [
        "",
        "something-else",
        "cpworker.io/v1/ns/name",
        "cpworker.io/v1/ns/Bad_Name/uid",
        "cpworker.io/v1/a/b/c/d",
    ],
)
def test_foreign_or_broken_tokens_are_not_ours(token: str) -> None:
    assert continuation.parse_continuation_token(token) is None


@given(st.text(max_size=200))
def test_any_token_parses_or_is_ignored(token: str) -> None:
    ref = continuation.parse_continuation_token(token)
    if ref is not None:
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", ref.job_name)


# --- Hostile configuration: any names and values still give valid, secret-free manifests ----

# Without NUL: job data carrying one is refused at parse time (tests/fuzz/test_hostile_jobs.py).
carriable = st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00")
config_names = st.text(carriable, min_size=1, max_size=50)


@settings(max_examples=60)
@given(
    st.dictionaries(config_names, st.text(carriable, max_size=100), max_size=6),
    st.dictionaries(config_names, st.uuids(), min_size=1, max_size=3),
)
# Found by this test: a secret property named `json` overwrote secret-config.json.
@example(public={}, secret_suffixes={"json": uuid.UUID(int=1)})
def test_any_configuration_gives_valid_secret_free_manifests(
    public: dict[str, str], secret_suffixes: dict[str, Any]
) -> None:
    secret_values = {name: f"SECRET-{suffix}" for name, suffix in secret_suffixes.items()}
    public = {k: v for k, v in public.items() if k not in secret_values and v}
    raw = raw_job()
    raw["data"]["actionConfiguration"]["configuration"] = {**public, **secret_values}
    job = parse_job(raw)
    built = build_job(
        worker=WORKER,
        spec=parse_spec(spec()),
        job=job,
        secret_property_names=set(secret_values),
        settings=samples.settings(),
        now=NOW,
    )
    secret = build_secret(
        job_name=built["metadata"]["name"],
        namespace="ci",
        job_uid=JOB_UID,
        worker_name=WORKER.name,
        job=job,
        secret_property_names=set(secret_values),
    )
    kubernetes_validate.validate(built, "1.30", strict=True)
    kubernetes_validate.validate(secret, "1.30", strict=True)
    job_text = json.dumps(built)
    for value in secret_values.values():
        assert value not in job_text
    (container,) = built["spec"]["template"]["spec"]["containers"]
    env = _env(container)
    for name, value in public.items():
        # What the container sees, after the kubelet's $(VAR) expansion: the value itself.
        assert expand(env[jobmanifest.config_env_names(public)[name]], env) == value
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert json.loads(decoded["secret-config.json"]) == secret_values
    for name, key in jobsecret.secret_file_names(secret_values).items():
        assert decoded[key] == secret_values[name]


def test_the_shipped_schema_names_what_is_wrong_and_where() -> None:
    # schemas/job-batch-v1.json is the only structure check, in development and production:
    # each problem names the field's path in the template and what the schema wants.
    no_containers = _template()
    del no_containers["spec"]["template"]["spec"]["containers"]
    assert validate_job_template(no_containers) == [
        "jobTemplate.spec.template.spec: 'containers' is a required property"
    ]
    misspelt = _template(containers=[{"name": "b", "image": "i", "imagePullPolicyy": "Always"}])
    unexpected = "Additional properties are not allowed ('imagePullPolicyy' was unexpected)"
    assert validate_job_template(misspelt) == [
        f"jobTemplate.spec.template.spec.containers[0]: {unexpected}"
    ]
    assert validate_job_template(_template(containers=[{"image": "i"}])) == [
        "jobTemplate.spec.template.spec.containers[0]: 'name' is a required property"
    ]
    wrong_type = _template()
    wrong_type["spec"]["backoffLimit"] = "three"
    assert validate_job_template(wrong_type) == [
        "jobTemplate.spec.backoffLimit: 'three' is not of type 'integer', 'null'"
    ]
    # Definitions are reached through references (a volume's source, deep in the pod spec).
    bad_volume = _template(volumes=[{"name": "v", "emptyDir": {"sizeLimit": [1]}}])
    no_match = "[1] is not valid under any of the given schemas"
    assert validate_job_template(bad_volume) == [
        f"jobTemplate.spec.template.spec.volumes[0].emptyDir.sizeLimit: {no_match}"
    ]


def test_reported_patch_sets_the_ttl_only_now() -> None:
    patch = jobrecord.reported_patch(names.Result.SUCCEEDED, 600, NOW)
    assert patch["spec"] == {"ttlSecondsAfterFinished": 600}
    assert patch["metadata"]["annotations"] == {
        names.ANNOTATION_PHASE: "reported",
        names.ANNOTATION_RESULT: "succeeded",
        names.ANNOTATION_REPORTED_AT: "2026-11-29T10:00:00.000Z",
    }
