"""A small real HTTP server for vendor stand-ins: request log and fault injection.

A stand-in subclasses ``StandIn`` and implements ``handle(request) -> Response`` with the
vendor's wire format. Tests queue faults with ``inject(...)``; each fault is used for one
request, in order, before the vendor logic runs:

- ``Respond(status, body, headers)``: answer with exactly that (429 + Retry-After, 5xx,
  in-band failures);
- ``Delay(seconds)``: stall, then process normally (the client may have timed out by then:
  "accepted, but the answer was lost").

Every request is logged (``requests``) with its raw body, parsed form/files/JSON and the
status it got.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import Headers
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Headers
    body: bytes
    form: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, list[tuple[str, str, bytes]]] = field(default_factory=dict)  # name -> (filename, type, data)
    json: Any = None
    status: int | None = None  # None while still being handled
    fault: str | None = None


@dataclass
class Respond:
    status: int
    body: str | bytes | dict[str, Any] = ""
    headers: dict[str, str] = field(default_factory=dict)

    def __call__(self, request: Request) -> Response | None:
        if isinstance(self.body, dict):
            return Response(json.dumps(self.body), self.status, headers=self.headers, mimetype="application/json")
        return Response(self.body, self.status, headers=self.headers, mimetype="text/plain")


@dataclass
class Delay:
    seconds: float

    def __call__(self, request: Request) -> Response | None:
        time.sleep(self.seconds)
        return None


Fault = Callable[[Request], Response | None]


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:  # no access log (paths may hold test secrets)
        pass


class StandIn:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- vendor logic ---------------------------------------------------------------------
    def handle(self, request: Request, recorded: Recorded) -> Response:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- test API -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "stand-in not started"
        return f"http://127.0.0.1:{self._server.server_port}"

    def inject(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("stand-in: condition not reached in time")
            time.sleep(0.02)

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Until every logged request has been answered (slow faults included)."""
        self.wait_until(lambda: all(r.status is not None for r in self.requests), timeout)

    def start(self) -> StandIn:
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- plumbing ---------------------------------------------------------------------------
    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        length = environ.get("CONTENT_LENGTH")
        stream = environ["wsgi.input"]
        raw = stream.read(int(length)) if length else (stream.read() if environ.get("wsgi.input_terminated") else b"")
        environ["wsgi.input"] = io.BytesIO(raw)
        environ["CONTENT_LENGTH"] = str(len(raw))
        request = Request(environ)
        recorded = Recorded(method=request.method, path=request.path, query=request.args.to_dict(flat=False),
                            headers=Headers(request.headers), body=raw)
        if request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
            recorded.form = request.form.to_dict(flat=False)
            recorded.files = {name: [(f.filename or "", f.mimetype, f.read()) for f in request.files.getlist(name)]
                              for name in request.files}
        elif request.mimetype == "application/json":
            try:
                recorded.json = json.loads(raw)
            except ValueError:
                recorded.json = None
        with self._lock:
            self.requests.append(recorded)
            fault = self._faults.popleft() if self._faults else None
        response: Response | None = None
        if fault is not None:
            recorded.fault = type(fault).__name__
            response = fault(request)
        if response is None:
            try:
                response = self.handle(request, recorded)
            except Exception as exc:  # noqa: BLE001 - a stand-in bug must show up as a 500, not a hang
                response = Response(f"stand-in error: {exc!r}", 500, mimetype="text/plain")
        recorded.status = response.status_code
        return response(environ, start_response)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status, headers=headers or {}, mimetype="application/json")
