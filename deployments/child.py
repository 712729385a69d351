"""The worker's run processes: forked children, Prefect and the flows already imported.

A run process executes one claimed deployment run at a time through Prefect's own flow
engine (`prefect.flow_engine.run_flow`: task runs, retries, caching, hooks, logs all as
usual). The worker sends it the run over a socket pair; it answers the run's exit code and
CPU-seconds, then waits for the next one, up to `ORDERPIPE_RUNS_PER_PROCESS` runs (50 on
Postgres, 1 on SQLite), after which the worker retires it (closes the socket; it ships its logs and events and
leaves with `os._exit`, no teardown of the inherited heap). A run that crashed or broke the
executor ends its process too, so the next run gets a fresh one; an idle process leaves
after 5 minutes. Across its runs a process keeps one Prefect client and its connection, one
database pool, its connectors and SQLAlchemy's statement cache: what a process per run paid
again each time (README "The runtime").

Each process sits in its own process group, so a Ctrl-C or SIGTERM meant for the worker
does not hit it (the worker drains), and dies with the worker (PR_SET_PDEATHSIG), so a
killed worker never leaves a run executing that nobody watches. A run's crash, hang or
cancellation kills only the process executing it, never a run elsewhere.
"""

from __future__ import annotations

import copy
import ctypes
import logging
import os
import resource
import signal
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

# exit codes the worker reads
COMPLETED, ENDED, CRASHED, ERROR = 0, 1, 2, 70
PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the lease watchdog still recovers the run
        pass
    if os.getppid() != parent:  # the worker died before prctl took effect
        os._exit(CRASHED)


@dataclass
class Slot:
    """A forked run process as the worker sees it: it executes one run at a time, sent over
    ``conn``, answers ``(exit code, CPU-s)`` for each, and serves up to the worker's
    ``ORDERPIPE_RUNS_PER_PROCESS`` runs before it is retired."""

    pid: int
    conn: Connection
    runs: int = 0
    idle_since: float = field(default_factory=time.monotonic)


def spawn_slot(inherited: list[Connection]) -> Slot:
    """Fork a run process; in the parent return its Slot, in the child serve runs and exit.

    ``inherited``: the worker's ends of its other slots, closed in the child (otherwise a
    slot would never see the worker close its socket)."""
    parent = os.getpid()
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid:
        theirs.close()
        return Slot(pid, Connection(ours.detach()))
    code = ERROR
    try:
        ours.close()
        for other in inherited:
            try:
                os.close(other.fileno())
            except OSError:
                pass
        os.setpgid(0, 0)
        if os.environ.get("ORDERPIPE_TRACEMALLOC"):
            import tracemalloc

            tracemalloc.stop()  # only the worker's own heap is traced
        _die_with_parent(parent)
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        code = _serve(Connection(theirs.detach()))
    except BaseException:  # noqa: BLE001 - whatever happened, leave with a code the worker reads
        logging.getLogger("orderpipe.worker").exception("run process %d: executor error", os.getpid())
    finally:
        _drain()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _serve(conn: Connection) -> int:
    """Run what the worker sends, one at a time, until it closes the socket. One Prefect
    client (its connection), one database pool, one set of connectors and SQLAlchemy's
    statement cache serve every run of this process. After a run that crashed or broke
    the executor the process leaves: the next run gets a fresh one."""
    from prefect.client.schemas.objects import FlowRun
    from prefect.context import SyncClientContext

    from deployments.definitions import FLOWS
    from orderpipe.bootstrap import process_services

    process_services.cache_clear()  # never a connector object of the parent's
    profiled = bool(os.environ.get("ORDERPIPE_PROFILE_DIR"))
    with _run_settings(), SyncClientContext.get_or_create():
        while True:
            try:
                flow_name, flow_run_json = conn.recv()
            except (EOFError, OSError):
                return COMPLETED  # the worker retired this process (or is gone)
            before = _cpu()
            flow_run = FlowRun.model_validate_json(flow_run_json)
            try:
                flow = FLOWS[flow_name]
                code = _profiled(flow, flow_run) if profiled else _run(flow, flow_run)
            except BaseException:  # noqa: BLE001 - reported as the run's outcome; the process leaves
                logging.getLogger("orderpipe.worker").exception("flow run %s: executor error", flow_run.id)
                code = ERROR
            try:
                conn.send((code, _cpu() - before))
            except OSError:
                return code
            if code not in (COMPLETED, ENDED):
                return code


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return usage.ru_utime + usage.ru_stime


def _profiled(flow: Any, flow_run: Any) -> int:
    """`ORDERPIPE_PROFILE_DIR=...`: each child writes a cProfile of its run there
    (`<flow run id>.prof`; read with `python -m pstats`). README "Speed"."""
    import cProfile

    profile = cProfile.Profile()
    try:
        return profile.runcall(_run, flow, flow_run)
    finally:
        profile.dump_stats(os.path.join(os.environ["ORDERPIPE_PROFILE_DIR"], f"{flow_run.id}.prof"))


def _run(flow: Any, flow_run: Any) -> int:
    from prefect.flow_engine import run_flow

    flow = _without_rename(flow, flow_run)
    state = run_flow(flow, flow_run=flow_run, parameters=flow_run.parameters or {}, return_type="state")
    if state.is_completed():
        return COMPLETED
    if state.is_crashed():
        return CRASHED
    return ENDED


@contextmanager
def _run_settings() -> Iterator[None]:
    """Prefect settings of a run, derived without re-reading the environment:

    - the usual client back-off (6 retries; the worker's own loop uses 1, it must stay
      responsive), so a run rides out a Prefect restart;
    - no flow-run heartbeat events: the worker's lease does that job (README "The runtime").
      They cost an event every 180 s per run and, worse, the engine joins its heartbeat
      thread at the end of every run, which sleeps in 1 s steps: about 0.5 s more per order."""
    import prefect.context

    ctx = prefect.context.get_settings_context()
    base, derived = _PREPARED or (None, None)
    settings = derived if base is ctx.settings else _derive(ctx.settings)
    with prefect.context.SettingsContext(profile=ctx.profile, settings=settings):
        yield


_PREPARED: list[Any] = []  # [the worker's settings, the runs' settings derived from them]


def _derive(current: Any) -> Any:
    return current.model_copy(update={
        "client": current.client.model_copy(update={"max_retries": 6}),
        "flows": current.flows.model_copy(update={"heartbeat_frequency": None}),
    })


def prepare() -> None:
    """Derive the runs' settings once, in the worker before it forks (a few ms per child)."""
    import prefect.context

    current = prefect.context.get_settings_context().settings
    _PREPARED[:] = [current, _derive(current)]


def _without_rename(flow: Any, flow_run: Any) -> Any:
    """The dispatcher names runs at creation (`order-<pi id>`); when the run already has the
    name the flow's template gives, skip the engine's rename request."""
    template = getattr(flow, "flow_run_name", None)
    if not isinstance(template, str):
        return flow
    try:
        wanted = template.format(**(flow_run.parameters or {}))
    except (KeyError, IndexError, ValueError):
        return flow
    if wanted != flow_run.name:
        return flow
    plain = copy.copy(flow)
    plain.flow_run_name = None
    return plain


def _drain() -> None:
    try:
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)
        EventsWorker.drain_all(timeout=5)
    except Exception:  # noqa: BLE001 - logs are best effort once the run's state is recorded
        pass
