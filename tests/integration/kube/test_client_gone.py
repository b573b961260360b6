"""A client killed while it sends a request body (a SIGKILLed operator) is not a failure of
the server: nothing is created, nothing is logged as the stand-in's own error, the audit log
records the request. Found by the crash soak (tests/e2e/test_crash_soak.py)."""

from __future__ import annotations

import logging
import socket
import ssl
import time
from urllib.parse import urlparse

import pytest

from cpworker.sandbox.kube import KubeStandIn
from tests.integration.kube.helpers import wait_for


def test_a_body_cut_off_by_a_dying_client_is_refused_quietly(
    kube: KubeStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cpworker.sandbox")
    url = urlparse(kube.url)
    context = ssl.create_default_context(cafile=str(kube.ca_file))
    raw = socket.create_connection((url.hostname, url.port))
    with context.wrap_socket(raw, server_hostname=url.hostname) as connection:
        connection.sendall(
            (
                "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\n"
                f"Host: {url.netloc}\r\nAuthorization: Bearer {kube.token}\r\n"
                "Content-Type: application/json\r\nContent-Length: 4096\r\n\r\n"
                '{"metadata": {"name": "half'
            ).encode()
        )
        time.sleep(0.2)
        connection.shutdown(socket.SHUT_RDWR)  # gone before the body is complete
    wait_for(lambda: any(r.resource == "configmaps" for r in kube.audit()), what="audited")
    [record] = [r for r in kube.audit() if r.resource == "configmaps"]
    assert (record.verb, record.code) == ("create", 400)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
