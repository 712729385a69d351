"""One flow run in a forked child of the worker: Prefect and the flows are already imported.

The child runs the claimed deployment run through Prefect's own flow engine
(`prefect.flow_engine.run_flow`: task runs, retries, caching, hooks, logs all as usual),
ships its logs and events, and leaves with `os._exit` (no teardown of the inherited heap).
It sits in its own process group, so a Ctrl-C or SIGTERM meant for the worker does not hit
it (the worker drains), and it dies with the worker (PR_SET_PDEATHSIG), so a killed worker
never leaves a run executing that nobody watches.
"""

from __future__ import annotations

import copy
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
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


def fork_run(flow: Any, flow_run: Any) -> int:
    """Fork; in the parent return the child's pid, in the child run the flow and exit."""
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = ERROR
    try:
        os.setpgid(0, 0)
        if os.environ.get("ORDERPIPE_TRACEMALLOC"):
            import tracemalloc

            tracemalloc.stop()  # only the worker's own heap is traced
        _die_with_parent(parent)
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        code = _profiled(flow, flow_run) if os.environ.get("ORDERPIPE_PROFILE_DIR") else _run(flow, flow_run)
    except BaseException:  # noqa: BLE001 - whatever happened, leave with a code the worker reads
        logging.getLogger("orderpipe.worker").exception("flow run %s: executor error", flow_run.id)
    finally:
        _drain()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


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

    from orderpipe.bootstrap import process_services

    process_services.cache_clear()  # never a connector object of the parent's
    flow = _without_rename(flow, flow_run)
    with _run_settings():
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
