"""Deterministic names and label values: always valid Kubernetes names, never colliding."""

from __future__ import annotations

import re
import uuid

from hypothesis import given
from hypothesis import strategies as st

from cpworker import names

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def test_uuid_job_id_gives_readable_name() -> None:
    job_id = "4f0d3c1e-2b7a-4c55-9e1d-0a1b2c3d4e5f"
    assert names.job_object_name(job_id) == f"cpw-{job_id}"


def test_upper_case_uuid_is_not_treated_as_the_canonical_form() -> None:
    # CodePipeline ids are lower case; another spelling is a different id, so it must not
    # map onto the same Job as the lower-case one.
    job_id = "4F0D3C1E-2B7A-4C55-9E1D-0A1B2C3D4E5F"
    name = names.job_object_name(job_id)
    assert name != names.job_object_name(job_id.lower())
    assert DNS_LABEL.match(name)


@given(st.uuids())
def test_every_uuid_gives_a_dns_label(value: uuid.UUID) -> None:
    name = names.job_object_name(str(value))
    assert DNS_LABEL.match(name)
    assert len(name) <= 63


@given(st.text(max_size=300))
def test_any_job_id_gives_a_dns_label(job_id: str) -> None:
    name = names.job_object_name(job_id)
    assert DNS_LABEL.match(name), name
    assert len(name) <= 63
    assert names.job_object_name(job_id) == name  # deterministic


@given(st.text(max_size=50), st.text(max_size=50))
def test_distinct_ids_give_distinct_names(first: str, second: str) -> None:
    if first != second:
        assert names.job_object_name(first) != names.job_object_name(second)


@given(st.text(max_size=300))
def test_label_values_are_always_legal(text: str) -> None:
    value = names.label_value(text)
    assert names.is_valid_label_value(value)
    if names.is_valid_label_value(text):
        assert value == text


def test_long_worker_names_are_hashed_and_stable() -> None:
    long_name = "w" + "-x" * 100
    value = names.worker_label_value(long_name)
    assert value.startswith("h-")
    assert len(value) <= 63
    assert value == names.worker_label_value(long_name)


def test_job_labels_and_selectors_agree() -> None:
    labels = names.job_labels("gpu-builds", "4f0d3c1e-2b7a-4c55-9e1d-0a1b2c3d4e5f")
    assert labels[names.LABEL_MANAGED_BY] == "cpworker"
    selector = dict(part.split("=") for part in names.worker_selector("gpu-builds").split(","))
    assert all(labels[key] == value for key, value in selector.items())
    assert names.LABEL_WORKER in names.managed_selector()


def test_reserved_keys() -> None:
    assert names.is_reserved_key("cpworker.io/phase")
    assert names.is_reserved_key("kopf.cpworker.io/last-handled-configuration")
    assert not names.is_reserved_key("app.kubernetes.io/name")
    assert not names.is_reserved_key("example.com/cpworker.io")


def test_api_identity() -> None:
    assert names.API_VERSION == "cpworker.io/v1alpha1"
    assert names.CRD_NAME == "customactionworkers.cpworker.io"
    assert names.FINALIZER == "cpworker.io/finalizer"
    assert {phase.value for phase in names.Phase} == {
        "claiming",
        "running",
        "reported",
        "cancelled",
    }
