"""kopf against watch faults and watch gaps of the stand-in, with the Job tracking shape
cpworker uses (a kopf index of labelled Jobs + `on.event`, kopf_fault_handlers.py).

These document properties of kopf with a real API server, not of cpworker:
- cut or aborted streams and refused requests: kopf resumes and loses nothing;
- `410 Gone` on resume: kopf relists;
- a Job deleted during a watch gap (streams closed, history compacted, as after an API server
  restart) produces no DELETED event: kopf relists, and its index keeps the vanished Job for
  good — the ghost entry of issue 13 (#3);
- an ERROR event other than 410 stops the whole operator (kopf: "Other watch errors should be
  fatal for the operator", kopf/_cogs/clients/watching.py), and so does a watch refused for
  longer than kopf's retries.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubernetes.client import BatchV1Api, CoreV1Api

from cpworker.sandbox.kube import KubeStandIn
from cpworker.sandbox.kube.api import DeleteOptions
from tests.integration.kube.helpers import is_gone, wait_for

HANDLERS = Path(__file__).with_name("kopf_fault_handlers.py")
NS = "kopf-faults"
JOBS = ("batch", "jobs")
# Jobs that stay active: what a ghost in cpworker's index is, a running Job.
TEMPLATE = {
    "metadata": {"annotations": {"sandbox.cpworker.io/duration": "600s"}},
    "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox:1"}]},
}


class Tracked:
    """The cluster side of a test: creates tracked Jobs and reads what kopf saw."""

    def __init__(self, kube: KubeStandIn, client: Any) -> None:
        self.kube = kube
        self.core: Any = CoreV1Api(client)
        self.batch: Any = BatchV1Api(client)

    def create(self, name: str) -> None:
        self.batch.create_namespaced_job(
            NS,
            {
                "metadata": {"name": name, "labels": {"app": "tracked"}},
                "spec": {"template": TEMPLATE},
            },
        )

    def indexed(self) -> list[str]:
        """The Jobs in kopf's index, as its timer last reported them."""
        data = self.core.read_namespaced_config_map("report", NS).data or {}
        return [name for name in str(data.get("indexed", "")).split(",") if name]

    def wait_ready(self) -> None:
        """kopf runs its timer, so it has listed (and watches) what it serves."""
        wait_for(
            lambda: "indexed" in (self.core.read_namespaced_config_map("report", NS).data or {}),
            "kopf ready",
        )

    def wait_indexed(self, names: list[str], what: str) -> None:
        wait_for(lambda: self.indexed() == names, what)

    def deleted_seen(self, name: str) -> bool:
        """Whether kopf's on.event handler saw a DELETED event for the Job."""
        return not is_gone(lambda: self.core.read_namespaced_config_map(f"deleted-{name}", NS))

    def lists_of_jobs(self) -> int:
        return sum(1 for r in self.kube.audit() if (r.verb, r.resource) == ("list", "jobs"))


@pytest.fixture
def tracked(
    kube: KubeStandIn, kube_api: Any, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> Tracked:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    kube.apply_manifests([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}])
    cluster = Tracked(kube, kube_api)
    report = {"metadata": {"name": "report", "labels": {"role": "report"}}}
    wait_for(lambda: cluster.core.read_namespaced_service_account("default", NS), "namespace")
    cluster.core.create_namespaced_config_map(NS, report)
    return cluster


@pytest.fixture
def kopf_operator() -> Callable[[], KopfRunner]:
    """A kopf runner (in-process, this namespace only) for the test to enter."""
    args = ["run", "--standalone", "-n", NS, "--verbose", str(HANDLERS)]
    return lambda: KopfRunner(args, timeout=60)


def _assert_clean(runner: KopfRunner) -> None:
    failure: BaseException | None = runner.exception
    assert failure is None, runner.output
    assert runner.exit_code == 0, runner.output
    assert "Traceback" not in runner.output, runner.output


def test_a_job_deleted_in_a_watch_gap_stays_in_kopfs_index(
    kube: KubeStandIn, tracked: Tracked, kopf_operator: Callable[[], KopfRunner]
) -> None:
    jobs = kube.server.registry.get("batch", "v1", "jobs")
    assert jobs is not None

    def gap() -> None:
        """One step on the server's loop, as an API server restart looks to its clients:
        every Job watch ends, the Job vanishes (another client, GC, a TTL), and the history
        is compacted, so the resumed watch is answered 410 Gone."""
        kube.server.store.drop_watches(lambda key: key == JOBS)
        kube.server.api.delete(jobs, NS, "ghost", DeleteOptions(propagation_policy="Background"))
        kube.server.store.compact()

    with kopf_operator() as runner:
        tracked.wait_ready()
        tracked.create("live")
        tracked.create("ghost")
        tracked.wait_indexed(["ghost", "live"], "kopf indexing both Jobs")
        # contrast: a deletion kopf watches live is a DELETED event and leaves the index
        tracked.batch.delete_namespaced_job("live", NS, propagation_policy="Background")
        wait_for(lambda: tracked.deleted_seen("live"), "DELETED for a Job deleted in sight")
        tracked.wait_indexed(["ghost"], "the index dropping the Job deleted in sight")

        lists_before = tracked.lists_of_jobs()
        kube.call(gap)
        assert is_gone(lambda: tracked.batch.read_namespaced_job("ghost", NS))
        # kopf resumes, meets 410 Gone and relists: a fresh LIST that has no "ghost" ...
        wait_for(lambda: tracked.lists_of_jobs() > lists_before, "kopf relisting after 410")
        # ... and it is live again: a Job created after the gap is indexed,
        tracked.create("after")
        tracked.wait_indexed(["after", "ghost"], "kopf indexing a Job created after the gap")
        # while the one deleted in the gap never got a DELETED and stays indexed: a ghost
        assert tracked.indexed() == ["after", "ghost"]
        assert not tracked.deleted_seen("ghost")
    _assert_clean(runner)
    assert "Restarting the watch-stream for jobs.v1.batch" in runner.output  # the 410


@pytest.mark.parametrize("fault", ["cut", "abort"])
def test_kopf_rides_out_cut_watch_streams(
    kube: KubeStandIn, tracked: Tracked, kopf_operator: Callable[[], KopfRunner], fault: str
) -> None:
    """Every Jobs watch is ended after one event: kopf resumes from its last resourceVersion
    each time and misses nothing."""
    kube.faults.set("watch:jobs", watch=fault, probability=1, after_events=1)
    with kopf_operator() as runner:
        tracked.wait_ready()
        names = [f"job-{index}" for index in range(4)]
        for name in names:
            tracked.create(name)
        tracked.wait_indexed(names, f"kopf indexing every Job through {fault} streams")
    _assert_clean(runner)
    assert kube.faults.counts()[f"watch:{fault}"] >= len(names)


def test_kopf_relists_when_a_resume_is_gone(
    kube: KubeStandIn, tracked: Tracked, kopf_operator: Callable[[], KopfRunner]
) -> None:
    # two rules: half the resumes are too old; every stream is cut after one event
    kube.faults.seed(3)
    kube.faults.set("watch:jobs.batch", watch="gone", probability=0.5)
    kube.faults.set("watch:jobs", watch="cut", probability=1, after_events=1)
    with kopf_operator() as runner:
        tracked.wait_ready()
        names = [f"job-{index}" for index in range(4)]
        for name in names:
            tracked.create(name)
        tracked.wait_indexed(names, "kopf indexing every Job through 410s")
    _assert_clean(runner)
    assert kube.faults.counts()["watch:gone"] >= 1
    assert tracked.lists_of_jobs() >= 1 + kube.faults.counts()["watch:gone"]  # a relist each


def test_kopf_retries_refused_lists_and_watches(
    kube: KubeStandIn, tracked: Tracked, kopf_operator: Callable[[], KopfRunner]
) -> None:
    kube.faults.set("list,watch:jobs", status=[429, 500, 503], next=4, retry_after=0)
    with kopf_operator() as runner:
        tracked.wait_ready()
        tracked.create("job")
        tracked.wait_indexed(["job"], "kopf indexing after its retries")
    _assert_clean(runner)
    assert sum(kube.faults.counts().values()) == 4


@pytest.mark.parametrize("fault", ["error", "too-large"])
def test_a_watch_error_event_stops_kopf(
    kube: KubeStandIn, tracked: Tracked, kopf_operator: Callable[[], KopfRunner], fault: str
) -> None:
    """A property of kopf a real API server can trigger (an etcd watch error; a lagging watch
    cache behind a load balancer): the Jobs watcher dies and the operator stops by itself."""
    runner = kopf_operator()
    with (  # noqa: PT012 - the operator's run is the block
        pytest.raises(Exception, match="Error in the watch-stream") as stopped,
        runner,
    ):
        tracked.wait_ready()
        kube.faults.set("watch:jobs", watch=fault, next=1, after_events=0)
        kube.close_watches("jobs")  # kopf's resumed watch meets the fault
        wait_for(kube.faults.counts, "the fault")
        wait_for(runner.future.done, "kopf stopping by itself", timeout=60)
    assert type(stopped.value).__name__ == "WatchingError"


def test_a_watch_refused_past_kopfs_retries_stops_kopf(
    kube: KubeStandIn, tracked: Tracked, kopf_operator: Callable[[], KopfRunner]
) -> None:
    """kopf retries a refused watch along `settings.networking.error_backoffs` (here 20 x
    0.1 s; kopf's default is 8 retries over 54 s) and then gives up: the operator stops. An
    API outage longer than that stops a kopf operator."""
    runner = kopf_operator()
    with (  # noqa: PT012 - the operator's run is the block
        pytest.raises(Exception, match="unable to handle the request") as stopped,
        runner,
    ):
        tracked.wait_ready()
        kube.faults.set("watch:jobs", status=503, next=25)
        kube.close_watches("jobs")
        wait_for(runner.future.done, "kopf stopping by itself", timeout=60)
    assert type(stopped.value).__name__ == "APIServerError"
    assert kube.faults.counts() == {"503": 21}  # the first attempt and its 20 retries
