"""What the Zoho and Airtable stand-ins share: a real HTTP server in a thread, a request log
and fault injection (status + body + headers, slow answers, "did it, then timed out")."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response


@dataclass
class Recorded:
    """One request as the stand-in received it."""

    method: str
    raw_path: str  # as sent on the wire, percent-encoding kept
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def path(self) -> str:
        return unquote(self.raw_path)

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}


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


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    text = body if isinstance(body, str) else json.dumps(body, default=_number)
    return Response(text, status=status, headers=headers or {}, content_type="application/json;charset=UTF-8")


def _number(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(type(value).__name__)


class StandIn:
    """Base: subclasses implement ``handle(request, recorded) -> Response``."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle --------------------------------------------------------------------------
    def start(self) -> StandIn:
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        server = self._server
        self._thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05),
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

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "stand-in not started"
        return f"http://127.0.0.1:{self._server.server_port}"

    # ---- fault injection and log --------------------------------------------------------
    def inject(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def calls(self, method: str | None = None, path_contains: str = "") -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests
                    if (method is None or r.method == method) and path_contains in r.path]

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path_contains in path:
                    self._faults.remove(fault)
                    return fault
        return None

    # ---- WSGI -------------------------------------------------------------------------------
    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.full_path
        raw_path = raw_uri.split("?", 1)[0]
        recorded = Recorded(
            method=request.method,
            raw_path=raw_path,
            query={k: v for k, v in request.args.items()},
            headers={k.lower(): v for k, v in request.headers.items()},
            body=request.get_data(),
        )
        with self._lock:
            self.requests.append(recorded)
        fault = self._take_fault(recorded.path)
        if fault is None:
            response = self.handle(request, recorded)
        elif fault.then_process:
            response = self.handle(request, recorded)
            self._stopping.wait(fault.delay)
        else:
            self._stopping.wait(fault.delay)
            response = json_response(fault.body if fault.body is not None else "", fault.status, fault.headers)
        return response(environ, start_response)

    def handle(self, request: Request, recorded: Recorded) -> Response:  # pragma: no cover - abstract
        raise NotImplementedError
