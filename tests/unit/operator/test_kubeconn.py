"""cpworker.kubeconn: the API server and credentials, from kubeconfig files or a ServiceAccount.

Real files in tmp_path, real subprocesses for exec plugins (small Python scripts), no network.
The clocks are the module's own attributes, moved by monkeypatch: nothing sleeps.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import os
import re
import ssl
import stat
import sys
import textwrap
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cpworker import kubeconn

CANARY_TOKEN = "canary-token-XYZ"
CANARY_PASSWORD = "canary-pass-XYZ"
EXEC_API = "client.authentication.k8s.io/v1"

# An exec plugin: counts its runs in $COUNT_FILE, answers as $PLUGIN_MODE says, and puts what
# kubectl's protocol hands it (the kubeconfig's env, KUBERNETES_EXEC_INFO) into its token.
PLUGIN = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path

    count_file = Path(os.environ["COUNT_FILE"])
    runs = int(count_file.read_text()) + 1 if count_file.exists() else 1
    count_file.write_text(str(runs))
    info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
    mode = os.environ.get("PLUGIN_MODE", "token")
    secret = os.environ.get("PLUGIN_SECRET", "")
    if mode == "fail":
        print("error: login expired for", secret, sys.argv[1:], file=sys.stderr)
        sys.exit(3)
    if mode == "garbage":
        print("here is your token:", secret)
        sys.exit(0)
    status = {
        "token": f"tok-{runs}-{os.environ['PLUGIN_GREETING']}-{info['spec']['interactive']}",
        "expirationTimestamp": os.environ["EXPIRES"],
    }
    if mode == "cert":
        status = {"clientCertificateData": "-----BEGIN CERTIFICATE-----", "clientKeyData": secret}
    version = "client.authentication.k8s.io/v1beta1" if mode == "version" else info["apiVersion"]
    print(json.dumps({"apiVersion": version, "kind": info["kind"], "status": status}))
    """
)


@pytest.fixture(autouse=True)
def no_ambient_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Neither the developer's kubeconfig nor a CI pod's ServiceAccount leaks into a test."""
    for name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))


@pytest.fixture(scope="module")
def cert_and_key() -> tuple[bytes, bytes]:
    """A self-signed certificate and its key, PEM: a CA and a client certificate alike."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubeconn-test")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def kubeconfig(
    cluster: dict[str, Any],
    user: dict[str, Any] | None = None,
    *,
    context: str = "dev",
    namespace: str | None = None,
    current: bool = True,
) -> dict[str, Any]:
    """A kubeconfig with one context, cluster and user."""
    body: dict[str, Any] = {"cluster": "c"}
    if user is not None:
        body["user"] = "u"
    if namespace:
        body["namespace"] = namespace
    document: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "contexts": [{"name": context, "context": body}],
        "users": [{"name": "u", "user": user}] if user is not None else [],
    }
    if current:
        document["current-context"] = context
    return document


def write(path: Path, document: dict[str, Any]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return str(path)


def config_errors(*attempts: Callable[[], object]) -> Iterator[kubeconn.ConfigError]:
    for attempt in attempts:
        with pytest.raises(kubeconn.ConfigError) as caught:
            attempt()
        yield caught.value


def full_text(error: BaseException) -> str:
    """Everything a log line with the traceback would show."""
    return repr(error) + "".join(traceback.format_exception(error))


# ---- kubeconfig -------------------------------------------------------------------------------


async def test_a_token_kubeconfig(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config",
        kubeconfig({"server": "https://127.0.0.1:6443/"}, {"token": "t0k"}, namespace="ci"),
    )
    connection = kubeconn.load(path)
    assert connection.server == "https://127.0.0.1:6443"  # the trailing slash normalized
    assert connection.token == "t0k"
    assert connection.default_namespace == "ci"
    assert await connection.authorization() == "Bearer t0k"
    assert connection.authorization_sync(refresh=True) == "Bearer t0k"


def test_base64_ca_data_becomes_pem_and_is_verified_against(
    tmp_path: Path, cert_and_key: tuple[bytes, bytes]
) -> None:
    ca, _ = cert_and_key
    cluster = {"server": "https://k8s:6443", "certificate-authority-data": b64(ca)}
    connection = kubeconn.load(write(tmp_path / "config", kubeconfig(cluster, {"token": "t"})))
    assert connection.ca_data == ca
    assert connection.ca_path is None
    context = connection.ssl_context()
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert len(context.get_ca_certs()) == 1  # ours, instead of the system's bundle
    assert connection.ssl_context() is context  # built once


def test_paths_are_relative_to_the_kubeconfig_that_names_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cert_and_key: tuple[bytes, bytes]
) -> None:
    certificate, key = cert_and_key
    (tmp_path / "conf" / "certs").mkdir(parents=True)
    (tmp_path / "keys").mkdir()
    (tmp_path / "conf" / "certs" / "ca.crt").write_bytes(certificate)
    (tmp_path / "conf" / "certs" / "client.crt").write_bytes(certificate)
    (tmp_path / "keys" / "client.key").write_bytes(key)
    (tmp_path / "conf" / "token").write_text("from-file\n", encoding="utf-8")
    user = {
        "client-certificate": "certs/client.crt",
        "client-key": "../keys/client.key",
        "tokenFile": "token",
    }
    cluster = {"server": "https://k8s:6443", "certificate-authority": "certs/ca.crt"}
    path = write(tmp_path / "conf" / "config", kubeconfig(cluster, user))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    connection = kubeconn.load(path)
    assert connection.ca_path == str(tmp_path / "conf" / "certs" / "ca.crt")
    assert connection.certificate_path == str(tmp_path / "conf" / "certs" / "client.crt")
    assert Path(str(connection.private_key_path)).resolve() == tmp_path / "keys" / "client.key"
    assert connection.token_file == str(tmp_path / "conf" / "token")
    assert connection.authorization_sync() == "Bearer from-file"
    assert connection.ssl_context() is not None  # the files load


def test_a_missing_referenced_file_fails_the_load(tmp_path: Path) -> None:
    cluster = {"server": "https://k8s:6443", "certificate-authority": "nowhere/ca.crt"}
    path = write(tmp_path / "config", kubeconfig(cluster, {"token": "t"}))
    with pytest.raises(kubeconn.ConfigError, match=r"certificate-authority .*nowhere"):
        kubeconn.load(path)


def test_kubeconfig_list_merges_first_wins_and_skips_missing_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = {
        "current-context": "alpha",
        "contexts": [{"name": "alpha", "context": {"cluster": "shared", "user": "ua"}}],
        "clusters": [{"name": "shared", "cluster": {"server": "https://a.example"}}],
        "users": [{"name": "ua", "user": {"token": "from-a"}}],
    }
    second = {
        "current-context": "beta",
        "contexts": [
            {"name": "alpha", "context": {"cluster": "only-b", "user": "ub"}},
            {"name": "beta", "context": {"cluster": "only-b", "user": "ub", "namespace": "nb"}},
        ],
        "clusters": [
            {"name": "shared", "cluster": {"server": "https://b.example"}},
            {"name": "only-b", "cluster": {"server": "https://only-b:6443/"}},
        ],
        "users": [
            {"name": "ua", "user": {"token": "from-b"}},
            {"name": "ub", "user": {"tokenFile": "token"}},
        ],
    }
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "token").write_text("b-file-token", encoding="utf-8")
    listed = os.pathsep.join(
        [
            str(tmp_path / "missing" / "config"),
            write(tmp_path / "a" / "config", first),
            write(tmp_path / "b" / "config", second),
        ]
    )
    monkeypatch.setenv("KUBECONFIG", listed)

    current = kubeconn.load()
    assert current.server == "https://a.example"  # current-context and cluster from the first
    assert current.token == "from-a"
    beta = kubeconn.load(context="beta")
    assert beta.server == "https://only-b:6443"
    assert beta.token_file == str(tmp_path / "b" / "token")  # relative to the second file
    assert beta.default_namespace == "nb"


def test_the_context_is_chosen_and_an_unknown_one_lists_the_names(tmp_path: Path) -> None:
    document = kubeconfig({"server": "https://dev:6443"}, {"token": "t"})
    document["contexts"].append({"name": "prod", "context": {"cluster": "p", "user": "u"}})
    document["clusters"].append({"name": "p", "cluster": {"server": "https://prod:6443"}})
    path = write(tmp_path / "config", document)
    assert kubeconn.load(path).server == "https://dev:6443"
    assert kubeconn.load(path, context="prod").server == "https://prod:6443"
    with pytest.raises(kubeconn.ConfigError, match=r"'staging'.*available contexts: dev, prod"):
        kubeconn.load(path, context="staging")


def test_no_current_context_asks_for_one(tmp_path: Path) -> None:
    document = kubeconfig({"server": "https://dev:6443"}, current=False)
    with pytest.raises(kubeconn.ConfigError, match=r"no current-context.*available: dev"):
        kubeconn.load(write(tmp_path / "config", document))


def test_a_missing_explicit_kubeconfig_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(kubeconn.ConfigError, match="does not exist"):
        kubeconn.load(str(tmp_path / "nope"))
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(tmp_path / "x"), str(tmp_path / "y")]))
    with pytest.raises(kubeconn.ConfigError, match="none of KUBECONFIG's files exist"):
        kubeconn.load()


def test_the_home_kubeconfig_is_the_last_resort(tmp_path: Path) -> None:
    write(tmp_path / "home" / ".kube" / "config", kubeconfig({"server": "http://home:8080"}))
    assert kubeconn.load().server == "http://home:8080"


def test_nothing_configured_says_what_to_do() -> None:
    with pytest.raises(kubeconn.ConfigError, match="set KUBECONFIG or --kubeconfig; in a pod"):
        kubeconn.load()


def test_basic_auth(tmp_path: Path) -> None:
    user = {"username": "alice", "password": "s3cret-pw"}
    path = write(tmp_path / "config", kubeconfig({"server": "https://k8s:6443"}, user))
    connection = kubeconn.load(path)
    expected = "Basic " + base64.b64encode(b"alice:s3cret-pw").decode()
    assert connection.authorization_sync() == expected
    info = connection.kopf_info()
    assert (info.username, info.password, info.scheme, info.token) == (
        "alice",
        "s3cret-pw",
        None,
        None,
    )
    assert info.as_http_headers() == {"Authorization": expected}


def test_auth_provider_plugins_are_refused(tmp_path: Path) -> None:
    user = {"auth-provider": {"name": "gcp", "config": {"access-token": CANARY_TOKEN}}}
    path = write(tmp_path / "config", kubeconfig({"server": "https://k8s:6443"}, user))
    with pytest.raises(kubeconn.ConfigError) as caught:
        kubeconn.load(path)
    message = str(caught.value)
    assert "auth-provider plugins were removed from kubectl" in message
    assert "exec plugin" in message
    assert CANARY_TOKEN not in full_text(caught.value)


# ---- in a pod ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "server"),
    [("10.96.0.1", "https://10.96.0.1:443"), ("fd00:10:96::1", "https://[fd00:10:96::1]:443")],
)
def test_in_cluster_from_the_service_account(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cert_and_key: tuple[bytes, bytes],
    host: str,
    server: str,
) -> None:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("sa-token\n", encoding="utf-8")
    (account / "ca.crt").write_bytes(cert_and_key[0])
    (account / "namespace").write_text("cpworker-system", encoding="utf-8")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")

    connection = kubeconn.load(service_account_dir=account)
    assert connection.server == server
    assert connection.ca_path == str(account / "ca.crt")
    assert connection.token_file == str(account / "token")
    assert connection.default_namespace == "cpworker-system"
    assert connection.authorization_sync() == "Bearer sa-token"
    assert connection.ssl_context() is not None


def test_in_cluster_without_a_token_says_how_to_mount_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    with pytest.raises(kubeconn.ConfigError, match="automountServiceAccountToken"):
        kubeconn.load(service_account_dir=tmp_path)


def test_a_kubeconfig_wins_over_the_service_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setenv("KUBECONFIG", write(tmp_path / "config", kubeconfig({"server": "http://x"})))
    assert kubeconn.load(service_account_dir=tmp_path / "absent").server == "http://x"


async def test_a_token_file_is_read_again_after_a_minute_or_on_refresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(kubeconn, "_monotonic", lambda: now[0])
    token = tmp_path / "token"
    token.write_text("first", encoding="utf-8")
    path = write(tmp_path / "config", kubeconfig({"server": "https://k8s"}, {"tokenFile": "token"}))
    connection = kubeconn.load(path)

    token.write_text("second", encoding="utf-8")  # the kubelet rotated it
    assert await connection.authorization() == "Bearer first"
    now[0] += 59
    assert connection.authorization_sync() == "Bearer first"
    assert await connection.authorization(refresh=True) == "Bearer second"  # after a 401

    token.write_text("third", encoding="utf-8")
    now[0] += 59
    assert await connection.authorization() == "Bearer second"
    now[0] += 2
    assert await connection.authorization() == "Bearer third"


def test_an_unreadable_token_file_keeps_the_last_token_until_a_refresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    monkeypatch.setattr(kubeconn, "_monotonic", lambda: now[0])
    token = tmp_path / "token"
    token.write_text(CANARY_TOKEN, encoding="utf-8")
    path = write(tmp_path / "config", kubeconfig({"server": "https://k8s"}, {"tokenFile": "token"}))
    connection = kubeconn.load(path)
    token.unlink()
    now[0] += 61
    assert connection.authorization_sync() == f"Bearer {CANARY_TOKEN}"
    with pytest.raises(kubeconn.ConfigError, match=r"cannot read the token file .*token") as caught:
        connection.authorization_sync(refresh=True)
    assert CANARY_TOKEN not in full_text(caught.value)
    assert "keeping the last token" in caplog.text
    assert CANARY_TOKEN not in caplog.text


# ---- exec plugins -----------------------------------------------------------------------------


def exec_user(
    tmp_path: Path, expires: dt.datetime, *, mode: str = "token", secret: str = "plugin-secret"
) -> dict[str, Any]:
    script = tmp_path / "plugin.py"
    script.write_text(PLUGIN, encoding="utf-8")
    env = {
        "COUNT_FILE": str(tmp_path / "runs"),
        "PLUGIN_GREETING": "hello",
        "EXPIRES": expires.isoformat().replace("+00:00", "Z"),
        "PLUGIN_MODE": mode,
        "PLUGIN_SECRET": secret,
    }
    return {
        "exec": {
            "apiVersion": EXEC_API,
            "command": sys.executable,
            "args": [str(script), f"--client-secret={secret}"],
            "env": [{"name": name, "value": value} for name, value in env.items()],
        }
    }


def runs(tmp_path: Path) -> int:
    return int((tmp_path / "runs").read_text(encoding="utf-8"))


async def test_an_exec_token_is_cached_until_it_expires_and_run_again_on_refresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)
    expires = start + dt.timedelta(hours=1)
    clock = [start]
    monkeypatch.setattr(kubeconn, "_utcnow", lambda: clock[0])
    path = write(
        tmp_path / "config", kubeconfig({"server": "https://k8s"}, exec_user(tmp_path, expires))
    )
    connection = kubeconn.load(path)
    assert connection.exec_plugin is not None
    assert connection.exec_plugin.api_version == EXEC_API

    # The kubeconfig's env reached it, and KUBERNETES_EXEC_INFO said "not interactive".
    assert await connection.authorization() == "Bearer tok-1-hello-False"
    clock[0] = expires - dt.timedelta(minutes=2)
    assert await connection.authorization() == "Bearer tok-1-hello-False"
    assert runs(tmp_path) == 1
    assert await connection.authorization(refresh=True) == "Bearer tok-2-hello-False"
    clock[0] = expires - dt.timedelta(seconds=30)  # within the margin: run before it expires
    assert await connection.authorization() == "Bearer tok-3-hello-False"
    assert connection.authorization_sync() == "Bearer tok-3-hello-False"  # one cache
    assert connection.authorization_sync(refresh=True) == "Bearer tok-4-hello-False"
    assert runs(tmp_path) == 4


async def test_requests_waiting_for_an_exec_token_share_one_run(tmp_path: Path) -> None:
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    path = write(
        tmp_path / "config", kubeconfig({"server": "https://k8s"}, exec_user(tmp_path, expires))
    )
    connection = kubeconn.load(path)
    headers = await asyncio.gather(*(connection.authorization() for _ in range(8)))
    assert set(headers) == {"Bearer tok-1-hello-False"}
    assert runs(tmp_path) == 1


def test_a_relative_exec_command_resolves_against_the_kubeconfig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = tmp_path / "conf" / "bin" / "plugin"
    plugin.parent.mkdir(parents=True)
    plugin.write_text(f"#!{sys.executable}\n{PLUGIN}", encoding="utf-8")
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    user = exec_user(tmp_path, dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    user["exec"]["command"] = "./bin/plugin"
    user["exec"]["args"] = []
    path = write(tmp_path / "conf" / "config", kubeconfig({"server": "https://k8s"}, user))
    monkeypatch.chdir(tmp_path)
    assert kubeconn.load(path).authorization_sync() == "Bearer tok-1-hello-False"


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("fail", r"failed \(exit status 3\): error: login expired for \[redacted\]"),
        ("garbage", "printed no JSON"),
        ("cert", "exec client certificates are not supported, use a plugin .* token"),
        ("version", "another apiVersion"),
    ],
)
async def test_a_failing_exec_plugin_is_a_config_error_without_secrets(
    tmp_path: Path, mode: str, message: str
) -> None:
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    user = exec_user(tmp_path, expires, mode=mode, secret=CANARY_PASSWORD)
    connection = kubeconn.load(
        write(tmp_path / "config", kubeconfig({"server": "https://k"}, user))
    )
    failures = [
        *config_errors(connection.authorization_sync),
        *config_errors(lambda: connection.authorization_sync(refresh=True)),
    ]
    with pytest.raises(kubeconn.ConfigError) as caught:
        await connection.authorization()
    failures.append(caught.value)
    for failure in failures:
        assert re.search(message, str(failure)), failure
        assert CANARY_PASSWORD not in full_text(failure)


def test_an_exec_command_that_does_not_exist(tmp_path: Path) -> None:
    user = {"exec": {"apiVersion": EXEC_API, "command": str(tmp_path / "no-such-plugin")}}
    connection = kubeconn.load(
        write(tmp_path / "config", kubeconfig({"server": "https://k"}, user))
    )
    with pytest.raises(kubeconn.ConfigError, match=r"cannot run the exec plugin .*install it"):
        connection.authorization_sync()


# ---- TLS --------------------------------------------------------------------------------------


def test_client_certificate_data_loads_and_leaves_no_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cert_and_key: tuple[bytes, bytes]
) -> None:
    certificate, key = cert_and_key
    private = tmp_path / "private"
    private.mkdir()
    monkeypatch.setattr(kubeconn, "PRIVATE_TEMP_DIRS", (str(private),))
    seen: list[tuple[str, int]] = []
    original = ssl.SSLContext.load_cert_chain

    def watched(
        context: ssl.SSLContext, certfile: Any, keyfile: Any = None, password: Any = None
    ) -> None:
        for name in (certfile, keyfile):
            seen.append((str(name), stat.S_IMODE(Path(name).stat().st_mode)))
            seen.append((str(Path(name).parent), stat.S_IMODE(Path(name).parent.stat().st_mode)))
        original(context, certfile, keyfile, password)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", watched)
    user = {"client-certificate-data": b64(certificate), "client-key-data": b64(key)}
    path = write(tmp_path / "config", kubeconfig({"server": "https://k8s:6443"}, user))
    connection = kubeconn.load(path)
    assert connection.certificate_data == certificate
    assert connection.private_key_data == key
    assert connection.ssl_context() is not None
    assert connection.authorization_sync() is None  # the certificate authenticates

    assert seen, "load_cert_chain was not called"
    assert all(name.startswith(str(private)) for name, _ in seen)
    assert {mode for name, mode in seen if name.endswith((".crt", ".key"))} == {0o600}
    assert {mode for name, mode in seen if not name.endswith((".crt", ".key"))} == {0o700}
    assert list(private.iterdir()) == []  # nothing left behind


def test_a_key_that_does_not_match_is_a_config_error(
    tmp_path: Path, cert_and_key: tuple[bytes, bytes]
) -> None:
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    connection = kubeconn.Connection(
        server="https://k8s", certificate_data=cert_and_key[0], private_key_data=other
    )
    with pytest.raises(kubeconn.ConfigError, match="belong together") as caught:
        connection.ssl_context()
    assert other.decode() not in full_text(caught.value)


def test_an_http_server_has_no_ssl_context(tmp_path: Path) -> None:
    path = write(tmp_path / "config", kubeconfig({"server": "http://127.0.0.1:8080"}))
    assert kubeconn.load(path).ssl_context() is None


def test_insecure_and_tls_server_name(tmp_path: Path) -> None:
    cluster = {
        "server": "https://10.0.0.1:6443",
        "insecure-skip-tls-verify": True,
        "tls-server-name": "kubernetes.default",
    }
    connection = kubeconn.load(write(tmp_path / "config", kubeconfig(cluster)))
    assert connection.server_hostname == "kubernetes.default"
    context = connection.ssl_context()
    assert context is not None
    assert context.verify_mode == ssl.CERT_NONE
    assert not context.check_hostname


# ---- kopf -------------------------------------------------------------------------------------


def test_kopf_info_for_a_token(tmp_path: Path, cert_and_key: tuple[bytes, bytes]) -> None:
    cluster = {"server": "https://k8s:6443", "certificate-authority-data": b64(cert_and_key[0])}
    path = write(tmp_path / "config", kubeconfig(cluster, {"token": "t0k"}, namespace="ci"))
    info = kubeconn.load(path).kopf_info()
    assert info.server == "https://k8s:6443"
    assert info.ca_data == cert_and_key[0]
    assert info.ca_path is None
    assert not info.insecure
    assert (info.scheme, info.token) == ("Bearer", "t0k")
    assert info.default_namespace == "ci"
    assert info.expiration is None
    assert info.priority > 20  # above kopf's own login handlers
    assert info.as_http_headers() == {"Authorization": "Bearer t0k"}
    assert info.as_ssl_context().get_ca_certs()  # kopf takes our PEM bytes


def test_kopf_info_for_client_certificates(
    tmp_path: Path, cert_and_key: tuple[bytes, bytes]
) -> None:
    certificate, key = cert_and_key
    user = {"client-certificate-data": b64(certificate), "client-key-data": b64(key)}
    path = write(tmp_path / "config", kubeconfig({"server": "https://k8s"}, user))
    info = kubeconn.load(path).kopf_info()
    assert (info.certificate_data, info.private_key_data) == (certificate, key)
    assert (info.certificate_path, info.private_key_path) == (None, None)
    assert (info.scheme, info.token, info.username) == (None, None, None)
    assert info.as_ssl_context() is not None


def test_kopf_info_for_an_exec_plugin_expires_with_its_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    monkeypatch.setattr(kubeconn, "_utcnow", lambda: start)
    expires = start + dt.timedelta(minutes=15)
    path = write(
        tmp_path / "config", kubeconfig({"server": "https://k8s"}, exec_user(tmp_path, expires))
    )
    connection = kubeconn.load(path)
    first = connection.kopf_info()
    assert (first.scheme, first.token) == ("Bearer", "tok-1-hello-False")
    assert first.expiration == expires - kubeconn.EXEC_EXPIRY_MARGIN
    assert connection.kopf_info().token == "tok-2-hello-False"  # kopf logs in again: fresh


# ---- secrets ----------------------------------------------------------------------------------


def test_canaries_stay_out_of_reprs_and_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = kubeconn.Connection(
        server="https://k8s",
        token=CANARY_TOKEN,
        username="alice",
        password=CANARY_PASSWORD,
        certificate_data=CANARY_PASSWORD.encode(),
        private_key_data=CANARY_TOKEN.encode(),
    )
    user = exec_user(tmp_path, dt.datetime.now(dt.UTC), mode="fail", secret=CANARY_PASSWORD)
    plugin = kubeconn.load(write(tmp_path / "exec", kubeconfig({"server": "https://k"}, user)))
    loaded = kubeconn.load(
        write(tmp_path / "token", kubeconfig({"server": "https://k"}, {"token": CANARY_TOKEN}))
    )
    for value in (connection, plugin, plugin.exec_plugin, loaded):
        assert CANARY_TOKEN not in repr(value)
        assert CANARY_PASSWORD not in repr(value)

    def load_text(name: str, text: str) -> Callable[[], object]:
        (tmp_path / name).write_text(text, encoding="utf-8")
        return lambda: kubeconn.load(str(tmp_path / name))

    def load_user(name: str, user: dict[str, Any], **options: str) -> Callable[[], object]:
        document = kubeconfig({"server": "https://k"}, user)
        return lambda: kubeconn.load(write(tmp_path / name, document), **options)

    def deleted_token_file() -> object:
        (tmp_path / "rotating").write_text(CANARY_TOKEN, encoding="utf-8")
        rotating = kubeconn.load(
            write(tmp_path / "tf", kubeconfig({"server": "https://k"}, {"tokenFile": "rotating"}))
        )
        (tmp_path / "rotating").unlink()
        return rotating.authorization_sync(refresh=True)

    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    failures = list(
        config_errors(
            plugin.authorization_sync,
            lambda: asyncio.run(plugin.authorization()),
            load_user("unknown", {"token": CANARY_TOKEN, "password": CANARY_PASSWORD}, context="x"),
            load_user("provider", {"auth-provider": {"config": {"access-token": CANARY_TOKEN}}}),
            load_user("b64", {"token": CANARY_TOKEN, "client-key-data": CANARY_PASSWORD + "!"}),
            load_text(
                "yaml", f"users:\n- name: u\n  user: {{token: {CANARY_TOKEN}: {CANARY_PASSWORD}}}\n"
            ),
            load_text("tab", f"users:\n\t- token: {CANARY_TOKEN}\n"),
            load_text(
                "scheme",
                yaml.safe_dump(
                    kubeconfig({"server": f"k8s://u:{CANARY_PASSWORD}@h"}, {"token": CANARY_TOKEN})
                ),
            ),
            deleted_token_file,
            lambda: kubeconn.load(service_account_dir=tmp_path),  # no port, no token
        )
    )
    assert len(failures) == 10
    for failure in failures:
        text = full_text(failure)
        assert CANARY_TOKEN not in text, text
        assert CANARY_PASSWORD not in text, text
