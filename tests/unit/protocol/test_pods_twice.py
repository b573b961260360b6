"""A Job whose pod ran twice (the first lost, the second done) gets one result, from the Job's
end and the pod that succeeded; more rounds and late pods change nothing.
(The end-to-end twin, with the local Kubernetes' Job controller: tests/e2e/test_pods_twice.py.)
"""

from __future__ import annotations

import copy

from cpworker import jobrecord
from tests.unit.protocol.world import NAMESPACE, World, job_name


def second_pod(world: World, job_id: str, phase: str, exit_code: int, message: str) -> None:
    """The Job controller's replacement pod, ended with `phase`."""
    [first] = world.kube.objects("pods")
    pod = copy.deepcopy(first)
    pod["metadata"] = {**pod["metadata"], "name": f"{job_name(job_id)}-r3pl4"}
    pod["status"] = {
        "phase": phase,
        # The artifact helpers ran too (the push sidecar's verdict is part of a success).
        "initContainerStatuses": [
            {"name": c["name"], "state": {"terminated": {"exitCode": 0}}}
            for c in pod["spec"].get("initContainers") or []
        ],
        "containerStatuses": [
            {
                "name": "build",
                "state": {"terminated": {"exitCode": exit_code, "message": message}},
            }
        ],
    }
    world.kube.external_create("pods", pod)


async def test_a_lost_first_pod_and_a_successful_replacement_report_one_success(
    world: World,
) -> None:
    life = world.life()
    job_id = await world.dispatched(life)
    [first] = world.kube.objects("pods")
    world.kube.external_patch(
        "pods",
        NAMESPACE,
        first["metadata"]["name"],
        {"status": {"phase": "Failed", "reason": "Evicted", "message": "The node was low"}},
    )
    second_pod(world, job_id, "Succeeded", 0, '{"summary": "built on the second try"}')
    world.kube.external_patch(
        "jobs",
        NAMESPACE,
        job_name(job_id),
        {"status": {"conditions": [{"type": "Complete", "status": "True"}], "failed": 1}},
    )
    for _ in range(3):
        await life.supervise()
    [accepted] = world.cp.accepted
    assert accepted.succeeded
    assert accepted.params["executionDetails"]["summary"] == "built on the second try"
    assert len(world.cp.puts) == 1
    assert jobrecord.phase_of(world.job(job_id) or {}) == "reported"

    # A restarted operator changes nothing either.
    await world.life().supervise()
    assert len(world.cp.puts) == 1
