"""A simulated kubelet (kwok-like): every pod, bare or owned by a Job, is run here — its
containers scripted by annotations (scripted.py) or, with `sandbox.cpworker.io/exec: local`,
run as local processes (localexec.py). What it models of the real kubelet:

- binding: a started pod gets `spec.nodeName`, so deleting it is graceful (below);
- pod-level rejections (`fail-reason: OutOfcpu|OutOfmemory`): phase Failed, the admission
  reason, `Pod was rejected: ...`, no container statuses (`pkg/kubelet/lifecycle/predicate.go`);
- image pulls and unschedulable pods (`fail-reason`), a missing Secret volume
  (ContainerCreating until it exists);
- `runAsNonRoot` against the image's user: the container waits with
  CreateContainerConfigError and `container has runAsNonRoot and image will run as root (pod:
  "NAME_NS(UID)", container: C)` (`pkg/kubelet/kuberuntime/security_context_others.go`
  verifyRunAsNonRoot). An image's user comes from the pod annotation
  `sandbox.cpworker.io/image-user[.<container>]`, else `RunnerConfig.image_users[image]`,
  else `RunnerConfig.default_image_user`;
- init containers in order; native sidecars (init containers with `restartPolicy: Always`)
  start in their place and keep running; the regular containers run together;
- once every regular container has exited, the sidecars are terminated in reverse order
  (SIGTERM, then SIGKILL when `terminationGracePeriodSeconds` runs out), and only then is the
  pod Succeeded/Failed, by the regular containers alone (`pkg/kubelet/kuberuntime/
  kuberuntime_manager.go` computePodActions, `kuberuntime_termination_order.go`,
  `kubelet_pods.go` getPhase). A classic sidecar (a regular container that never exits)
  keeps the pod Running;
- deletion: a pod with `deletionTimestamp` is killed — regular containers first, then
  sidecars, SIGTERM then SIGKILL within `deletionGracePeriodSeconds` — its phase becomes
  Failed unless every regular container exited 0, then the kubelet deletes it for good
  (grace 0, UID precondition), as `pkg/kubelet/status/status_manager.go` does;
- node-pressure eviction (`evict`): containers killed at once, phase Failed, reason
  Evicted, a DisruptionTarget condition (TerminationByKubelet), containers
  ContainerStatusUnknown/137 (`pkg/kubelet/eviction/eviction_manager.go`); the pod stays;
- termination messages cut as termination.py says, on every status write;
- mounted Secret/ConfigMap files of a local pod follow a change after
  `RunnerConfig.secret_sync_delay` (the kubelet's periodic sync; env vars never change).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from cpworker.sandbox.kube import localexec, podstatus, termination
from cpworker.sandbox.kube.api import Api, DeleteOptions
from cpworker.sandbox.kube.errors import ApiError
from cpworker.sandbox.kube.events import record
from cpworker.sandbox.kube.scripted import PREFIX, ScriptedContainer, annotation, script_of
from cpworker.sandbox.kube.scripted import parse_duration as _parse_duration
from cpworker.sandbox.kube.store import Change, StorageKey, now_rfc3339

logger = logging.getLogger(__name__)
Obj = dict[str, Any]
PODS: StorageKey = ("", "pods")
SECRETS: StorageKey = ("", "secrets")
NODE = "sandbox-node"
UNKNOWN = {
    "terminated": {
        "exitCode": 137,
        "reason": "ContainerStatusUnknown",
        "message": "The container could not be located when the pod was terminated",
    }
}


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    default_duration: float = 1.0  # seconds an unscripted container runs
    start_delay: float = 0.05  # Pending -> Running
    # first back-off after a failed pod (the real controller: 10 s, doubling, at most 6 min)
    retry_delay: float = 0.1
    retry_delay_max: float = 1.0
    # first back-off after a refused pod creation (real: 1 s, doubling, at most 60 s); also
    # how often a missing ServiceAccount or Secret volume is looked for again
    create_retry: float = 0.5
    create_retry_max: float = 5.0
    local_exec: bool = False  # run every pod's commands locally (see localexec.py)
    # FailureTarget/SuccessCriteriaMet -> Failed/Complete: at least this long, and only once
    # the Job's pods have terminated
    terminal_condition_delay: float = 0.05
    # a changed Secret/ConfigMap reaches mounted files of running pods after this long
    secret_sync_delay: float = 1.0
    # image -> the user it runs as ("0", "1000", "1000:1000", "nobody"), for runAsNonRoot
    image_users: Mapping[str, str] = field(default_factory=dict)
    # the user of an image not listed. Real images without a USER run as root ("0"); the
    # default here is non-root because the operator asks every pod for runAsNonRoot
    default_image_user: str = "65532"
    # image -> what its program does in a scripted pod (scripted.py keys, `.<container>`
    # suffixes allowed); its containers ignore the pod-wide annotations
    image_scripts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # image -> its config's Env (PATH...): a local-exec process gets it under the container's
    # env, as the runtime does (containerd: "Apply envs from image config first")
    image_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


def parse_duration(text: str | None, default: float) -> float:
    value = _parse_duration(text, default)
    return default if value is None else value


def condition(kind: str, status: str, reason: str = "", message: str = "") -> Obj:
    return podstatus.condition(kind, status, reason, message)


class Container(Protocol):
    exit_code: int | None

    @property
    def name(self) -> str: ...
    @property
    def running(self) -> bool: ...
    async def start(self) -> None: ...
    async def wait(self) -> int: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...
    def log(self) -> str: ...
    def message(self) -> str: ...
    async def close(self) -> None: ...


def spawn(coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """A controller task in a fresh context: it never acts as the client whose request woke
    it (admission checks the request's identity through a context variable)."""
    return asyncio.get_running_loop().create_task(coroutine, context=contextvars.Context())


def non_root_refusal(pod: Obj, container: Obj, user: str) -> str:
    """verifyRunAsNonRoot's message, or '' when the container may start."""
    pod_context = pod["spec"].get("securityContext") or {}
    context = container.get("securityContext") or {}
    if not context.get("runAsNonRoot", pod_context.get("runAsNonRoot")):
        return ""
    meta = pod["metadata"]
    pod_name = f"{meta['name']}_{meta['namespace']}({meta['uid']})"
    where = f'(pod: "{pod_name}", container: {container["name"]})'
    run_as = context.get("runAsUser", pod_context.get("runAsUser"))
    if run_as is not None:
        return f"container's runAsUser breaks non-root policy {where}" if run_as == 0 else ""
    uid = user.split(":", 1)[0]
    if uid.isdigit():
        return (
            f"container has runAsNonRoot and image will run as root {where}"
            if int(uid) == 0
            else ""
        )
    if uid:
        return (
            f"container has runAsNonRoot and image has non-numeric user ({uid}), cannot verify "
            f"user is non-root {where}"
        )
    return ""


class PodWorker:
    """One pod's life on the node."""

    def __init__(self, kubelet: Kubelet, pod: Obj) -> None:
        self.kubelet = kubelet
        meta = pod["metadata"]
        self.namespace, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.stop = asyncio.Event()  # deletion or eviction asked the pod to end
        self.grace = float(pod["spec"].get("terminationGracePeriodSeconds", 30))
        self.eviction: tuple[str, str] | None = None  # (reason, message)
        self.deleting = False
        self.states: dict[str, Obj] = {}
        self.started: dict[str, str] = {}
        self.containers: dict[str, Container] = {}
        self.local: localexec.LocalPod | None = None
        self.start_time = ""

    # -- helpers ----------------------------------------------------------------------
    @property
    def api(self) -> Api:
        return self.kubelet.api

    @property
    def config(self) -> RunnerConfig:
        return self.kubelet.config

    def pod(self) -> Obj | None:
        obj = self.api.store.get(PODS, self.namespace, self.name)
        if obj is None or obj["metadata"]["uid"] != self.uid:
            return None
        return obj

    def request_stop(self, grace: float) -> None:
        self.grace = min(self.grace, grace) if self.stop.is_set() else grace
        self.deleting = True
        self.stop.set()

    def evict(self, reason: str, message: str) -> None:
        self.eviction = (reason, message)
        self.grace = 0.0  # a hard eviction threshold: no grace period
        self.stop.set()

    def _publish(self, *, phase: str | None = None, extra: Obj | None = None) -> Obj | None:
        pod = self.pod()
        if pod is None:
            return None
        current = pod.get("status") or {}
        kept = [c for c in current.get("conditions") or [] if c.get("type") == "DisruptionTarget"]
        spec = pod["spec"]
        pod_phase = phase or podstatus.phase(pod, self.states)
        init = spec.get("initContainers") or []
        status: Obj = {
            "phase": pod_phase,
            "qosClass": current.get("qosClass", "BestEffort"),
            "hostIP": "10.0.0.1",
            "hostIPs": [{"ip": "10.0.0.1"}],
            "podIP": "10.244.0.10",
            "podIPs": [{"ip": "10.244.0.10"}],
            "startTime": self.start_time or now_rfc3339(),
            "conditions": podstatus.conditions(pod, self.states, pod_phase, kept),
            "containerStatuses": [self._status_of(c) for c in spec["containers"]],
        }
        if init:
            status["initContainerStatuses"] = [self._status_of(c) for c in init]
        status.update(extra or {})
        return self.kubelet.set_status(pod, status)

    def _status_of(self, container: Obj) -> Obj:
        state = self.states.get(container["name"]) or {"waiting": {"reason": "PodInitializing"}}
        return podstatus.container_status(container, state, ready="running" in state)

    def _container(self, spec: Obj, annotations: dict[str, str]) -> Container:
        if self.local is not None:
            return self.local.container(spec)
        known = self.config.image_scripts.get(str(spec.get("image", "")))
        script = script_of(annotations, spec["name"], dict(known) if known is not None else None)
        return ScriptedContainer(spec, script, self.config.default_duration)

    async def _start(self, spec: Obj, annotations: dict[str, str]) -> Container:
        container = self._container(spec, annotations)
        await container.start()
        self.containers[container.name] = container
        self.started[container.name] = now_rfc3339()
        self.states[container.name] = {"running": {"startedAt": self.started[container.name]}}
        return container

    def _record_exit(self, container: Container) -> None:
        assert container.exit_code is not None
        self.states[container.name] = podstatus.terminated(
            container.exit_code, container.message(), self.started.get(container.name, "")
        )
        self.kubelet.keep_log(self.namespace, self.name, container.name, container.log())

    async def _wait_stop(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), timeout)
        return self.stop.is_set()

    # -- the lifecycle ----------------------------------------------------------------
    async def run(self) -> None:
        try:
            await self._run()
        finally:
            for container in self.containers.values():
                with contextlib.suppress(Exception):
                    await container.close()
            if self.local is not None:
                self.local.close()

    async def _run(self) -> None:
        await asyncio.sleep(self.config.start_delay)
        pod = self.pod()
        if pod is None:
            return
        annotations = pod["metadata"].get("annotations") or {}
        fail_reason = annotations.get(PREFIX + "fail-reason", "")
        if fail_reason == "Unschedulable":
            self._unschedulable(pod)
            await self.stop.wait()  # not bound: deleting it removes it at once
            return
        pod = self._bind(pod)
        if pod is None:
            return
        self.start_time = now_rfc3339()
        if fail_reason.startswith("OutOf"):
            self._reject(fail_reason)
            return
        if await self._cannot_start(pod, annotations, fail_reason):
            await self._finish_killed()
            return
        if self.config.local_exec or annotations.get(PREFIX + "exec") == "local":
            self.local = await asyncio.to_thread(
                localexec.LocalPod,
                pod,
                self.kubelet.lookup(self.namespace),
                self.config.image_env,
            )
        if not await self._run_init_containers(pod, annotations):
            return
        mains = [await self._start(spec, annotations) for spec in pod["spec"]["containers"]]
        self._publish()
        if pod["spec"].get("restartPolicy", "Always") == "Always":
            # container restarts are not modelled: the pod runs until it is stopped
            await self.stop.wait()
        else:
            await self._run_mains(mains)
        await self._shut_down(mains)

    def _unschedulable(self, pod: Obj) -> None:
        message = (
            "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: "
            "1 No preemption victims found for incoming pod."
        )
        status = {
            "phase": "Pending",
            "qosClass": (pod.get("status") or {}).get("qosClass", "BestEffort"),
            "conditions": [condition("PodScheduled", "False", "Unschedulable", message)],
        }
        self.kubelet.set_status(pod, status)

    def _bind(self, pod: Obj) -> Obj | None:
        """What the scheduler's Binding does: spec.nodeName set."""
        pods = self.api.storage_type(PODS)
        assert pods is not None
        bound = {**pod, "spec": {**pod["spec"], "nodeName": NODE}}
        try:
            return self.api.update(pods, self.namespace, self.name, bound)
        except ApiError:
            return None

    def _reject(self, reason: str) -> None:
        resource = reason.removeprefix("OutOf")
        message = (
            f"Pod was rejected: Node didn't have enough resource: {resource}, requested: 4000, "
            "used: 0, capacity: 2000"
        )
        pod = self.pod()
        if pod is not None:
            status = {
                "phase": "Failed",
                "reason": reason,
                "message": message,
                "startTime": self.start_time,
                "qosClass": (pod.get("status") or {}).get("qosClass", "BestEffort"),
            }
            self.kubelet.set_status(pod, status)
            self.kubelet.event(pod, "Warning", reason, message)

    async def _cannot_start(self, pod: Obj, annotations: dict[str, str], fail_reason: str) -> bool:
        """Wait while the pod cannot start; True when it was stopped meanwhile."""
        spec = pod["spec"]
        every = [*(spec.get("initContainers") or []), *spec["containers"]]
        if fail_reason in {"ErrImagePull", "ImagePullBackOff"}:
            for container in every:
                image = container.get("image")
                message = (
                    f'Back-off pulling image "{image}"'
                    if fail_reason == "ImagePullBackOff"
                    else f'failed to pull and unpack image "{image}": not found'
                )
                self.states[container["name"]] = {
                    "waiting": {"reason": fail_reason, "message": message}
                }
            self._publish()
            await self.stop.wait()
            return True
        while self.kubelet.missing_secret(pod) is not None:
            for container in every:
                self.states[container["name"]] = {"waiting": {"reason": "ContainerCreating"}}
            self._publish()
            if await self._wait_stop(self.config.create_retry):
                return True
            pod = self.pod() or pod
        refusals = {
            c["name"]: why
            for c in every
            if (why := non_root_refusal(pod, c, self.kubelet.image_user(c, annotations)))
        }
        if refusals:
            for container in every:
                refused = refusals.get(container["name"])
                self.states[container["name"]] = {
                    "waiting": {"reason": "CreateContainerConfigError", "message": refused}
                    if refused
                    else {"reason": "ContainerCreating"}
                }
            self._publish()
            for why in refusals.values():
                self.kubelet.event(pod, "Warning", "Failed", f"Error: {why}")
            await self.stop.wait()
            return True
        return False

    async def _run_init_containers(self, pod: Obj, annotations: dict[str, str]) -> bool:
        """Init containers in order, sidecars left running; False when the pod ended here."""
        for spec in pod["spec"].get("initContainers") or []:
            container = await self._start(spec, annotations)
            if podstatus.is_sidecar(spec):
                continue
            self._publish()
            waiter = asyncio.ensure_future(container.wait())
            stopper = asyncio.ensure_future(self.stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not waiter.done():
                waiter.cancel()
                await self._shut_down([container])
                return False
            self._record_exit(container)
            if container.exit_code != 0:
                # restartPolicy Never: the pod fails; its sidecars are stopped
                await self._kill(self._sidecars(), self.grace)
                self._publish(phase="Failed")
                await self._finalize()
                return False
        return True

    def _sidecars(self) -> list[Container]:
        pod = self.pod()
        if pod is None:
            return []
        names = [
            c["name"] for c in pod["spec"].get("initContainers") or [] if podstatus.is_sidecar(c)
        ]
        return [self.containers[n] for n in reversed(names) if n in self.containers]

    async def _run_mains(self, mains: list[Container]) -> None:
        pending = {asyncio.ensure_future(c.wait()): c for c in mains}
        stopper = asyncio.ensure_future(self.stop.wait())
        try:
            while pending:
                done, _ = await asyncio.wait(
                    {*pending, stopper}, return_when=asyncio.FIRST_COMPLETED
                )
                if stopper in done:
                    return
                for finished in done:
                    self._record_exit(pending.pop(finished))
                self._publish()
        finally:
            stopper.cancel()
            for waiter in pending:
                waiter.cancel()

    async def _kill(self, containers: list[Container], grace: float) -> None:
        """SIGTERM each in turn (waiting for the one before), SIGKILL what still runs when
        the grace period is over."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        for container in containers:
            if not container.running:
                continue
            container.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(container.wait(), max(0.0, deadline - loop.time()))
            if container.running:
                container.kill()
                await container.wait()
            self._record_exit(container)

    async def _shut_down(self, mains: list[Container]) -> None:
        """The regular containers have exited (or the pod is being stopped): stop what runs,
        sidecars last, then write the final status."""
        loop = asyncio.get_running_loop()
        begun = loop.time()
        running = [c for c in mains if c.running]
        if running:
            for container in running:
                container.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(c.wait() for c in running)), max(self.grace, 0.0)
                )
            for container in running:
                if container.running:
                    container.kill()
                    await container.wait()
                self._record_exit(container)
        await self._kill(self._sidecars(), max(0.0, self.grace - (loop.time() - begun)))
        await self._finish()

    async def _finish_killed(self) -> None:
        await self._finish()

    async def _finish(self) -> None:
        pod = self.pod()
        if pod is None:
            return
        if self.eviction is not None:
            reason, message = self.eviction
            for name in list(self.states):
                self.states[name] = dict(UNKNOWN)
            for spec in [*(pod["spec"].get("initContainers") or []), *pod["spec"]["containers"]]:
                self.states.setdefault(spec["name"], dict(UNKNOWN))
            self.kubelet.add_condition(
                pod, condition("DisruptionTarget", "True", "TerminationByKubelet", message)
            )
            self._publish(phase="Failed", extra={"reason": reason, "message": message})
            self.kubelet.event(pod, "Warning", reason, message)
            return
        for spec in pod["spec"]["containers"]:
            if "terminated" not in self.states.get(spec["name"], {}):
                self.states[spec["name"]] = dict(UNKNOWN)
        self._publish(phase=podstatus.phase(pod, self.states, terminal=True))
        await self._finalize()

    async def _finalize(self) -> None:
        """A pod being deleted is removed once its containers are gone (grace 0, UID
        precondition), as the status manager does once the pod is terminal."""
        if not self.deleting:
            return
        pods = self.api.storage_type(PODS)
        assert pods is not None
        with contextlib.suppress(ApiError):
            self.api.delete(
                pods,
                self.namespace,
                self.name,
                DeleteOptions(grace_period_seconds=0, precondition_uid=self.uid),
            )


class Kubelet:
    def __init__(self, api: Api, config: RunnerConfig) -> None:
        self.api = api
        self.config = config
        self._workers: dict[str, PodWorker] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._closing = False
        api.store.subscribe(self._on_change)

    async def close(self) -> None:
        self._closing = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _on_change(self, key: StorageKey, change: Change) -> None:
        if self._closing:
            return
        if key == SECRETS:
            self._refresh_mounts(change)
            return
        if key != PODS:
            return
        meta = change.obj["metadata"]
        uid = meta["uid"]
        if change.type == "DELETED":
            self.api.pod_logs.pop((meta["namespace"], meta["name"]), None)
            task = self._tasks.pop(uid, None)
            self._workers.pop(uid, None)
            if task:
                task.cancel()
        elif change.type == "ADDED":
            worker = PodWorker(self, change.obj)
            self._workers[uid] = worker
            task = spawn(worker.run())
            self._tasks[uid] = task

            def done(finished: asyncio.Task[None], uid: str = uid) -> None:
                if self._tasks.get(uid) is finished:
                    del self._tasks[uid]
                if not finished.cancelled() and finished.exception() is not None:
                    logger.error("pod worker failed", exc_info=finished.exception())

            task.add_done_callback(done)
        elif meta.get("deletionTimestamp") and uid in self._workers:
            grace = float(meta.get("deletionGracePeriodSeconds") or 0)
            self._workers[uid].request_stop(grace)

    def _refresh_mounts(self, change: Change) -> None:
        if change.type == "DELETED":
            return
        meta = change.obj["metadata"]
        for worker in list(self._workers.values()):
            local = worker.local
            if (
                local is not None
                and worker.namespace == meta["namespace"]
                and local.mounts_secret(meta["name"])
            ):
                asyncio.get_running_loop().call_later(
                    self.config.secret_sync_delay, local.refresh, context=contextvars.Context()
                )

    # -- for the pod workers ----------------------------------------------------------
    def set_status(self, pod: Obj, status: Obj) -> Obj | None:
        meta = pod["metadata"]
        current = self.api.store.get(PODS, meta["namespace"], meta["name"])
        pods = self.api.storage_type(PODS)
        if current is None or pods is None or current["metadata"]["uid"] != meta["uid"]:
            return None
        try:
            return self.api.update(
                pods,
                meta["namespace"],
                meta["name"],
                {**current, "status": termination.normalize(current, status)},
                subresource="status",
            )
        except ApiError:
            return None

    def add_condition(self, pod: Obj, added: Obj) -> None:
        current = self.api.store.get(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
        if current is None:
            return
        status = dict(current.get("status") or {})
        status["conditions"] = [
            *(c for c in status.get("conditions") or [] if c.get("type") != added["type"]),
            added,
        ]
        self.set_status(current, status)

    def event(self, pod: Obj, kind: str, reason: str, message: str) -> None:
        record(self.api, pod, kind, reason, message, component="kubelet")

    def keep_log(self, namespace: str, name: str, container: str, text: str) -> None:
        if text:
            self.api.pod_logs.setdefault((namespace, name), {})[container] = text

    def lookup(self, namespace: str) -> localexec.Lookup:
        def find(plural: str, name: str) -> Obj | None:
            return self.api.store.get(("", plural), namespace, name)

        return find

    def image_user(self, container: Obj, annotations: dict[str, str]) -> str:
        scripted = annotation(annotations, "image-user", container["name"])
        if scripted is not None:
            return scripted
        image = str(container.get("image", ""))
        return self.config.image_users.get(image, self.config.default_image_user)

    def missing_secret(self, pod: Obj) -> str | None:
        namespace = pod["metadata"]["namespace"]
        for volume in pod["spec"].get("volumes") or []:
            secret = volume.get("secret")
            if (
                secret
                and not secret.get("optional")
                and self.api.store.get(SECRETS, namespace, secret.get("secretName", "")) is None
            ):
                return str(secret.get("secretName"))
        return None

    def evict(self, namespace: str, name: str, resource: str = "memory") -> None:
        """Node-pressure eviction of a running pod (the kubelet's eviction manager)."""
        pod = self.api.store.get(PODS, namespace, name)
        if pod is None:
            raise KeyError(f"pod {namespace}/{name} not found")
        worker = self._workers.get(pod["metadata"]["uid"])
        if worker is None:
            raise KeyError(f"pod {namespace}/{name} is not running on the node")
        container = pod["spec"]["containers"][0]["name"]
        message = (
            f"The node was low on resource: {resource}. Threshold quantity: 100Mi, available: "
            f"50Mi. Container {container} was using 1Gi, request is 0, has larger consumption "
            f"of {resource}. "
        )
        worker.evict("Evicted", message)


def job_owned(pod: Obj) -> bool:
    return any(
        ref.get("kind") == "Job" and ref.get("controller")
        for ref in pod["metadata"].get("ownerReferences") or []
    )
