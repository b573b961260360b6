"""The raw loop: only the necessary calls, parameterized by a polling policy.

    python -m cpworker.bench.rawloop PLAN.json RESULT.json

Run as a subprocess, like the operator, with the same clients: boto3 for CodePipeline behind the
same kind of thread pool, and the operator's own Kubernetes client (`cpworker.kube`, aiohttp
with JSON bodies). Each worker polls its pool, and for every job: AcknowledgeJob, create the
Secret, create the Job (unsuspended). Nothing else: no status, no events, no reports.

- with the `raw-ceiling` policy it polls again at once, until its expected jobs are
  dispatched: the throughput ceiling of the stand-ins for the burst;
- with a baseline policy (policies.BASELINES) it models how a known worker polls, for the
  length of the plan's deadline.

The result file holds the calls each group made, counted client-side (the benchmark checks
the total against the stand-in's request log).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import json
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from cpworker import kube, kubeconn, names
from cpworker.bench import policies

Counts = collections.Counter[str]


def secret_manifest(worker: str, job: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": names.job_object_name(job["id"]),
            "labels": names.job_labels(worker, job["id"]),
        },
        "type": "Opaque",
        "stringData": {"job.json": json.dumps(job.get("data") or {})},
    }


def job_manifest(worker: str, job: dict[str, Any], duration: float) -> dict[str, Any]:
    name = names.job_object_name(job["id"])
    labels = names.job_labels(worker, job["id"])
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {names.ANNOTATION_JOB_ID: job["id"]},
        },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {"sandbox.cpworker.io/duration": f"{duration:g}s"},
                },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "build",
                            "image": "example.com/builder:1",
                            "volumeMounts": [{"name": "job", "mountPath": "/cpworker/job"}],
                        }
                    ],
                    "volumes": [{"name": "job", "secret": {"secretName": name}}],
                },
            },
        },
    }


class RawLoop:
    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        self.scale = float(plan.get("time_scale", 1.0))
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=int(plan.get("executor_threads", 16)), thread_name_prefix="raw-io"
        )
        self.cp = boto3.session.Session(region_name=plan["region"]).client(
            "codepipeline",
            config=Config(
                retries={"total_max_attempts": 1, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
            ),
        )
        # The operator's own Kubernetes client, without its retries: the same transport.
        self.kube = kube.KubeClient(
            kubeconn.load(os.environ["KUBECONFIG"]),
            attempts=1,
            pool_size=int(plan.get("executor_threads", 16)),
        )
        self.counts: dict[str, Counts] = {g["name"]: collections.Counter() for g in plan["groups"]}
        self.stopping = asyncio.Event()

    async def _io(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: function(*args, **kwargs))

    async def _create(self, path: str, body: dict[str, Any]) -> int:
        """The answer's HTTP status (0: no answer)."""
        try:
            await self.kube.request("POST", path, body)
        except kube.KubeError as exc:
            return exc.status or 599
        return 201

    async def _dispatch(self, group: dict[str, Any], worker: str, job: dict[str, Any]) -> bool:
        counts = self.counts[group["name"]]
        namespace = group["namespace"]
        try:
            answer = await self._io(self.cp.acknowledge_job, jobId=job["id"], nonce=job["nonce"])
            counts["AcknowledgeJob"] += 1
        except (ClientError, BotoCoreError) as exc:
            counts["AcknowledgeJob"] += 1
            counts[f"error:{type(exc).__name__}"] += 1
            return False
        if answer.get("status") != "InProgress":
            return False
        for path, body, what in (
            (f"/api/v1/namespaces/{namespace}/secrets", secret_manifest(worker, job), "secrets"),
            (
                f"/apis/batch/v1/namespaces/{namespace}/jobs",
                job_manifest(worker, job, float(group.get("job_duration", 1.0))),
                "jobs",
            ),
        ):
            status = await self._create(path, body)
            counts[f"create:{what}"] += 1
            if status >= 400:
                counts[f"error:kube-{status}"] += 1
                return False
        counts["dispatched"] += 1
        return True

    async def _worker(self, group: dict[str, Any], index: int, worker: dict[str, Any]) -> None:
        policy = policies.by_name(group["policy"])
        seed = int(self.plan.get("seed", 0)) * 100_003 + index
        rng = random.Random(seed)  # noqa: S311 - timing, not cryptography
        counts = self.counts[group["name"]]
        expect: int | None = worker.get("expect")
        dispatched = 0
        name = worker["worker"]
        if policy.interval > 0 and not await self._sleep(policy.first_delay(rng, self.scale)):
            return
        while not self.stopping.is_set() and (expect is None or dispatched < expect):
            batch = policy.batch if expect is None else min(policy.batch, expect - dispatched)
            try:
                answer = await self._io(
                    self.cp.poll_for_jobs,
                    actionTypeId=group["action_type_id"],
                    maxBatchSize=batch,
                    queryParam={"Pool": worker["pool"]},
                )
                jobs = list(answer.get("jobs") or [])
            except (ClientError, BotoCoreError) as exc:
                counts[f"error:{type(exc).__name__}"] += 1
                jobs = []
            counts["PollForJobs"] += 1
            outcomes = await asyncio.gather(*(self._dispatch(group, name, j) for j in jobs))
            dispatched += sum(outcomes)
            if policy.interval > 0 and not await self._sleep(policy.next_delay(rng, self.scale)):
                return

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopping; False when the loop must end."""
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except TimeoutError:
            return True
        return False

    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        started = time.time()
        tasks = [
            asyncio.create_task(self._worker(group, index, worker))
            for group in self.plan["groups"]
            for index, worker in enumerate(group["workers"])
        ]
        _, pending = await asyncio.wait(tasks, timeout=float(self.plan["deadline_s"]))
        self.stopping.set()
        if pending:
            await asyncio.wait(pending, timeout=35)
        self.executor.shutdown(wait=False, cancel_futures=True)
        await self.kube.close()
        return {
            "started": started,
            "ended": time.time(),
            "groups": {name: dict(counts) for name, counts in self.counts.items()},
        }


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python -m cpworker.bench.rawloop PLAN.json RESULT.json\n")
        return 2
    plan = json.loads(Path(argv[0]).read_text())
    result = asyncio.run(RawLoop(plan).run())
    Path(argv[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
