"""S3 stand-ins: moto's real S3 server in a thread, and a tiny server answering S3 XML errors.

``MotoS3`` speaks the real S3 wire protocol (SigV4, path-style PUT/HEAD/GET, presigned
URLs). ``S3ErrorStandIn`` answers every request with one S3 ``<Error>`` document, for the
error classification (SlowDown, AccessDenied, NoSuchBucket) moto cannot be asked to produce.
"""

from __future__ import annotations

import httpx
from moto.server import ThreadedMotoServer
from werkzeug.wrappers import Request, Response

from tests.conftest import free_port
from tests.standins.wsgi_thread import Recorded, StandIn


class MotoS3:
    def __init__(self) -> None:
        self.port = free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoS3:
        self._server.start()
        return self

    def stop(self) -> None:
        try:
            # moto keeps its backends per process: leave nothing behind for the next test.
            httpx.post(f"{self.url}/moto-api/reset", timeout=5)
        finally:
            self._server.stop()

    def __enter__(self) -> MotoS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class S3ErrorStandIn(StandIn):
    """Every request gets ``status`` with an S3 XML error ``code``."""

    def __init__(self, code: str, status: int, message: str = "stand-in error") -> None:
        super().__init__()
        self.code, self.status, self.message = code, status, message

    def handle(self, request: Request, recorded: Recorded) -> Response:
        if request.method == "HEAD":
            return Response(status=self.status)
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{self.code}</Code>"
                f"<Message>{self.message}</Message><RequestId>REQ1</RequestId></Error>")
        return Response(body, status=self.status, content_type="application/xml")
