"""Local-exec mode of the job runner — clearly a simulation, not a container runtime.

A pod annotated `sandbox.cpworker.io/exec: local` has its containers' `command` + `args` run
as local processes (the image is ignored; an explicit command is required). Secret,
ConfigMap, projected and emptyDir volumes become temporary directories, and every mount path
is rewritten to its directory wherever it appears in the command, args, env values,
workingDir and terminationMessagePath (there is no filesystem isolation, so paths are mapped
rather than mounted). Env: `value`, `valueFrom` (secretKeyRef, configMapKeyRef, fieldRef),
`envFrom`, `$(VAR)` expansion, plus PATH and HOME from the host. Init containers run first, in
order; then the containers run together. Exit codes, termination messages (the mapped
terminationMessagePath, or the log tail with FallbackToLogsOnError) and logs are reported.
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Obj = dict[str, Any]
Lookup = Callable[[str, str], Obj | None]  # (kind "secrets"/"configmaps", name) -> object
MESSAGE_LIMIT = 4096
LOG_TAIL_LINES = 80
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class LocalExecError(Exception):
    """The pod cannot be simulated locally (answered as a container start failure)."""


@dataclass(slots=True)
class Outcome:
    name: str
    exit_code: int
    message: str
    log: str


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


def environment(container: Obj, pod: Obj, lookup: Lookup, paths: PathMap) -> dict[str, str]:
    env: dict[str, str] = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(paths.termination.parent),
        "HOSTNAME": pod["metadata"]["name"],
    }
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
            env[name] = paths.map(
                _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), str(variable["value"]))
            )
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
        paths.map(_VAR.sub(lambda m: env.get(m.group(1), m.group(0)), str(part)))
        for part in command + list(container.get("args") or [])
    ]


def _results(container: Obj, code: int, log_path: Path, message_path: Path) -> tuple[str, str]:
    """(log text, termination message) once the process has exited."""
    text = log_path.read_text(errors="replace")
    message = ""
    if message_path.is_file():
        message = message_path.read_text(errors="replace")[:MESSAGE_LIMIT]
    if (
        not message
        and code != 0
        and container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
    ):
        message = "\n".join(text.splitlines()[-LOG_TAIL_LINES:])[-2048:]
    return text, message


async def _run_container(
    container: Obj, pod: Obj, volumes: dict[str, Path], scratch: Path, lookup: Lookup
) -> Outcome:
    name = container["name"]
    directory = scratch / name
    try:
        paths = PathMap(container, volumes, directory)
        env = environment(container, pod, lookup, paths)
        argv = _argv(container, env, paths)
    except LocalExecError as exc:
        return Outcome(name, 128, str(exc), "")
    working = paths.map(container["workingDir"]) if container.get("workingDir") else None
    message_path = Path(paths.map(container.get("terminationMessagePath", "/dev/termination-log")))
    log_path = directory / "log"
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                cwd=working or str(directory),
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        except OSError as exc:  # as a runtime reports an exec failure
            return Outcome(name, 127, f"failed to start {argv[0]!r}: {exc.strerror}", "")
        try:
            code = await process.wait()
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            raise
    text, message = await asyncio.to_thread(_results, container, code, log_path, message_path)
    return Outcome(name, code, message, text)


async def run_pod(pod: Obj, lookup: Lookup) -> tuple[list[Outcome], list[Outcome]]:
    """Run the pod's init containers, then its containers; answers (init, main) outcomes.
    A failed init container stops there (main outcomes empty)."""
    root = Path(tempfile.mkdtemp(prefix=f"pod-{pod['metadata']['name']}-"))
    try:
        try:
            volumes = materialize_volumes(pod, root, lookup)
        except LocalExecError as exc:
            failed = [Outcome(c["name"], 128, str(exc), "") for c in pod["spec"]["containers"]]
            return [], failed
        scratch = root / "containers"
        init: list[Outcome] = []
        for container in pod["spec"].get("initContainers") or []:
            outcome = await _run_container(container, pod, volumes, scratch, lookup)
            init.append(outcome)
            if outcome.exit_code != 0:
                return init, []
        main = await asyncio.gather(
            *(
                _run_container(container, pod, volumes, scratch, lookup)
                for container in pod["spec"]["containers"]
            )
        )
        return init, list(main)
    finally:
        shutil.rmtree(root, ignore_errors=True)
