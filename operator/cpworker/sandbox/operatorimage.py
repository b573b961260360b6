"""The operator's own image, as the local Kubernetes runs it: the artifact helper's containers.

In a cluster, `cpworker-pull` and `cpworker-push` (jobmanifest.py) run the operator image
(`CPWORKER_ARTIFACTS_IMAGE`), whose PATH starts with the virtualenv holding `cpworker`
(operator/Dockerfile: `ENV PATH=/opt/cpworker/bin:$PATH`). The local Kubernetes has no images,
so this module tells it what that image is (`RunnerConfig.image_scripts`, `image_env`):

- in a scripted pod, the image's program does what the helper does when nothing goes wrong:
  pull exits 0 at once; push runs until SIGTERM, then exits 0 (it handles SIGTERM: it uploads,
  then exits). A test scripts a failure with container-specific annotations, e.g.
  `sandbox.cpworker.io/exit-code.cpworker-pull: "1"` or `sigterm-exit-code.cpworker-push`;
- in a local-exec pod the helper really runs: the image's PATH is this interpreter's scripts
  directory (the venv's `cpworker`, the same code the image holds) before the host's PATH.

Nothing else is mapped: the helper's environment is what the operator puts into the pod (S3's
endpoint included, `CPWORKER_ARTIFACTS_S3_ENDPOINT_URL`), as in a cluster.
"""

from __future__ import annotations

import dataclasses
import os
import sysconfig
from typing import Final

from cpworker import names
from cpworker.sandbox.kube.jobrunner import RunnerConfig
from cpworker.settings import DEFAULT_ARTIFACTS_IMAGE

# scripted.py keys, per container of the image.
HELPER_SCRIPT: Final = {
    f"duration.{names.PULL_CONTAINER}": "0s",
    f"duration.{names.PUSH_CONTAINER}": "never",
    f"sigterm-exit-code.{names.PUSH_CONTAINER}": "0",
}


def image_path() -> str:
    """The image's PATH, mapped: where this interpreter's console scripts (cpworker) live."""
    scripts = sysconfig.get_path("scripts")
    return os.pathsep.join([scripts, os.environ.get("PATH", "/usr/bin:/bin")])


def with_operator_image(config: RunnerConfig, image: str = DEFAULT_ARTIFACTS_IMAGE) -> RunnerConfig:
    """`config`, knowing the operator image `image` (scripted and local-exec)."""
    return dataclasses.replace(
        config,
        image_scripts={**config.image_scripts, image: dict(HELPER_SCRIPT)},
        image_env={**config.image_env, image: {"PATH": image_path()}},
    )
