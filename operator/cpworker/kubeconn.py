"""Which Kubernetes API server the operator talks to, and who it is there.

`load()` answers it from a kubeconfig (the given path, else $KUBECONFIG, merged as kubectl
merges it) or, in a pod, from the ServiceAccount the kubelet mounts; else ~/.kube/config.
The `Connection` it returns is what both HTTP clients need: an `ssl.SSLContext` and an
Authorization header for the operator's own aiohttp requests (kube.py), and a
`kopf.ConnectionInfo` for kopf's login handler.

It exists so that the operator does not import the kubernetes Python client: that client was
used only for its config loader, and importing it costs about 40 MiB of resident memory (its
thousand generated model classes). This module reads the same kubeconfig fields with PyYAML
and implements the few credential sources a kubeconfig can name: a token, a token file
(re-read, since projected ServiceAccount tokens rotate), an exec plugin (client-go's
ExecCredential protocol), basic auth and client certificates. Auth-provider plugins are
refused: kubectl removed them too.

No secret (token, password, key, exec plugin argument or environment value) is ever put in
a `repr` or in a `ConfigError` message: both end up in logs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    import kopf

log = logging.getLogger(__name__)

# Where the kubelet mounts a pod's ServiceAccount token, CA and namespace.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_KUBECONFIG = "~/.kube/config"
# client-go and the kubernetes client re-read token files once a minute: the kubelet replaces
# a projected token well before it expires, so a minute-old copy is always still valid.
TOKEN_FILE_REFRESH_SECONDS = 60.0
# An exec credential is run again this long before it expires, so that no request carries a
# token that expires on its way (at most half the token's lifetime, for short-lived ones).
EXEC_EXPIRY_MARGIN = timedelta(seconds=60)
# kubectl waits for ever; an operator must not hang on a plugin that waits for a login prompt.
EXEC_TIMEOUT_SECONDS = 120.0
# Above every login handler kopf brings itself (its highest is 20): kopf must talk to the
# API with the identity the operator's own requests use.
KOPF_LOGIN_PRIORITY = 100
# Client keys given as data are written to a file for as long as `load_cert_chain` reads it
# (Python's ssl loads keys from files only): in RAM when a tmpfs is there, else the system's
# temporary directory (a readonly root filesystem often has only /dev/shm writable).
PRIVATE_TEMP_DIRS: tuple[str, ...] = ("/dev/shm",)  # noqa: S108 - a 0700 mkdtemp dir inside

_EXEC_KIND = "ExecCredential"
_UNREADABLE_FILE_HINT = (
    "in a pod, check the ServiceAccount token's mount; else the kubeconfig's tokenFile"
)
# Values shorter than this are not redacted from a plugin's error output: they are flags
# like "1" or "json" whose every occurrence would turn into noise, not secrets.
_REDACT_MIN_LENGTH = 6
_STDERR_TAIL_CHARS = 400

# Module attributes, not calls to time/datetime directly, so that tests can move the clocks
# without touching the event loop's.
_monotonic = time.monotonic


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ConfigError(Exception):
    """No usable Kubernetes configuration; the message says what to do."""


@dataclass(frozen=True)
class ExecPlugin:
    """A kubeconfig's users[].user.exec: a command printing a client.authentication.k8s.io
    ExecCredential.

    `base_dir` is the directory of the kubeconfig file that defined the user: a relative
    command with a path separator in it (``./bin/plugin``) resolves against it, as kubectl
    resolves it. `args` and `env` stay out of the repr: plugins take client secrets there.
    """

    command: str
    args: tuple[str, ...] = field(repr=False)
    env: tuple[tuple[str, str], ...] = field(repr=False)
    api_version: str
    base_dir: str

    def _argv(self) -> list[str]:
        """The command line, the command resolved as kubectl resolves it."""
        command = self.command
        if os.sep in command or (os.altsep and os.altsep in command):
            command = str(Path(self.base_dir, command))
        return [command, *self.args]

    def _environment(self) -> dict[str, str]:
        """The plugin's environment: ours, the kubeconfig's `env`, and KUBERNETES_EXEC_INFO."""
        env = dict(os.environ)
        env.update(self.env)
        # kubectl tells the plugin whether it may prompt; an operator never can.
        info = {"apiVersion": self.api_version, "kind": _EXEC_KIND, "spec": {"interactive": False}}
        env["KUBERNETES_EXEC_INFO"] = json.dumps(info)
        return env

    def _secrets(self) -> list[str]:
        """Values that may be secret, to keep out of error messages."""
        values = [value for _, value in self.env]
        values += [arg.partition("=")[2] or arg for arg in self.args]
        return [value for value in values if len(value) >= _REDACT_MIN_LENGTH]


@dataclass(frozen=True)
class _Credential:
    token: str = field(repr=False)
    expires: datetime | None  # the plugin's expirationTimestamp
    valid_until: datetime | None  # when to run the plugin again; None: not before a 401


@dataclass
class _State:
    """What a Connection caches; the Connection itself stays frozen (and hashable)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    # kopf's login handler runs the plugin in a thread: one run at a time, without holding
    # `lock` (which the event loop takes) for the plugin's duration.
    exec_sync_lock: threading.Lock = field(default_factory=threading.Lock)
    ssl_context: ssl.SSLContext | None = None
    file_token: str | None = field(default=None, repr=False)
    file_read_at: float = 0.0
    exec_credential: _Credential | None = None
    exec_task: asyncio.Task[_Credential] | None = None


@dataclass(frozen=True)
class Connection:
    """An API server and the credentials to use with it.

    Secrets stay out of the repr. The caches (SSL context, token file, exec credential) live
    in a private field that takes no part in equality: a Connection is still a value.
    """

    server: str  # e.g. "https://127.0.0.1:6443", no trailing slash
    ca_path: str | None = None
    ca_data: bytes | None = None  # PEM
    insecure: bool = False
    tls_server_name: str | None = None
    certificate_path: str | None = None
    private_key_path: str | None = None
    certificate_data: bytes | None = field(default=None, repr=False)
    private_key_data: bytes | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None  # re-read: in-cluster projected tokens rotate
    exec_plugin: ExecPlugin | None = None
    default_namespace: str | None = None
    _state: _State = field(default_factory=_State, init=False, repr=False, compare=False)

    # ---- TLS ------------------------------------------------------------------------------

    @property
    def server_hostname(self) -> str | None:
        """The name to verify the server's certificate against, when not the URL's host.

        The kubeconfig's tls-server-name. The transport passes it to aiohttp's
        ``request(server_hostname=...)``, which sends it as SNI and checks the certificate
        against it. kopf's ConnectionInfo has no such field: kopf checks the URL's host.
        """
        return self.tls_server_name

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS settings for the server, or None for an http:// server.

        Built once per Connection (it loads the CA bundle) and shared by every connection
        of the pool.
        """
        if not self.server.lower().startswith("https://"):
            return None
        state = self._state
        with state.lock:
            if state.ssl_context is None:
                state.ssl_context = self._build_ssl_context()
            return state.ssl_context

    def _build_ssl_context(self) -> ssl.SSLContext:
        if self.insecure:
            # insecure-skip-tls-verify: no CA is loaded, nothing is checked.
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            try:
                # A CA of the kubeconfig's replaces the system's (kubectl's semantics).
                context = ssl.create_default_context(
                    cafile=self.ca_path,
                    cadata=self.ca_data.decode("ascii") if self.ca_data is not None else None,
                )
            except (OSError, ValueError) as exc:
                source = self.ca_path or "certificate-authority-data"
                raise ConfigError(
                    f"cannot load the cluster's CA certificates from {source} ({_reason(exc)}); "
                    "the kubeconfig's certificate-authority must be a PEM file"
                ) from None
        self._load_client_certificate(context)
        return context

    def _load_client_certificate(self, context: ssl.SSLContext) -> None:
        has_certificate = bool(self.certificate_path or self.certificate_data)
        has_key = bool(self.private_key_path or self.private_key_data)
        if not has_certificate and not has_key:
            return
        if not (has_certificate and has_key):
            raise ConfigError(
                "a client certificate needs its key: set both client-certificate and "
                "client-key (or their -data forms) in the kubeconfig's user"
            )
        try:
            if self.certificate_data is None and self.private_key_data is None:
                context.load_cert_chain(str(self.certificate_path), str(self.private_key_path))
                return
            with _private_dir() as directory:
                certificate = self.certificate_path or _private_file(
                    directory / "client.crt", self.certificate_data
                )
                key = self.private_key_path or _private_file(
                    directory / "client.key", self.private_key_data
                )
                context.load_cert_chain(certificate, key)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot load the client certificate and key ({_reason(exc)}); "
                "they must be PEM and belong together"
            ) from None

    # ---- credentials ----------------------------------------------------------------------

    async def authorization(self, *, refresh: bool = False) -> str | None:
        """The Authorization header value, or None when only a client certificate is used.

        `refresh`: read the token file or run the exec plugin again now (after a 401),
        instead of when the cached copy ages out.
        """
        if self._uses_exec:
            return f"Bearer {(await self._exec_async(refresh)).token}"
        return self._static_or_file(refresh)

    def authorization_sync(self, *, refresh: bool = False) -> str | None:
        """`authorization`, blocking: kopf's login handler is sync and runs in a thread."""
        if self._uses_exec:
            return f"Bearer {self._exec_sync(refresh).token}"
        return self._static_or_file(refresh)

    @property
    def _uses_exec(self) -> bool:
        # A token or token file beside an exec plugin wins (the kubernetes client's order).
        return self.exec_plugin is not None and not self.token and not self.token_file

    def _static_or_file(self, refresh: bool) -> str | None:
        if self.token:
            return f"Bearer {self.token}"
        if self.token_file:
            # A small file (tmpfs in a pod), read once a minute: fine on the event loop.
            return f"Bearer {self._file_token(self.token_file, refresh)}"
        if self.username:
            userpass = f"{self.username}:{self.password or ''}".encode()
            return f"Basic {base64.b64encode(userpass).decode('ascii')}"
        return None

    def _file_token(self, path: str, refresh: bool) -> str:
        state = self._state
        now = _monotonic()
        with state.lock:
            cached = state.file_token
            if cached and not refresh and now - state.file_read_at < TOKEN_FILE_REFRESH_SECONDS:
                return cached
            try:
                token = _read_token_file(path, _UNREADABLE_FILE_HINT)
            except ConfigError as exc:
                if cached and not refresh:
                    # As client-go does: the kubelet swaps the token's symlink; a read that
                    # fails for a moment keeps the last token (still valid) for a minute.
                    log.warning("keeping the last token: %s", exc)
                    state.file_read_at = now
                    return cached
                raise
            state.file_token, state.file_read_at = token, now
            return token

    def _cached_exec(self, refresh: bool) -> _Credential | None:
        with self._state.lock:
            credential = self._state.exec_credential
        if credential is None or refresh:
            return None
        if credential.valid_until is not None and _utcnow() >= credential.valid_until:
            return None
        return credential

    async def _exec_async(self, refresh: bool) -> _Credential:
        cached = self._cached_exec(refresh)
        if cached is not None:
            return cached
        # Requests failing together (a burst after expiry, many 401s) share one plugin run.
        loop = asyncio.get_running_loop()
        state = self._state
        task = state.exec_task
        if task is None or task.done() or task.get_loop() is not loop:
            task = loop.create_task(self._run_exec_async())
            # Fetched here so that a run nobody awaits any more logs no "never retrieved".
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
            state.exec_task = task
        # One waiter cancelled does not cancel the run the others wait for.
        return await asyncio.shield(task)

    async def _run_exec_async(self) -> _Credential:
        plugin = self._plugin()
        try:
            process = await asyncio.create_subprocess_exec(
                *plugin._argv(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=plugin._environment(),
            )
        except OSError as exc:
            raise _exec_start_error(plugin, exc) from None
        try:
            async with asyncio.timeout(EXEC_TIMEOUT_SECONDS):
                stdout, stderr = await process.communicate()
                returncode = await process.wait()  # already exited: communicate waited
        except TimeoutError:
            raise _exec_timeout_error(plugin) from None
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        return self._keep(_parse_exec_output(plugin, returncode, stdout, stderr))

    def _exec_sync(self, refresh: bool) -> _Credential:
        cached = self._cached_exec(refresh)
        if cached is not None:
            return cached
        plugin = self._plugin()
        with self._state.exec_sync_lock:
            # Another thread may have run it while this one waited.
            cached = self._cached_exec(refresh)
            if cached is not None:
                return cached
            try:
                completed = subprocess.run(  # noqa: S603 - the kubeconfig's plugin
                    plugin._argv(),
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    env=plugin._environment(),
                    timeout=EXEC_TIMEOUT_SECONDS,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise _exec_timeout_error(plugin) from None
            except OSError as exc:
                raise _exec_start_error(plugin, exc) from None
            credential = _parse_exec_output(
                plugin, completed.returncode, completed.stdout, completed.stderr
            )
            return self._keep(credential)

    def _plugin(self) -> ExecPlugin:
        if self.exec_plugin is None:  # pragma: no cover - callers check
            raise ConfigError("no exec plugin is configured")
        return self.exec_plugin

    def _keep(self, credential: _Credential) -> _Credential:
        with self._state.lock:
            self._state.exec_credential = credential
        return credential

    # ---- kopf -----------------------------------------------------------------------------

    def kopf_info(self) -> kopf.ConnectionInfo:
        """kopf's login: the same server, TLS and current credentials as our own requests.

        Credentials are fetched afresh (token file re-read, exec plugin run): kopf calls its
        login handler at start-up and again after a 401. An exec token's expiry (less the
        margin) is passed on, so that kopf logs in again before the token runs out.
        tls-server-name has no equivalent in kopf.
        """
        import kopf  # noqa: PLC0415 - only the operator's login needs kopf; `cpworker check` not

        header = self.authorization_sync(refresh=True)
        scheme: str | None = None
        token: str | None = None
        username: str | None = None
        password: str | None = None
        if header and header.startswith("Basic "):
            # kopf builds the Basic header from username and password itself.
            username, password = self.username, self.password or ""
        elif header:
            scheme, _, token = header.partition(" ")
        expiration: datetime | None = None
        if self._uses_exec:
            credential = self._state.exec_credential
            expiration = credential.valid_until if credential is not None else None
        # kopf refuses a path and data together; data wins, as in client-go.
        return kopf.ConnectionInfo(
            server=self.server,
            ca_path=None if self.ca_data else self.ca_path,
            ca_data=self.ca_data,
            insecure=self.insecure,
            scheme=scheme,
            token=token,
            username=username,
            password=password,
            certificate_path=None if self.certificate_data else self.certificate_path,
            certificate_data=self.certificate_data,
            private_key_path=None if self.private_key_data else self.private_key_path,
            private_key_data=self.private_key_data,
            default_namespace=self.default_namespace,
            priority=KOPF_LOGIN_PRIORITY,
            expiration=expiration,
        )


# ---- loading --------------------------------------------------------------------------------


def load(
    kubeconfig: str | None = None,
    context: str | None = None,
    *,
    service_account_dir: str | os.PathLike[str] = SERVICE_ACCOUNT_DIR,
) -> Connection:
    """The connection from `kubeconfig`, else $KUBECONFIG, else the pod's ServiceAccount
    (when KUBERNETES_SERVICE_HOST is set), else ~/.kube/config.

    `kubeconfig` and $KUBECONFIG may list several files (os.pathsep between them), merged as
    kubectl merges them. `context` picks a kubeconfig context instead of current-context; it
    does not apply in a pod without a kubeconfig.
    """
    if kubeconfig:
        return _from_kubeconfig(_existing(kubeconfig, "the kubeconfig"), context)
    listed = os.environ.get("KUBECONFIG")
    if listed:
        return _from_kubeconfig(_existing(listed, "KUBECONFIG's"), context)
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return _in_cluster(Path(service_account_dir))
    default = Path(DEFAULT_KUBECONFIG).expanduser()
    if default.is_file():
        return _from_kubeconfig([default], context)
    raise ConfigError(
        "no Kubernetes configuration found: set KUBECONFIG or --kubeconfig; in a pod, the "
        "ServiceAccount token is used"
    )


def _existing(listed: str, origin: str) -> list[Path]:
    entries = list(
        dict.fromkeys(Path(entry).expanduser() for entry in listed.split(os.pathsep) if entry)
    )
    # kubectl skips the files of a list that do not exist; one file named alone must exist.
    existing = [path for path in entries if path.exists()]
    if existing:
        return existing
    if len(entries) == 1:
        raise ConfigError(
            f"{origin} file {entries[0]} does not exist; create it or point to one that does"
        )
    names = ", ".join(str(path) for path in entries)
    raise ConfigError(f"none of {origin} files exist ({names}); point to a kubeconfig that does")


def _in_cluster(directory: Path) -> Connection:
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "")
    if not port:
        raise ConfigError(
            "KUBERNETES_SERVICE_HOST is set but KUBERNETES_SERVICE_PORT is not; in a pod "
            "Kubernetes sets both, elsewhere set KUBECONFIG"
        )
    if (":" in host or "%" in host) and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address (as Go's net.JoinHostPort writes it)
    token_file = directory / "token"
    ca_file = directory / "ca.crt"
    namespace_file = directory / "namespace"
    namespace: str | None = None
    if namespace_file.is_file():
        with contextlib.suppress(OSError, UnicodeDecodeError):
            namespace = namespace_file.read_text(encoding="utf-8").strip() or None
    connection = Connection(
        server=f"https://{host}:{port}",
        # Without the CA file client-go goes on with the system's CAs; so do we.
        ca_path=str(ca_file) if ca_file.is_file() else None,
        token_file=str(token_file),
        default_namespace=namespace,
    )
    return _primed(
        connection,
        "mount the ServiceAccount token (automountServiceAccountToken: true) or set KUBECONFIG",
    )


@dataclass(frozen=True)
class _Entry:
    """A named cluster, context or user, and the kubeconfig file that defined it."""

    name: str
    body: Mapping[str, Any]
    source: Path

    @property
    def where(self) -> str:
        return str(self.source)

    @property
    def base_dir(self) -> Path:
        # The directory as named, symlinks not followed (client-go's filepath.Abs).
        return self.source.absolute().parent


@dataclass
class _Merged:
    files: list[Path]
    current_context: str | None = None
    entries: dict[str, dict[str, _Entry]] = field(
        default_factory=lambda: {"clusters": {}, "contexts": {}, "users": {}}
    )


def _merge(paths: list[Path]) -> _Merged:
    merged = _Merged(files=paths)
    for path in paths:
        document = _read_yaml(path)
        # kubectl's merge: the first file to set current-context, or to define a name, wins.
        current = document.get("current-context")
        if merged.current_context is None and isinstance(current, str) and current:
            merged.current_context = current
        for kind, known in merged.entries.items():
            items = document.get(kind) or []
            if not isinstance(items, list):
                raise ConfigError(f"kubeconfig {path}: {kind} must be a list")
            for item in items:
                name = item.get("name") if isinstance(item, dict) else None
                body = item.get(kind[:-1]) if isinstance(item, dict) else None
                if not isinstance(name, str) or not name:
                    raise ConfigError(f"kubeconfig {path}: every entry of {kind} needs a name")
                if body is not None and not isinstance(body, dict):
                    raise ConfigError(f"kubeconfig {path}: {kind[:-1]} {name!r} must be a map")
                known.setdefault(name, _Entry(name, body or {}, path))
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read kubeconfig {path} ({_reason(exc)})") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # Only the position and the problem: PyYAML's own message quotes the line, which may
        # be a token's.
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None)
        detail = f": {problem}" if isinstance(problem, str) else ""
        raise ConfigError(f"kubeconfig {path} is not valid YAML{at}{detail}; fix it") from None
    if document is None:
        return {}  # an empty file adds nothing, as in kubectl
    if not isinstance(document, dict):
        raise ConfigError(f"kubeconfig {path} is not a kubeconfig (a YAML map)")
    return document


def _from_kubeconfig(paths: list[Path], context: str | None) -> Connection:
    merged = _merge(paths)
    files = ", ".join(str(path) for path in paths)
    contexts = merged.entries["contexts"]
    available = ", ".join(sorted(contexts)) or "none"
    name = context or merged.current_context
    if not name:
        raise ConfigError(
            f"kubeconfig {files} sets no current-context; choose a context (available: {available})"
        )
    chosen = contexts.get(name)
    if chosen is None:
        raise ConfigError(
            f"context {name!r} is not in kubeconfig {files}; available contexts: {available}"
        )
    cluster_name = chosen.body.get("cluster")
    cluster = (
        merged.entries["clusters"].get(cluster_name) if isinstance(cluster_name, str) else None
    )
    if cluster is None:
        raise ConfigError(
            f"context {name!r} (in {chosen.where}) names cluster {cluster_name!r}, which no "
            f"kubeconfig file of {files} defines"
        )
    user_name = chosen.body.get("user")
    user: _Entry | None = None
    if user_name:
        user = merged.entries["users"].get(user_name) if isinstance(user_name, str) else None
        if user is None:
            raise ConfigError(
                f"context {name!r} (in {chosen.where}) names user {user_name!r}, which no "
                f"kubeconfig file of {files} defines"
            )
    namespace = chosen.body.get("namespace")
    connection = Connection(
        **_cluster_fields(cluster),
        **(_user_fields(user) if user is not None else {}),
        default_namespace=namespace if isinstance(namespace, str) and namespace else None,
    )
    return _primed(connection, "fix the user's tokenFile in the kubeconfig")


def _cluster_fields(cluster: _Entry) -> dict[str, Any]:
    what = f"cluster {cluster.name!r} (in {cluster.where})"
    body = cluster.body
    if body.get("proxy-url"):
        raise ConfigError(
            f"{what} sets proxy-url, which cpworker does not support; reach the API server directly"
        )
    server = _text(body, "server", what)
    if not server:
        raise ConfigError(f"{what} has no server; set clusters[].cluster.server")
    server = server.rstrip("/")
    if not server.lower().startswith(("https://", "http://")):
        # The URL is not quoted back: it may carry user:password@.
        raise ConfigError(f"{what}: the server's URL must start with https:// or http://")
    ca_data = _data(body, "certificate-authority-data", what)
    insecure = body.get("insecure-skip-tls-verify", False)
    if not isinstance(insecure, bool):
        raise ConfigError(f"{what}: insecure-skip-tls-verify must be true or false")
    return {
        "server": server,
        # client-go: data wins over a file.
        "ca_path": None if ca_data else _file(body, "certificate-authority", cluster, what),
        "ca_data": ca_data,
        "insecure": insecure,
        "tls_server_name": _text(body, "tls-server-name", what),
    }


_IMPERSONATION = ("as", "as-uid", "as-groups", "as-user-extra")


def _user_fields(user: _Entry) -> dict[str, Any]:
    what = f"user {user.name!r} (in {user.where})"
    body = user.body
    provider = body.get("auth-provider")
    if provider:
        kind = provider.get("name") if isinstance(provider, dict) else None
        named = f"the auth-provider {kind!r}" if isinstance(kind, str) else "an auth-provider"
        raise ConfigError(
            f"{what} uses {named}; auth-provider plugins were "
            "removed from kubectl: use an exec plugin (e.g. gke-gcloud-auth-plugin, kubelogin)"
        )
    if any(body.get(key) for key in _IMPERSONATION):
        raise ConfigError(
            f"{what} impersonates another identity (as:), which cpworker does not support"
        )
    # client-go: data wins over a file.
    certificate_data = _data(body, "client-certificate-data", what)
    key_data = _data(body, "client-key-data", what)
    certificate_path = None if certificate_data else _file(body, "client-certificate", user, what)
    key_path = None if key_data else _file(body, "client-key", user, what)
    fields: dict[str, Any] = {
        "certificate_data": certificate_data,
        "private_key_data": key_data,
        "certificate_path": certificate_path,
        "private_key_path": key_path,
    }
    # One credential, in the kubernetes client's order: a token, a token file, an exec
    # plugin, basic auth. Client certificates go with any of them.
    token = _text(body, "token", what)
    if token:
        return {**fields, "token": token}
    token_file = _text(body, "tokenFile", what)
    if token_file:
        return {**fields, "token_file": str(user.base_dir / token_file)}
    if body.get("exec"):
        return {**fields, "exec_plugin": _exec_plugin(body["exec"], user, what)}
    username = _text(body, "username", what)
    if username:
        return {**fields, "username": username, "password": _text(body, "password", what) or ""}
    return fields


def _exec_plugin(spec: Any, user: _Entry, what: str) -> ExecPlugin:
    if not isinstance(spec, dict):
        raise ConfigError(f"{what}: exec must be a map with command and apiVersion")
    command = _text(spec, "command", f"{what} exec")
    api_version = _text(spec, "apiVersion", f"{what} exec")
    if not command or not api_version:
        raise ConfigError(
            f"{what}: exec needs a command and an apiVersion (client.authentication.k8s.io/v1)"
        )
    if spec.get("interactiveMode") == "Always":
        raise ConfigError(
            f"{what}: the exec plugin wants a terminal (interactiveMode: Always); the "
            "operator has none: configure the plugin to log in without prompting"
        )
    args = spec.get("args") or []
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        raise ConfigError(f"{what}: exec args must be a list of strings")
    env: list[tuple[str, str]] = []
    for item in spec.get("env") or []:
        name = item.get("name") if isinstance(item, dict) else None
        value = item.get("value") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name or not isinstance(value, str):
            raise ConfigError(f"{what}: every exec env entry needs a name and a string value")
        env.append((name, value))
    return ExecPlugin(
        command=command,
        args=tuple(args),
        env=tuple(env),
        api_version=api_version,
        base_dir=str(user.base_dir),
    )


def _text(body: Mapping[str, Any], key: str, what: str) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{what}: {key} must be a string")
    return value


def _data(body: Mapping[str, Any], key: str, what: str) -> bytes | None:
    value = _text(body, key, what)
    if value is None:
        return None
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{what}: {key} is not valid base64") from None


def _file(body: Mapping[str, Any], key: str, entry: _Entry, what: str) -> str | None:
    value = _text(body, key, what)
    if value is None:
        return None
    path = entry.base_dir / value  # relative to the kubeconfig that says it (kubectl)
    if not path.is_file():
        raise ConfigError(f"{what}: {key} {path} does not exist")
    return str(path)


# ---- helpers --------------------------------------------------------------------------------


def _primed(connection: Connection, hint: str) -> Connection:
    """The token file read once now: a missing one fails `load`, and requests find it read."""
    if connection.token_file:
        token = _read_token_file(connection.token_file, hint)
        state = connection._state  # this module's own cache
        with state.lock:
            state.file_token, state.file_read_at = token, _monotonic()
    return connection


def _read_token_file(path: str, hint: str) -> str:
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the token file {path} ({_reason(exc)}); {hint}") from None
    if not token:
        raise ConfigError(f"the token file {path} is empty; {hint}")
    return token


def _parse_exec_output(
    plugin: ExecPlugin, returncode: int, stdout: bytes, stderr: bytes
) -> _Credential:
    """The plugin's ExecCredential, or a ConfigError that quotes nothing it printed on stdout."""
    name = Path(plugin.command).name
    if returncode != 0:
        detail = _redacted_tail(stderr.decode("utf-8", "replace"), plugin._secrets())
        raise ConfigError(
            f"the exec plugin {name} failed (exit status {returncode})"
            + (f": {detail}" if detail else "")
            + "; run it by hand to see why (an expired login is the usual cause)"
        )
    try:
        document = json.loads(stdout)
    except ValueError:
        raise ConfigError(
            f"the exec plugin {name} printed no JSON; it must print an ExecCredential"
        ) from None
    if not isinstance(document, dict) or document.get("kind") != _EXEC_KIND:
        raise ConfigError(f"the exec plugin {name} printed no ExecCredential")
    if document.get("apiVersion") != plugin.api_version:
        raise ConfigError(
            f"the exec plugin {name} answered in another apiVersion than the kubeconfig's "
            f"{plugin.api_version}; make exec.apiVersion match the plugin's"
        )
    status = document.get("status")
    if not isinstance(status, dict):
        raise ConfigError(f"the exec plugin {name}'s ExecCredential has no status")
    token = status.get("token")
    if not token:
        if status.get("clientCertificateData") or status.get("clientKeyData"):
            raise ConfigError(
                f"the exec plugin {name} returned a client certificate: exec client "
                "certificates are not supported, use a plugin (or option) that issues a token"
            )
        raise ConfigError(f"the exec plugin {name}'s ExecCredential has no status.token")
    if not isinstance(token, str):
        raise ConfigError(f"the exec plugin {name}'s status.token is not a string")
    expires = _expiry(status.get("expirationTimestamp"), name)
    valid_until: datetime | None = None
    if expires is not None:
        lifetime = expires - _utcnow()
        margin = max(min(EXEC_EXPIRY_MARGIN, lifetime / 2), timedelta(0))
        valid_until = expires - margin
    return _Credential(token=token, expires=expires, valid_until=valid_until)


def _expiry(value: Any, name: str) -> datetime | None:
    if value is None or value == "":
        return None  # kept until a 401 says otherwise (client-go's behaviour)
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(
            f"the exec plugin {name}'s status.expirationTimestamp is not RFC 3339"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _redacted_tail(text: str, secrets: list[str]) -> str:
    # The plugin's complaint is what tells the user what to do ("log in again"); what it
    # was given (client secrets in args or env) is cut out of it first.
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    text = " | ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    return text if len(text) <= _STDERR_TAIL_CHARS else "…" + text[-_STDERR_TAIL_CHARS:]


def _exec_start_error(plugin: ExecPlugin, exc: OSError) -> ConfigError:
    return ConfigError(
        f"cannot run the exec plugin {plugin._argv()[0]} ({_reason(exc)}); install it or fix "
        "the user's exec.command in the kubeconfig"
    )


def _exec_timeout_error(plugin: ExecPlugin) -> ConfigError:
    return ConfigError(
        f"the exec plugin {Path(plugin.command).name} did not answer within "
        f"{EXEC_TIMEOUT_SECONDS:.0f} s; it may be waiting for an interactive login"
    )


def _reason(exc: BaseException) -> str:
    # OSError's strerror, never str(exc) of a decoder, which may quote the input.
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    return type(exc).__name__


@contextlib.contextmanager
def _private_dir() -> Iterator[Path]:
    """A directory only we can read (mkdtemp: 0700), gone with everything in it on exit."""
    parent = next(
        (d for d in PRIVATE_TEMP_DIRS if Path(d).is_dir() and os.access(d, os.W_OK | os.X_OK)),
        None,
    )
    with tempfile.TemporaryDirectory(prefix="cpworker-tls-", dir=parent) as directory:
        yield Path(directory)


def _private_file(path: Path, data: bytes | None) -> str:
    path.touch(mode=0o600, exist_ok=False)
    path.write_bytes(data or b"")
    return str(path)
