"""Local-exec mode of the job runner — clearly a simulation, not a container runtime.

A pod annotated `sandbox.cpworker.io/exec: local` has its containers' `command` + `args` run
as local processes (the image is ignored; an explicit command is required). Secret,
ConfigMap, projected and emptyDir volumes become temporary directories, and every mount path
is rewritten to its directory wherever it appears in the command, args, env values,
workingDir and terminationMessagePath (there is no filesystem isolation, so paths are mapped
rather than mounted). Env: `value`, `valueFrom` (secretKeyRef, configMapKeyRef, fieldRef),
`envFrom`, `$(VAR)` expansion, over the image's Env (`RunnerConfig.image_env`, as the runtime
puts the image config's Env first) over PATH and HOME from the host. A subPath directory that
does not exist is created with its volume's mode, and an emptyDir is 0777, as the kubelet does
(pkg/kubelet/kubelet_pods.go makeMounts `SafeMakeDir`; pkg/volume/emptydir/empty_dir.go
`perm`). The kubelet (kubelet.py)
starts, signals and waits for the processes: init containers in order, native sidecars kept
running, SIGTERM then SIGKILL after the grace period. Exit codes, termination messages (the
mapped terminationMessagePath, or the log tail with FallbackToLogsOnError, cut as
termination.py says) and logs are reported; Secret and ConfigMap volume files are rewritten
when the kubelet refreshes them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cpworker.sandbox.kube import termination

Obj = dict[str, Any]
Lookup = Callable[[str, str], Obj | None]  # (kind "secrets"/"configmaps", name) -> object
EMPTY_DIR_MODE = 0o777  # pkg/volume/emptydir/empty_dir.go `perm`
ImageEnv = Mapping[str, Mapping[str, str]]  # image -> its config's Env


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion of env values, command and args, exactly as the kubelet
    does it (kubernetes/kubernetes third_party/forked/golang/expansion/expand.go, Expand and
    tryReadVariableName): `$$` is one `$`; `$(NAME)` is NAME's value, or stays as written when
    NAME is not defined (MappingFuncFor wraps it again); an unclosed `$(` and any other `$x`
    stay as written; a `$` at the very end stays."""
    out: list[str] = []
    checkpoint = cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            rest = text[cursor + 1 :]
            if rest[0] == "$":  # escaped operator
                out.append("$")
                advance = 1
            elif rest[0] == "(" and ")" in rest[1:]:
                name = rest[1 : rest.index(")")]
                out.append(variables.get(name, f"$({name})"))
                advance = rest.index(")") + 1
            elif rest[0] == "(":  # an incomplete reference
                out.append("$(")
                advance = 1
            else:
                out.append("$" + rest[0])
                advance = 1
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


class LocalExecError(Exception):
    """The pod cannot be simulated locally (answered as a container start failure)."""


def _items(source: Obj, obj: Obj | None, binary_key: str | None) -> dict[str, bytes]:
    """The files a Secret or ConfigMap volume source projects: relative path -> bytes."""
    if obj is None:
        if source.get("optional"):
            return {}
        raise LocalExecError(f"volume source {source} not found")
    values: dict[str, bytes] = {}
    for key, value in (obj.get("data") or {}).items():
        values[key] = base64.b64decode(value) if binary_key is None else str(value).encode()
    if binary_key:
        for key, value in (obj.get(binary_key) or {}).items():
            values[key] = base64.b64decode(value)
    if source.get("items"):
        return {
            item["path"]: values[item["key"]] for item in source["items"] if item["key"] in values
        }
    return values


def _write(directory: Path, files: dict[str, bytes], mode: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for relative, content in files.items():
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(mode)


def materialize_volumes(pod: Obj, root: Path, lookup: Lookup) -> dict[str, Path]:
    """Volume name -> local directory."""
    directories: dict[str, Path] = {}
    for volume in pod["spec"].get("volumes") or []:
        name = volume["name"]
        directory = root / "volumes" / name
        if "emptyDir" in volume:
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(EMPTY_DIR_MODE)
        elif "secret" in volume:
            source = volume["secret"]
            files = _items(source, lookup("secrets", source.get("secretName", "")), None)
            _write(directory, files, int(source.get("defaultMode", 0o644)))
        elif "configMap" in volume:
            source = volume["configMap"]
            files = _items(source, lookup("configmaps", source.get("name", "")), "binaryData")
            _write(directory, files, int(source.get("defaultMode", 0o644)))
        elif "projected" in volume:
            mode = int(volume["projected"].get("defaultMode", 0o644))
            for projection in volume["projected"].get("sources") or []:
                if "secret" in projection:
                    source = projection["secret"]
                    files = _items(source, lookup("secrets", source.get("name", "")), None)
                elif "configMap" in projection:
                    source = projection["configMap"]
                    files = _items(
                        source, lookup("configmaps", source.get("name", "")), "binaryData"
                    )
                else:
                    raise LocalExecError(
                        f"projected source {sorted(projection)} is not supported in local-exec mode"
                    )
                _write(directory, files, mode)
        else:
            kinds = sorted(k for k in volume if k != "name")
            raise LocalExecError(f"volume {name!r} ({kinds}) is not supported in local-exec mode")
        directories[name] = directory
    return directories


class PathMap:
    """Container mount paths -> local directories, longest prefix first."""

    def __init__(self, container: Obj, volumes: dict[str, Path], scratch: Path) -> None:
        self.mounts: list[tuple[str, Path]] = []
        for mount in container.get("volumeMounts") or []:
            if mount["name"] not in volumes:
                raise LocalExecError(f"volumeMount {mount['name']!r} has no volume")
            local = volumes[mount["name"]] / mount.get("subPath", "")
            if not local.exists():
                # the kubelet creates a missing subPath with the volume's mode (makeMounts)
                local.mkdir(parents=True)
                local.chmod(volumes[mount["name"]].stat().st_mode & 0o7777)
            self.mounts.append((mount["mountPath"].rstrip("/") or "/", local))
        self.mounts.sort(key=lambda item: len(item[0]), reverse=True)
        self.termination = scratch / "termination-log"

    def map(self, text: str) -> str:
        for mount_path, local in self.mounts:
            pattern = rf"(?<![\w/.-]){re.escape(mount_path)}(?=/|\b|$)[^\s'\"]*"

            def swap(match: re.Match[str], mount: str = mount_path, to: Path = local) -> str:
                token = match.group(0)
                # a host file that exists (say, the interpreter) is not the container's
                if Path(token).is_file():
                    return token
                return str(to) + token[len(mount) :]

            text = re.sub(pattern, swap, text)
        return text.replace("/dev/termination-log", str(self.termination))


def _field(pod: Obj, path: str) -> str:
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        return str((pod["metadata"].get(match.group(1)) or {}).get(match.group(2), ""))
    current: Any = pod
    for part in path.split("."):
        current = current.get(part, "") if isinstance(current, dict) else ""
    return str(current)


def environment(
    container: Obj, pod: Obj, lookup: Lookup, paths: PathMap, image_env: ImageEnv | None = None
) -> dict[str, str]:
    env: dict[str, str] = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(paths.termination.parent),
        "HOSTNAME": pod["metadata"]["name"],
    }
    # The image's Env first, so that the container's env overrides it (containerd
    # pkg/cri/server/container_create_linux.go: "Apply envs from image config first").
    env.update((image_env or {}).get(str(container.get("image", "")), {}))
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "secretRef" in source:
            obj = lookup("secrets", source["secretRef"]["name"])
            data = {
                k: base64.b64decode(v).decode() for k, v in ((obj or {}).get("data") or {}).items()
            }
        else:
            obj = lookup("configmaps", source["configMapRef"]["name"])
            data = dict((obj or {}).get("data") or {})
        env.update({prefix + key: value for key, value in data.items()})
    for variable in container.get("env") or []:
        name = variable["name"]
        if "value" in variable:
            env[name] = paths.map(expand(str(variable["value"]), env))
            continue
        source = variable.get("valueFrom") or {}
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            obj = lookup("secrets", ref["name"])
            raw = ((obj or {}).get("data") or {}).get(ref["key"])
            if raw is None and not ref.get("optional"):
                raise LocalExecError(f"secret key {ref['name']}/{ref['key']} not found")
            if raw is not None:
                env[name] = base64.b64decode(raw).decode()
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            value = ((lookup("configmaps", ref["name"]) or {}).get("data") or {}).get(ref["key"])
            if value is None and not ref.get("optional"):
                raise LocalExecError(f"configmap key {ref['name']}/{ref['key']} not found")
            if value is not None:
                env[name] = value
        elif "fieldRef" in source:
            env[name] = _field(pod, source["fieldRef"]["fieldPath"])
    return env


def _argv(container: Obj, env: dict[str, str], paths: PathMap) -> list[str]:
    command = list(container.get("command") or [])
    if not command:
        raise LocalExecError(
            "local-exec mode needs an explicit command (the image's entrypoint is unknown)"
        )
    return [
        paths.map(expand(str(part), env)) for part in command + list(container.get("args") or [])
    ]


class LocalPod:
    """A pod's local directories: its volumes (Secret files refreshed on demand, as the
    kubelet's periodic sync rewrites them) and one scratch directory per container."""

    def __init__(self, pod: Obj, lookup: Lookup, image_env: ImageEnv | None = None) -> None:
        self.pod = pod
        self.lookup = lookup
        self.image_env = dict(image_env or {})
        self.root = Path(tempfile.mkdtemp(prefix=f"pod-{pod['metadata']['name']}-"))
        self.error = ""
        try:
            self.volumes = materialize_volumes(pod, self.root, lookup)
        except LocalExecError as exc:
            self.volumes = {}
            self.error = str(exc)

    def mounts_secret(self, name: str) -> bool:
        for volume in self.pod["spec"].get("volumes") or []:
            if (volume.get("secret") or {}).get("secretName") == name:
                return True
            for projection in (volume.get("projected") or {}).get("sources") or []:
                if (projection.get("secret") or {}).get("name") == name:
                    return True
        return False

    def refresh(self) -> None:
        """Rewrite the Secret and ConfigMap volumes from the current objects: each file is
        replaced atomically (the kubelet's atomic writer swaps a `..data` link)."""
        staging = self.root / "refresh"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            fresh = materialize_volumes(self.pod, staging, self.lookup)
        except LocalExecError:
            return  # as the kubelet does, keep the old files when the source is gone
        for name, directory in fresh.items():
            target = self.volumes.get(name)
            if target is None or not any(directory.iterdir()):
                continue
            for source in directory.rglob("*"):
                if source.is_file():
                    destination = target / source.relative_to(directory)
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    source.replace(destination)
        shutil.rmtree(staging, ignore_errors=True)

    def container(self, spec: Obj) -> LocalContainer:
        return LocalContainer(spec, self)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class LocalContainer:
    """One container's command as a local process group: SIGTERM, then SIGKILL, as the
    runtime signals a container."""

    def __init__(self, spec: Obj, pod: LocalPod) -> None:
        self.spec = spec
        self.pod = pod
        self.exit_code: int | None = None
        self._message = ""
        self._log = ""
        self._process: asyncio.subprocess.Process | None = None
        self._done = asyncio.Event()
        self._directory = pod.root / "containers" / spec["name"]
        self._message_path: Path | None = None

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def running(self) -> bool:
        return self.exit_code is None

    def _finish(self, code: int, message: str = "") -> None:
        self.exit_code, self._message = code, message
        self._done.set()

    async def start(self) -> None:
        if self.pod.error:
            self._finish(128, self.pod.error)
            return
        try:
            paths = PathMap(self.spec, self.pod.volumes, self._directory)
            env = environment(self.spec, self.pod.pod, self.pod.lookup, paths, self.pod.image_env)
            argv = _argv(self.spec, env, paths)
        except LocalExecError as exc:
            self._finish(128, str(exc))
            return
        working = paths.map(self.spec["workingDir"]) if self.spec.get("workingDir") else None
        self._message_path = Path(
            paths.map(self.spec.get("terminationMessagePath", "/dev/termination-log"))
        )
        await asyncio.to_thread(self._directory.mkdir, parents=True, exist_ok=True)
        log_path = self._directory / "log"
        with log_path.open("wb") as log:
            try:
                self._process = await asyncio.create_subprocess_exec(
                    *argv,
                    env=env,
                    cwd=working or str(self._directory),
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            except OSError as exc:  # as a runtime reports an exec failure
                self._finish(127, f"failed to start {argv[0]!r}: {exc.strerror}")
                return
        asyncio.get_running_loop().create_task(self._reap(log_path))

    async def _reap(self, log_path: Path) -> None:
        assert self._process is not None
        code = await self._process.wait()
        # killed by a signal: the runtime reports 128 + the signal number
        code = 128 - code if code < 0 else code
        raw_log = await asyncio.to_thread(log_path.read_bytes)
        written = None
        if self._message_path is not None and self._message_path.is_file():
            written = await asyncio.to_thread(self._message_path.read_bytes)
        self._log = raw_log.decode(errors="replace")
        self._finish(code, termination.message(self.spec, code, written, raw_log))

    async def wait(self) -> int:
        await self._done.wait()
        assert self.exit_code is not None
        return self.exit_code

    def _signal(self, number: int) -> None:
        if self._process is not None and self.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, number)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def log(self) -> str:
        return self._log

    def message(self) -> str:
        return self._message

    async def close(self) -> None:
        if self.running:
            self.kill()
            with contextlib.suppress(asyncio.CancelledError):
                await self.wait()
