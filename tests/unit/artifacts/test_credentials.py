"""The credentials file: parsed strictly, re-read as it changes, waited for when expired."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from cpworker import jobsecret
from cpworker.artifacts.credentials import FileCredentials, parse_credentials_file
from cpworker.artifacts.failures import ArtifactFailure
from cpworker.jobdata import AwsSessionCredentials
from cpworker.logging_setup import redact
from tests.integration.artifacts.pod import JobVolume


def credentials(number: int) -> str:
    return jobsecret.credentials_file(
        AwsSessionCredentials.model_validate(
            {
                "accessKeyId": f"ASIAKEY{number:013}",
                "secretAccessKey": f"secret-number-{number}-abcdef",
                "sessionToken": f"token-number-{number}-abcdef",
            }
        )
    )


class FakeClock:
    """Time that moves only when the code sleeps (and can run a callback when it does)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.on_sleep: Callable[[float], None] | None = None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep(self.now)


@pytest.fixture
def volume(tmp_path: Path) -> JobVolume:
    created = JobVolume(tmp_path / "volume")
    created.write(credentials=credentials(1))
    return created


def test_the_operators_file_parses_and_secrets_are_redacted(volume: JobVolume) -> None:
    frozen = parse_credentials_file(volume.credentials.read_text(), volume.credentials)
    assert frozen.access_key == "ASIAKEY0000000000001"
    assert frozen.token == "token-number-1-abcdef"
    assert redact(f"oops {frozen.secret_key} {frozen.token}") == "oops *** ***"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (jobsecret.credentials_file(None), "CodePipeline sent no artifact credentials"),
        ("[other]\naws_access_key_id = A\naws_secret_access_key = B\n", "no [default] profile"),
        ("not [an ini", "is not an AWS shared-credentials file"),
    ],
)
def test_a_file_without_credentials_is_a_permission_error(
    tmp_path: Path, text: str, fragment: str
) -> None:
    path = tmp_path / "credentials"
    path.write_text(text)
    with pytest.raises(ArtifactFailure) as refused:
        FileCredentials(path, recheck_seconds=5, wait_seconds=1)
    assert refused.value.failure_type == "PermissionError"
    assert fragment in refused.value.message


def test_a_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactFailure) as refused:
        FileCredentials(tmp_path / "nope", recheck_seconds=5, wait_seconds=1)
    assert refused.value.failure_type == "ConfigurationError"


def test_a_refreshed_file_is_used_once_the_recheck_is_due(volume: JobVolume) -> None:
    clock = FakeClock()
    creds = FileCredentials(
        volume.credentials, recheck_seconds=5, wait_seconds=60, clock=clock, sleep=clock.sleep
    )
    volume.write(credentials=credentials(2))
    assert creds.get_frozen_credentials().access_key == "ASIAKEY0000000000001"  # not yet due
    clock.now = 5.0
    assert creds.get_frozen_credentials().access_key == "ASIAKEY0000000000002"
    assert creds.generation == 2


def test_expiry_waits_for_a_newer_file(volume: JobVolume) -> None:
    clock = FakeClock()
    creds = FileCredentials(
        volume.credentials, recheck_seconds=600, wait_seconds=120, clock=clock, sleep=clock.sleep
    )
    creds.get_frozen_credentials()  # this thread's request was signed with generation 1
    # The kubelet publishes the operator's refresh 30 s later.
    clock.on_sleep = lambda now: volume.write(credentials=credentials(2)) if now >= 30 else None
    assert creds.renew_after_expiry() is True
    assert 30 <= clock.now < 32
    assert creds.get_frozen_credentials().access_key == "ASIAKEY0000000000002"


def test_expiry_gives_up_after_the_wait(volume: JobVolume) -> None:
    clock = FakeClock()
    creds = FileCredentials(
        volume.credentials, recheck_seconds=600, wait_seconds=10, clock=clock, sleep=clock.sleep
    )
    creds.get_frozen_credentials()
    assert creds.renew_after_expiry() is False
    assert clock.now == pytest.approx(10)
    assert creds.renew_after_expiry() is False  # a second request does not wait again
    assert clock.now == pytest.approx(10)
    volume.write(credentials=credentials(3))  # fresh ones after all: the next retry uses them
    assert creds.renew_after_expiry() is True


def test_threads_signed_with_the_old_file_share_one_renewal(volume: JobVolume) -> None:
    creds = FileCredentials(volume.credentials, recheck_seconds=600, wait_seconds=30)
    started = threading.Barrier(5)
    results: list[bool] = []

    def part_upload() -> None:
        creds.get_frozen_credentials()
        started.wait()
        results.append(creds.renew_after_expiry())

    threads = [threading.Thread(target=part_upload) for _ in range(4)]
    for thread in threads:
        thread.start()
    started.wait()
    volume.write(credentials=credentials(2))
    for thread in threads:
        thread.join(timeout=30)
    assert results == [True] * 4
    assert creds.generation == 2  # one new version, loaded once


def test_a_rewrite_while_the_file_is_replaced_keeps_the_current_credentials(
    volume: JobVolume,
) -> None:
    clock = FakeClock()
    creds = FileCredentials(
        volume.credentials, recheck_seconds=1, wait_seconds=5, clock=clock, sleep=clock.sleep
    )
    volume.write(credentials="[default]\n")  # an operator bug: no keys at all
    clock.now = 2
    assert creds.get_frozen_credentials().access_key == "ASIAKEY0000000000001"
