"""The image starts as the chart runs it: uid 65532, read-only root filesystem, /tmp tmpfs."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.image.conftest import BUILD_TIMEOUT, RunInImage
from tools.image.build import REPO_ROOT, BuiltImage
from tools.image.podman import inspect_image

pytestmark = pytest.mark.timeout(BUILD_TIMEOUT)

# Inside the image: who runs, what is writable, what the environment says.
PROBE = """
import json, os, sys
def writable(path):
    try:
        with open(os.path.join(path, "probe"), "w") as handle:
            handle.write("x")
    except OSError as exc:
        return exc.strerror
    return True
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
    "tmp": writable("/tmp"), "venv": writable("/opt/cpworker"), "root": writable("/"),
    "path": os.environ["PATH"].split(os.pathsep),
    "executable": sys.executable, "prefix": sys.prefix,
}))
"""


@pytest.fixture(scope="module")
def seen(image_python: Any) -> dict[str, Any]:
    probed: dict[str, Any] = image_python(PROBE)
    return probed


def test_help_as_uid_65532_on_a_read_only_root(run_in_image: RunInImage) -> None:
    result = run_in_image("--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: cpworker <command>")
    assert "run " in result.stdout


def test_runs_as_the_images_own_non_root_user(image: BuiltImage, image_python: Any) -> None:
    config = inspect_image(image.ref)["Config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["cpworker"]
    assert config["Cmd"] == ["run"]
    # No --user: the image's USER alone decides.
    seen = image_python(PROBE, user=None)
    assert (seen["uid"], seen["gid"]) == (65532, 65532)
    assert seen["groups"] in ([], [65532])


def test_only_tmp_is_writable(seen: dict[str, Any]) -> None:
    assert seen["tmp"] is True
    assert seen["venv"] == "Read-only file system"
    assert seen["root"] == "Read-only file system"


def test_the_virtualenv_comes_first_and_path_is_absolute(seen: dict[str, Any]) -> None:
    assert seen["prefix"] == "/opt/cpworker"
    assert seen["path"][0] == "/opt/cpworker/bin"
    # An empty entry would mean the current directory (a base without PATH would cause it).
    assert all(entry.startswith("/") for entry in seen["path"]), seen["path"]


def test_the_sandbox_is_not_in_the_image(run_in_image: RunInImage) -> None:
    result = run_in_image("sandbox", "up")
    assert result.returncode == 2
    assert "cpworker.sandbox is missing" in result.stderr


def test_the_image_renders_the_repository_crd(run_in_image: RunInImage) -> None:
    result = run_in_image("crd")
    assert result.returncode == 0, result.stderr
    committed = REPO_ROOT / "crds" / "cpworker.io_customactionworkers.yaml"
    assert yaml.safe_load(result.stdout) == yaml.safe_load(committed.read_text())
