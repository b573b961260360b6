"""moto's server on loopback: the sandbox's S3 (and STS, IAM, KMS, SQS) endpoint."""

from __future__ import annotations

import logging
from types import TracebackType

from moto.server import ThreadedMotoServer


class MotoServer:
    """moto's threaded server on 127.0.0.1 and a free port. All moto services share one URL."""

    def __init__(self) -> None:
        self._server: ThreadedMotoServer | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the moto server is not started")
        return self._url

    def start(self) -> MotoServer:
        # werkzeug logs every request at INFO; the sandbox's own request log is the one to read.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        self._server, self._url = server, f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = self._url = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
