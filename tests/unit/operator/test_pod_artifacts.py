"""The artifact helper in the Job's pod: containers, volume, env, limits, grace, security, and
the pod exactly as the template says when there is nothing to move (jobmanifest.py)."""

from __future__ import annotations

import copy
import os
from typing import Any

import kubernetes_validate
import pytest

from cpworker import jobmanifest, names
from cpworker.artifacts.settings import load_helper_settings
from cpworker.jobdata import parse_job
from cpworker.jobmanifest import build_job, dropped_sidecars
from cpworker.jobtemplate import validate_job_template
from cpworker.models import parse_spec
from tests.unit.operator import samples

IMAGE = "registry.example.com/cpworker@sha256:" + "a" * 64
PUSH, PULL = names.PUSH_CONTAINER, names.PULL_CONTAINER


def build(
    *,
    pod: dict[str, Any] | None = None,
    artifacts: dict[str, Any] | None = None,
    job_data: dict[str, Any] | None = None,
    **settings: Any,
) -> dict[str, Any]:
    spec = samples.spec()
    spec["jobTemplate"]["spec"]["template"]["spec"].update(pod or {})
    if artifacts is not None:
        spec["artifacts"] = artifacts
    raw = samples.raw_job()
    raw["data"].update(job_data or {})
    return build_job(
        worker=samples.WORKER,
        spec=parse_spec(spec),
        job=parse_job(raw),
        secret_property_names=samples.SECRET_PROPERTIES,
        settings=samples.settings(artifacts_image=IMAGE, **settings),
        now=samples.NOW,
    )


def pod_spec(job: dict[str, Any]) -> dict[str, Any]:
    return dict(job["spec"]["template"]["spec"])


def by_name(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = pod_spec(job)
    return {c["name"]: c for c in [*spec.get("initContainers", []), *spec["containers"]]}


def env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"]}


def test_push_then_pull_before_the_templates_containers() -> None:
    job = build()
    spec = pod_spec(job)
    push, pull = spec["initContainers"]
    assert (push["name"], pull["name"]) == (PUSH, PULL)
    # push is a native sidecar (stopped after every other container), waiting for SIGTERM;
    # pull ends only once push is ready for it.
    assert push["restartPolicy"] == "Always"
    assert push["command"] == ["cpworker", "artifacts", "push", "--wait-for-sigterm"]
    assert "restartPolicy" not in pull
    assert pull["command"] == ["cpworker", "artifacts", "pull", "--wait-for-push"]
    assert push["image"] == pull["image"] == IMAGE
    assert [c["name"] for c in spec["containers"]] == ["build"]
    assert spec["containers"][0]["command"] == ["./ci/build.sh"]
    kubernetes_validate.validate(job, "1.32", strict=True)


def test_one_emptydir_backs_both_directories_in_every_container() -> None:
    job = build(artifacts={"inputDir": "/src", "outputDir": "/var/out/artifacts"})
    volumes = {v["name"]: v for v in pod_spec(job)["volumes"]}
    assert volumes[names.ARTIFACTS_VOLUME] == {"name": names.ARTIFACTS_VOLUME, "emptyDir": {}}
    assert set(volumes) == {names.JOB_VOLUME, names.ARTIFACTS_VOLUME}
    for container in by_name(job).values():
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert mounts["/src"]["subPath"] == "in"
        assert mounts["/var/out/artifacts"]["subPath"] == "out"
        assert {mounts[p]["name"] for p in ("/src", "/var/out/artifacts")} == {
            names.ARTIFACTS_VOLUME
        }
        assert mounts[jobmanifest.MOUNT_PATH]["readOnly"] is True
        variables = env(container)
        assert variables["CPWORKER_INPUT_DIR"] == "/src"
        assert variables["CPWORKER_OUTPUT_DIR"] == "/var/out/artifacts"


def test_the_templates_init_containers_and_sidecars_keep_their_order_after_the_helpers() -> None:
    user_init = [
        {"name": "fetch-tools", "image": "busybox", "command": ["true"]},
        {"name": "logs", "image": "fluent-bit", "restartPolicy": "Always"},
        {"name": "migrate", "image": "busybox", "command": ["true"]},
    ]
    job = build(pod={"initContainers": copy.deepcopy(user_init)})
    init = pod_spec(job)["initContainers"]
    assert [c["name"] for c in init] == [PUSH, PULL, "fetch-tools", "logs", "migrate"]
    assert init[3]["restartPolicy"] == "Always"
    # The template's init containers see the artifacts too.
    for container in init[2:]:
        assert "CPWORKER_INPUT_DIR" in env(container)
    assert validate_job_template(parse_spec(samples.spec()).job_template) == []


def test_the_limits_reach_the_helper_as_its_own_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = {"maxTotalBytes": 123_456_789, "maxFiles": 4321, "maxCompressionRatio": 55}
    job = build(artifacts={"limits": limits})
    for name in (PUSH, PULL):
        for key in [k for k in os.environ if k.startswith("CPWORKER_")]:
            monkeypatch.delenv(key)
        for key, value in env(by_name(job)[name]).items():
            monkeypatch.setenv(key, value)
        helper = load_helper_settings()
        assert helper.max_total_bytes == limits["maxTotalBytes"]
        assert helper.max_files == limits["maxFiles"]
        assert helper.max_compression_ratio == limits["maxCompressionRatio"]
        assert str(helper.input_dir) == "/workspace/in"
        assert str(helper.output_dir) == "/workspace/out"
        assert str(helper.job_file) == "/var/run/cpworker/job.json"
        assert str(helper.credentials_file) == "/var/run/cpworker/credentials"
        assert str(helper.result_file) == "/dev/termination-log"
        assert helper.region == "us-east-1"


@pytest.mark.parametrize(
    ("template_grace", "setting", "expected"),
    [(None, 900, 900), (10, 900, 900), (3600, 900, 3600), (None, 5, 30), (2, 1, 2)],
)
def test_the_grace_period_covers_the_upload(
    template_grace: int | None, setting: int, expected: int
) -> None:
    pod = {} if template_grace is None else {"terminationGracePeriodSeconds": template_grace}
    job = build(pod=pod, artifacts_push_grace_seconds=setting)
    assert pod_spec(job)["terminationGracePeriodSeconds"] == expected


def test_a_job_without_outputs_gets_only_the_pull() -> None:
    job = build(pod={"terminationGracePeriodSeconds": 10}, job_data={"outputArtifacts": []})
    spec = pod_spec(job)
    (pull,) = spec["initContainers"]
    assert pull["name"] == PULL
    assert pull["command"] == ["cpworker", "artifacts", "pull"]
    assert spec["terminationGracePeriodSeconds"] == 10  # nothing to upload: as written
    assert dropped_sidecars(job) == []


def test_a_job_with_only_outputs_still_pulls_to_create_the_output_directories() -> None:
    job = build(job_data={"inputArtifacts": []})
    assert [c["name"] for c in pod_spec(job)["initContainers"]] == [PUSH, PULL]


@pytest.mark.parametrize(
    ("artifacts", "job_data"),
    [
        ({"enabled": False}, {}),
        (None, {"inputArtifacts": [], "outputArtifacts": []}),
    ],
    ids=["disabled", "no artifacts"],
)
def test_without_the_helper_the_pod_is_as_before(
    artifacts: dict[str, Any] | None, job_data: dict[str, Any]
) -> None:
    user_init = [{"name": "migrate", "image": "busybox", "command": ["true"]}]
    job = build(
        pod={"initContainers": user_init, "terminationGracePeriodSeconds": 5},
        artifacts=artifacts,
        job_data=job_data,
    )
    spec = pod_spec(job)
    assert [c["name"] for c in spec["initContainers"]] == ["migrate"]
    assert [v["name"] for v in spec["volumes"]] == [names.JOB_VOLUME]
    assert spec["terminationGracePeriodSeconds"] == 5
    for container in by_name(job).values():
        assert not {"CPWORKER_INPUT_DIR", "CPWORKER_OUTPUT_DIR"} & set(env(container))
        assert [m["name"] for m in container["volumeMounts"]] == [names.JOB_VOLUME]


def test_the_helpers_run_restricted() -> None:
    job = build(pod={"securityContext": {"seccompProfile": {"type": "Unconfined"}}})
    for name in (PUSH, PULL):
        security = by_name(job)[name]["securityContext"]
        assert security == {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        assert by_name(job)[name]["terminationMessagePolicy"] == "FallbackToLogsOnError"


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        (
            {"securityContext": {"runAsUser": 1000, "runAsGroup": 3000}},
            {"runAsUser": 1000, "runAsGroup": 3000, "runAsNonRoot": True},
        ),
        (
            {
                "securityContext": {"runAsUser": 1000},
                "containers": [
                    {
                        "name": "build",
                        "image": "b",
                        "securityContext": {"runAsUser": 2000, "runAsGroup": 2000},
                    },
                    {"name": "db", "image": "d", "securityContext": {"runAsUser": 999}},
                ],
            },
            {"runAsUser": 2000, "runAsGroup": 2000, "runAsNonRoot": True},
        ),
        ({"securityContext": {"runAsUser": 0}}, {"runAsUser": 0, "runAsNonRoot": False}),
        ({}, {"runAsNonRoot": True}),
    ],
    ids=["pod", "first container wins", "explicit root", "the image's user"],
)
def test_the_helpers_run_as_the_templates_user(
    pod: dict[str, Any], expected: dict[str, Any]
) -> None:
    job = build(pod=pod)
    for name in (PUSH, PULL):
        security = by_name(job)[name]["securityContext"]
        chosen = {
            k: security[k] for k in ("runAsUser", "runAsGroup", "runAsNonRoot") if k in security
        }
        assert chosen == expected


def test_resources_and_s3_endpoint_from_the_settings() -> None:
    resources = {"requests": {"cpu": "250m", "memory": "200Mi"}, "limits": {"memory": "2Gi"}}
    job = build(
        artifacts_resources=resources, artifacts_s3_endpoint_url="https://s3.vpce.example.com"
    )
    for name in (PUSH, PULL):
        container = by_name(job)[name]
        assert container["resources"] == resources
        assert env(container)["AWS_ENDPOINT_URL_S3"] == "https://s3.vpce.example.com"
    assert "AWS_ENDPOINT_URL_S3" not in env(by_name(job)["build"])
    default = by_name(build())[PULL]
    assert default["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"memory": "1Gi"},
    }
    assert "AWS_ENDPOINT_URL_S3" not in env(default)


def test_a_sidecar_the_api_server_dropped_is_noticed() -> None:
    job = build()
    assert dropped_sidecars(job) == []
    older = copy.deepcopy(job)
    del older["spec"]["template"]["spec"]["initContainers"][0]["restartPolicy"]
    assert dropped_sidecars(older) == [PUSH]


@pytest.mark.parametrize(
    ("pod_change", "expected"),
    [
        (
            {"containers": [{"name": "cpworker-build", "image": "b"}]},
            "container names starting with cpworker- are reserved",
        ),
        (
            {"initContainers": [{"name": "cpworker-pull", "image": "b"}]},
            "container names starting with cpworker- are reserved",
        ),
        (
            {
                "containers": [
                    {
                        "name": "b",
                        "image": "b",
                        "volumeMounts": [{"name": "w", "mountPath": "/workspace/in"}],
                    }
                ],
                "volumes": [{"name": "w", "emptyDir": {}}],
            },
            "is at or under spec.artifacts.inputDir",
        ),
        (
            {
                "containers": [
                    {
                        "name": "b",
                        "image": "b",
                        "volumeMounts": [{"name": "w", "mountPath": "/workspace/out/cache"}],
                    }
                ],
                "volumes": [{"name": "w", "emptyDir": {}}],
            },
            "is at or under spec.artifacts.outputDir",
        ),
        (
            {"volumes": [{"name": "cpworker-artifacts", "emptyDir": {}}]},
            "names starting with cpworker- are reserved",
        ),
        (
            {
                "containers": [
                    {
                        "name": "b",
                        "image": "b",
                        "env": [{"name": "CPWORKER_INPUT_DIR", "value": "/x"}],
                    }
                ]
            },
            "env CPWORKER_INPUT_DIR: the operator sets it",
        ),
    ],
)
def test_the_operators_names_and_directories_stay_reserved(
    pod_change: dict[str, Any], expected: str
) -> None:
    spec = samples.spec()
    spec["jobTemplate"]["spec"]["template"]["spec"].update(pod_change)
    parsed = parse_spec(spec)
    problems = validate_job_template(parsed.job_template, artifacts=parsed.artifacts)
    assert any(expected in p for p in problems), problems


def test_mounts_beside_the_artifacts_or_with_the_helper_off_are_fine() -> None:
    change = {
        "containers": [
            {
                "name": "b",
                "image": "b",
                "volumeMounts": [
                    {"name": "w", "mountPath": "/workspace"},
                    {"name": "w", "mountPath": "/workspace/input", "subPath": "x"},
                ],
            }
        ],
        "volumes": [{"name": "w", "emptyDir": {}}],
    }
    spec = samples.spec()
    spec["jobTemplate"]["spec"]["template"]["spec"].update(change)
    parsed = parse_spec(spec)
    assert validate_job_template(parsed.job_template, artifacts=parsed.artifacts) == []
    at_input = copy.deepcopy(spec)
    mounts = at_input["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    mounts[1]["mountPath"] = "/workspace/in"
    at_input["artifacts"] = {"enabled": False}
    parsed = parse_spec(at_input)
    assert validate_job_template(parsed.job_template, artifacts=parsed.artifacts) == []
