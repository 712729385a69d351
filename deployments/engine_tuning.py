"""Changes to how Prefect's flow engine behaves inside `orderpipe worker`'s forked runs.

Both were found with py-spy on the worker during a 100-order burst (`--subprocesses`), both
apply only to processes the worker forks (it calls `apply()` once before the first fork),
and both touch Prefect internals, so they are checked: `apply()` returns what it changed and
the worker logs it; if Prefect moves these names, nothing is patched and runs behave as stock.

1. **One TLS context per process instead of one per client.** Every Prefect client a run
   builds (the engine's, the events and logs workers', the suspension observer's) creates a
   new `ssl.SSLContext` and reads the whole CA bundle into it, about 20 ms of CPU each, also
   for a plain-http API. The contexts are identical for identical arguments and an
   SSLContext may be shared by many connections, so `prefect.client.orchestration` gets one
   per set of arguments, built once in the worker and inherited by every fork.
2. **No suspension observer.** For every deployment run the engine starts a thread with its
   own event loop, a new client and a websocket subscription to the server's event stream,
   and waits until it is subscribed before the flow starts, only to notice a person pausing
   or suspending the run from the UI. The server then streams every event of every run to
   each of these subscribers. orderpipe's runs are never paused or suspended (cancel one
   instead: the worker stops it), so the observer is replaced by a no-op.
3. **No routine "Finished in state Completed()" task log lines** (see `_NoRoutineTaskEnd`).
"""

from __future__ import annotations

import logging
import ssl
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class _SharedContextSSL(types.ModuleType):
    """The `ssl` module as Prefect's client module sees it, with memoised default contexts."""

    def __init__(self) -> None:
        super().__init__("ssl")
        self._contexts: dict[tuple[Any, ...], ssl.SSLContext] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(ssl, name)

    def create_default_context(self, purpose: Any = ssl.Purpose.SERVER_AUTH, *, cafile: Any = None,
                               capath: Any = None, cadata: Any = None) -> ssl.SSLContext:
        key = (purpose, cafile, capath, cadata)
        if key not in self._contexts:
            self._contexts[key] = ssl.create_default_context(purpose, cafile=cafile, capath=capath, cadata=cadata)
        return self._contexts[key]


class _NoRoutineTaskEnd(logging.Filter):
    """Drops the task engine's "Finished in state Completed()" line: each step logs its
    business outcome instead (one line, orderpipe/audit.py), and the run's Logs tab then reads
    as the order's story. Every other line (failures, retries, Cached) is kept. Seven log
    rows fewer per order for the server to store."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith("Finished in state Completed("))


@contextmanager
def _no_suspension_observer(*_args: Any, **_kwargs: Any) -> Iterator[None]:
    yield


def apply() -> list[str]:
    """Patch this process (and its future forks); returns what was changed."""
    changed: list[str] = []
    import prefect.client.orchestration as orchestration
    import prefect.flow_engine as flow_engine

    if getattr(orchestration, "ssl", None) is ssl:
        shared = _SharedContextSSL()
        orchestration.ssl = shared  # type: ignore[attr-defined]
        import certifi
        from prefect.settings import PREFECT_API_SSL_CERT_FILE

        # the one every client asks for (the same expression as Prefect's client: the setting
        # follows SSL_CERT_FILE, which many machines set to the system bundle)
        shared.create_default_context(cafile=PREFECT_API_SSL_CERT_FILE.value() or certifi.where())
        changed.append("shared TLS context for Prefect clients")
    task_runs = logging.getLogger("prefect.task_runs")
    if not any(isinstance(f, _NoRoutineTaskEnd) for f in task_runs.filters):
        task_runs.addFilter(_NoRoutineTaskEnd())
        changed.append("no routine 'Finished in state Completed()' task log lines")
    if hasattr(flow_engine, "observe_flow_run_suspension"):
        flow_engine.observe_flow_run_suspension = _no_suspension_observer  # type: ignore[assignment]
        changed.append("no flow-run suspension observer")
    return changed
