"""What every HTTP vendor stand-in shares: a real server in a thread, a request log and fault injection.

A stand-in subclasses ``StandIn`` and implements ``handle(request, recorded) -> Response`` with
the vendor's wire format. Every request is logged (``requests``, ``calls(...)``) as a
``Recorded`` with its raw path and body, parsed query/form/files and the status it got.

Tests queue faults with ``inject(...)``; each is used once, by the first later request whose
path contains its ``path_contains`` (``""``: any request):

- ``Fault(status, body, headers, delay, then_process)``: answer with that status and a JSON body
  (a ``str`` body is sent as it is) after ``delay`` seconds; with ``then_process`` the request is
  processed normally first and the answer held back for ``delay`` ("did it, then timed out");
- ``Respond(status, body, headers)``: the same, but a ``str``/``bytes`` body is plain text;
- ``Delay(seconds)``: stall, then process normally (the client may have timed out by then:
  "accepted, but the answer was lost");
- ``Drop()``: process normally, then cut the connection without an answer ("accepted, then
  the connection dropped").
"""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

from werkzeug.datastructures import Headers
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


@dataclass
class Recorded:
    """One request as the stand-in received it."""

    method: str
    raw_path: str  # as sent on the wire, percent-encoding kept
    query: dict[str, str]  # first value of each name
    headers: Headers  # case-insensitive names
    body: bytes
    fields: dict[str, list[str]] = field(default_factory=dict)  # form fields (urlencoded or multipart), every value
    files: dict[str, list[tuple[str, str, bytes]]] = field(default_factory=dict)  # name -> (filename, type, data)
    status: int | None = None  # None while still being handled
    fault: str | None = None  # the injected fault's kind, if one was used

    @property
    def path(self) -> str:
        return unquote(self.raw_path)

    @property
    def mimetype(self) -> str:
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()

    def json(self) -> Any:
        return json.loads(self.body)

    def json_or_none(self) -> Any:
        """The body if it is declared JSON and parses, else None."""
        if self.mimetype != "application/json":
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def form(self) -> dict[str, str]:
        """The form fields, first value of each."""
        return {k: v[0] for k, v in self.fields.items() if v}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    text = body if isinstance(body, str) else json.dumps(body, default=_number)
    return Response(text, status=status, headers=headers or {}, content_type="application/json;charset=UTF-8")


def _number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(type(value).__name__)


@dataclass
class Fault:
    """An injected answer. ``delay`` sleeps before answering; with ``then_process`` the request
    is processed normally first (the vendor did the work, the client never hears it)."""

    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    then_process: bool = False
    path_contains: str = ""

    def apply(self, standin: StandIn, request: Request, recorded: Recorded) -> Response:
        if self.then_process:
            response = standin.process(request, recorded)
            standin.pause(self.delay)
            return response
        standin.pause(self.delay)
        return self.response()

    def response(self) -> Response:
        return json_response(self.body if self.body is not None else "", self.status, self.headers)


@dataclass
class Respond(Fault):
    """Answer with exactly this status, body and headers: a dict body is JSON, anything else plain text."""

    status: int
    body: str | bytes | dict[str, Any] = ""

    def response(self) -> Response:
        if isinstance(self.body, dict):
            return json_response(self.body, self.status, self.headers)
        return Response(self.body, self.status, headers=self.headers, mimetype="text/plain")


@dataclass
class Delay:
    """Stall, then process normally."""

    seconds: float
    path_contains: str = ""

    def apply(self, standin: StandIn, request: Request, recorded: Recorded) -> Response:
        standin.pause(self.seconds)
        return standin.process(request, recorded)


@dataclass
class Drop:
    """Process the request normally (the vendor did the work), then cut the connection
    without answering: "accepted, then the connection dropped"."""

    path_contains: str = ""

    def apply(self, standin: StandIn, request: Request, recorded: Recorded) -> Response:
        standin.process(request, recorded)
        sock = request.environ.get("werkzeug.socket")
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        raise _Dropped()


class _Dropped(Exception):
    """Raised out of the WSGI app after the socket was cut: nothing more is written."""


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:  # no access log (paths may hold test secrets)
        pass


class StandIn:
    """Base: subclasses implement ``handle(request, recorded) -> Response``."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._faults: deque[Fault | Delay | Drop] = deque()
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # ---- vendor logic ---------------------------------------------------------------------------
    def handle(self, request: Request, recorded: Recorded) -> Response:  # pragma: no cover - abstract
        raise NotImplementedError

    # ---- lifecycle ------------------------------------------------------------------------------
    def start(self) -> StandIn:
        self._stopping.clear()
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
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

    @property
    def url(self) -> str:
        assert self._server is not None, "stand-in not started"
        return f"http://127.0.0.1:{self._server.server_port}"

    # ---- fault injection and log ----------------------------------------------------------------
    def inject(self, *faults: Fault | Delay | Drop) -> None:
        with self._lock:
            self._faults.extend(faults)

    def calls(self, method: str | None = None, path_contains: str = "") -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests
                    if (method is None or r.method == method) and path_contains in r.path]

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("stand-in: condition not reached in time")
            time.sleep(0.02)

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Until every logged request has been answered (slow faults included)."""
        self.wait_until(lambda: all(r.status is not None for r in self.requests), timeout)

    def pause(self, seconds: float) -> None:
        """Sleep, cut short when the stand-in stops."""
        self._stopping.wait(seconds)

    def process(self, request: Request, recorded: Recorded) -> Response:
        try:
            return self.handle(request, recorded)
        except Exception as exc:  # noqa: BLE001 - a stand-in bug must show up as a 500, not a hang
            return Response(f"stand-in error: {exc!r}", 500, mimetype="text/plain")

    def _take_fault(self, path: str) -> Fault | Delay | Drop | None:
        with self._lock:
            for fault in self._faults:
                if fault.path_contains in path:
                    self._faults.remove(fault)
                    return fault
        return None

    # ---- WSGI -----------------------------------------------------------------------------------
    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        length = environ.get("CONTENT_LENGTH")
        stream = environ["wsgi.input"]
        raw = stream.read(int(length)) if length else (stream.read() if environ.get("wsgi.input_terminated") else b"")
        environ["wsgi.input"] = io.BytesIO(raw)
        environ["CONTENT_LENGTH"] = str(len(raw))
        request = Request(environ)
        raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.full_path
        recorded = Recorded(method=request.method, raw_path=raw_uri.split("?", 1)[0], query=request.args.to_dict(),
                            headers=Headers(request.headers), body=raw)
        if request.mimetype in FORM_TYPES:
            recorded.fields = request.form.to_dict(flat=False)
            recorded.files = {name: [(f.filename or "", f.mimetype, f.read()) for f in request.files.getlist(name)]
                              for name in request.files}
        with self._lock:
            self.requests.append(recorded)
        fault = self._take_fault(recorded.path)
        if fault is None:
            response = self.process(request, recorded)
        else:
            recorded.fault = type(fault).__name__
            try:
                response = fault.apply(self, request, recorded)
            except _Dropped:
                recorded.status = 0  # no answer was ever sent
                raise
        recorded.status = response.status_code
        return response(environ, start_response)
