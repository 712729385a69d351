"""`orderpipe worker`: executes orderpipe's flow runs from its Prefect work pool, a fork per run.

One long-lived parent with Prefect and the flows imported (about 1.4 CPU-s saved per run
against an interpreter per run). Its single-threaded loop:

- polls the work pool for Scheduled runs (`ORDERPIPE_POLL_SECONDS`, and at once after the
  dispatcher started one), writes a lease, claims each run (Pending, refused if another
  worker got it) and hands it to an idle run process, a forked child that runs it through
  Prefect's flow engine and then waits for the next (deployments/child.py; a new one is
  forked when none is idle), at most `ORDERPIPE_RUN_LIMIT` runs at a time;
- dispatches pending orders from the ledger (woken by Postgres NOTIFY or the SQLite wake
  file), so every worker machine also starts orders;
- delivers the alerts outbox (rows the receiver or a step recorded), once each, with backoff;
- reads each run's answer from its process; a process that died without answering gets
  its run re-driven (deployments/recovery.py);
- kills the process of a run cancelled in Prefect (state Cancelling);
- sends the pool a worker heartbeat, so the UI lists the worker;
- sweeps for runs whose worker vanished (their lease stopped beating) and re-drives them.

A helper thread only refreshes this worker's leases in the database, so a slow Prefect
call never makes live runs look abandoned. SIGTERM/SIGINT: claim nothing new, let running
runs finish for up to `ORDERPIPE_DRAIN_SECONDS`, re-drive what is left, exit 0.
"""

from __future__ import annotations

import gc
import logging
import os
import select
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from orderpipe import leases
from orderpipe.settings import Settings

log = logging.getLogger("orderpipe.worker")
DISPATCH_EVERY = 2.0
WATCH_EVERY = 2.0
FULL_COLLECT_EVERY = 100  # children reaped between full collections of the worker's own heap
POOL_HEARTBEAT_EVERY = 30.0
IDLE_PROCESS_SECONDS = 300.0  # an idle run process older than this leaves (its connections with it)


@dataclass
class Child:
    pid: int
    flow_run_id: str
    name: str
    started: float
    cancelled: bool = False


@dataclass
class Worker:
    settings: Settings
    limit: int = 0
    name: str = ""
    children: dict[int, Child] = field(default_factory=dict)
    stopping: bool = False
    _due: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = self.settings
        self.limit = self.limit or s.orderpipe_run_limit
        from deployments.recovery import default_worker_name

        self.name = self.name or s.orderpipe_worker_name or default_worker_name()
        self.pool = s.orderpipe_work_pool
        self.lease_seconds = s.orderpipe_lease_seconds
        self._flows: dict[Any, Any] = {}
        self.slots: dict[int, Any] = {}  # pid -> deployments.child.Slot, busy or idle
        self.idle: list[int] = []  # pids of slots waiting for a run, most recently used last
        self.runs_per_process = self.settings.runs_per_process
        self._sink: Any = None
        self._reaped = 0
        self._memory_base: Any = None
        if os.environ.get("ORDERPIPE_TRACEMALLOC"):
            import tracemalloc

            tracemalloc.start(12)

    # ---- lifecycle -------------------------------------------------------------------
    def run(self) -> int:
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

        from deployments import engine_tuning
        from deployments.child import prepare as prepare_children
        from deployments.definitions import apply_all
        from orderpipe.alerting.alerts import Outbox
        from orderpipe.bootstrap import preset_settings
        from orderpipe.db import get_engine, make_engine, migrate
        from orderpipe.orders.dispatcher import Dispatcher
        from orderpipe.orders.wakeup import Listener
        from orderpipe.rate_limits import ensure_rate_limits
        from orderpipe.result_storage import configure_result_storage, warm_result_storage
        from orderpipe.warmup import warm

        s = self.settings
        migrate(s.db_url)
        self.engine = get_engine(s.db_url)
        ensure_rate_limits(s.orderpipe_rate_limits)
        configure_result_storage(s)  # before the first fork: children inherit the decision
        warm_result_storage()
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGCHLD, lambda *_a: None)
        listener = Listener(self.engine, s.data_dir)
        beat_stop = threading.Event()
        beat = threading.Thread(target=self._lease_heartbeats, args=(make_engine(s.db_url), beat_stop),
                                name="lease-heartbeat", daemon=True)
        # Few client retries in the loop: a Prefect that is away must not freeze reaping,
        # cancellation or shutdown; each duty simply tries again on its next turn.
        with temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: 1}), get_client(sync_client=True) as client:
            from deployments.recovery import Recovery

            self.client = client
            self._flows = apply_all(s, client)
            self._warm_child_caches()
            preset_settings(s)
            log.info("engine tuning for forked runs: %s", ", ".join(engine_tuning.apply()) or "none applied")
            prepare_children()
            warm(s)
            self.recovery = Recovery(self.engine, client, self._alert_sink)
            self.dispatcher = Dispatcher(self.engine, client=client, alert_sink=self._alert_sink)
            self.outbox = Outbox(self.engine, self._alert_sink())
            beat.start()
            log.info("worker %s: pool %s, limit %d, poll %.2fs", self.name, self.pool, self.limit,
                     s.orderpipe_poll_seconds)
            try:
                self._loop(listener, wake_r)
            finally:
                self._shutdown()
                beat_stop.set()
                beat.join(timeout=5)
                listener.close()
        log.info("worker %s stopped", self.name)
        return 0

    def _on_stop(self, signum: int, _frame: object) -> None:
        if not self.stopping:
            log.info("worker %s: %s, draining %d run(s) (at most %.0f s)", self.name, signal.Signals(signum).name,
                     len(self.children), self.settings.orderpipe_drain_seconds)
        self.stopping = True

    def _loop(self, listener: Any, wake_r: int) -> None:
        poll_every = self.settings.orderpipe_poll_seconds
        drain_deadline: float | None = None
        poll_now = True
        while True:
            now = time.monotonic()
            poll_now = self._reap() or poll_now  # a slot just freed: fill it now, not at the next tick
            if self.stopping:
                self._retire_idle(0)
                drain_deadline = drain_deadline or now + self.settings.orderpipe_drain_seconds
                if not self.children or now >= drain_deadline:
                    return
            else:
                if listener.poll() or self._is_due("dispatch", DISPATCH_EVERY, now):
                    self._due["dispatch"] = now + DISPATCH_EVERY
                    poll_now = self._duty("dispatch", self.dispatcher.dispatch_once) or poll_now
                    self._duty("alerts", self.outbox.deliver_pending)
                if self.idle and self._is_due("retire", IDLE_PROCESS_SECONDS / 4, now):
                    self._retire_idle(IDLE_PROCESS_SECONDS)
                if self._is_due("pool-heartbeat", POOL_HEARTBEAT_EVERY, now):
                    self._duty("pool heartbeat", self._pool_heartbeat)
                if len(self.children) < self.limit and (poll_now or self._is_due("poll", poll_every, now)):
                    poll_now = False
                    self._due["poll"] = now + poll_every
                    self._duty("poll", self._claim_and_fork)
            watch_every = WATCH_EVERY if self.children else self.lease_seconds / 3  # idle: the sweep alone
            if (self.children or not self.stopping) and self._is_due("watch", watch_every, now):
                self._duty("watch", self._watch)
            if poll_now and len(self.children) < self.limit:
                continue
            timeout = self._sleep_time(poll_every)
            fds = [wake_r] + ([listener.fileno()] if listener.fileno() is not None else [])
            fds += [self.slots[pid].conn.fileno() for pid in self.children if pid in self.slots]
            try:
                ready, _, _ = select.select(fds, [], [], timeout)
            except InterruptedError:
                ready = []
            if wake_r in ready:
                try:
                    while os.read(wake_r, 512):
                        pass
                except BlockingIOError:
                    pass

    def _sleep_time(self, poll_every: float) -> float:
        """Until the next duty that can act now (no busy loop while full or idle)."""
        if self.stopping:
            return 0.2
        duties = ["dispatch", "pool-heartbeat", "watch"]
        if len(self.children) < self.limit:
            duties.append("poll")
        due = min((self._due[d] for d in duties if d in self._due), default=0.0)
        return min(poll_every, max(0.01, due - time.monotonic()))

    def _is_due(self, duty: str, every: float, now: float) -> bool:
        due = self._due.get(duty)
        if due is None or now >= due:
            self._due[duty] = now + every
            return True
        return False

    def _duty(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - Prefect or the database away: next turn tries again
            text = str(exc).splitlines()[0] if str(exc) else ""
            log.warning("worker %s: %s failed: %s: %s", self.name, what, type(exc).__name__, text)
            return None

    # ---- executing runs --------------------------------------------------------------
    def _claim_and_fork(self) -> bool:
        from prefect.client.schemas.responses import WorkerFlowRunResponse
        from prefect.states import Pending

        free = self.limit - len(self.children)
        response = self.client.request(
            "POST", "/work_pools/{name}/get_scheduled_flow_runs", path_params={"name": self.pool},
            json={"scheduled_before": (datetime.now(UTC) + timedelta(seconds=1)).isoformat(), "limit": free},
        )
        forked = False
        for item in WorkerFlowRunResponse.model_validate_list(response.json())[:free]:
            fr = item.flow_run
            rid = str(fr.id)
            flow = self._flow_for(fr)
            if flow is None:
                continue
            order_id = (fr.parameters or {}).get("order_id")
            if not leases.acquire(self.engine, rid, self.name, order_id, self.lease_seconds):
                continue
            result = self.client.set_flow_run_state(fr.id, Pending(), force=False)
            if result.status.value != "ACCEPT":  # another worker claimed it first
                leases.release(self.engine, rid, self.name)
                continue
            fr.state = result.state
            try:
                pid = self._send_run(flow.name, fr.model_dump_json())
            except Exception as exc:  # noqa: BLE001 - no process took it: put it back at once
                self._duty("recovery", lambda r=rid, e=exc: self.recovery.recover(
                    r, f"worker {self.name} could not start a run process: {type(e).__name__}: {e}"))
                continue
            self.children[pid] = Child(pid, rid, fr.name, time.monotonic())
            self._duty("lease pid", lambda r=rid, p=pid: leases.set_pid(self.engine, r, p))
            forked = True
        return forked

    def _send_run(self, flow_name: str, flow_run: str) -> int:
        """Hand the run to an idle run process (a new one when none is idle); its pid."""
        while True:
            fresh = not self.idle
            slot = self._spawn() if fresh else self.slots[self.idle.pop()]
            try:
                slot.conn.send((flow_name, flow_run))
            except OSError:  # it died (an idle one: try the next; the reaper collects it)
                self._retire(slot)
                if fresh:
                    raise
                continue
            slot.runs += 1
            return int(slot.pid)

    def _spawn(self) -> Any:
        from deployments.child import spawn_slot

        gc.freeze()  # the child's collector leaves the inherited heap alone: fewer copied pages
        slot = spawn_slot([other.conn for other in self.slots.values()])
        # Only the child needs the heap frozen. Left frozen here, whatever cyclic garbage
        # the worker held at each fork would never be collected (measured: +31 MiB over
        # 1,000 orders, `make bench-soak`).
        gc.unfreeze()
        self.slots[slot.pid] = slot
        return slot

    def _retire(self, slot: Any) -> None:
        """Close the worker's end: an idle run process then leaves (its logs shipped)."""
        if slot.pid in self.idle:
            self.idle.remove(slot.pid)
        try:
            slot.conn.close()
        except OSError:
            pass

    def _retire_idle(self, older_than: float) -> None:
        now = time.monotonic()
        for pid in list(self.idle):
            slot = self.slots[pid]
            if now - slot.idle_since >= older_than:
                self._retire(slot)

    def _warm_child_caches(self) -> None:
        """Read once here what every run's engine would read again (its events name the run's
        flow, deployment, work queue and pool): forked children inherit Prefect's cache of it."""
        from prefect.events.related import RESOURCE_CACHE
        from prefect.types._datetime import now

        def put(kind: str, key: object, obj: object) -> None:
            RESOURCE_CACHE[f"{kind}.{key}"] = ({"kind": kind, "object": obj}, now("UTC"))  # type: ignore[assignment]

        try:
            pool = self.client.read_work_pool(self.pool)
            put("work-pool", self.pool, pool)
            if pool.default_queue_id:
                put("work-queue", pool.default_queue_id, self.client.read_work_queue(pool.default_queue_id))
            for dep_id in self._flows:
                dep = self.client.read_deployment(dep_id)
                put("deployment", dep_id, dep)
                put("flow", dep.flow_id, self.client.read_flow(dep.flow_id))
        except Exception as exc:  # noqa: BLE001 - only an optimisation: children read what they miss
            log.warning("could not pre-read run resources: %s", exc)

    def _flow_for(self, flow_run: Any) -> Any:
        flow = self._flows.get(flow_run.deployment_id)
        if flow is None and flow_run.deployment_id is not None:
            from deployments.definitions import FLOWS

            dep = self.client.read_deployment(flow_run.deployment_id)
            flow = FLOWS.get(self.client.read_flow(dep.flow_id).name)
            self._flows[flow_run.deployment_id] = flow
            if flow is None:
                log.error("run %s: deployment %s is not one of orderpipe's flows; left for another executor",
                          flow_run.name, dep.name)
        return flow

    def _reap(self) -> bool:
        """Collect finished runs (answers of run processes) and dead run processes; True when
        at least one run ended."""
        ended = False
        for pid in [p for p in self.children if p in self.slots]:
            ended = self._read_answer(self.slots[pid]) or ended
        while self.slots:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            slot = self.slots.pop(pid, None)
            if slot is not None and pid in self.children:
                ended = self._read_answer(slot) or ended  # it may have answered, then left
            if slot is not None:
                self._retire(slot)
            child = self.children.pop(pid, None)
            if child is None:
                continue  # a retired process left
            ended = True
            code = os.waitstatus_to_exitcode(status)
            self._ended(child, code, usage.ru_utime + usage.ru_stime, exited=True)
        return ended

    def _read_answer(self, slot: Any) -> bool:
        from deployments.child import COMPLETED, ENDED

        try:
            if not slot.conn.poll():
                return False
            code, cpu = slot.conn.recv()
        except (EOFError, OSError):
            return False  # it died: the wait reaps it as a crash
        child = self.children.pop(slot.pid, None)
        if child is None:
            return False
        self._ended(child, code, cpu, exited=False)
        if code in (COMPLETED, ENDED) and slot.runs < self.runs_per_process and not self.stopping:
            slot.idle_since = time.monotonic()
            self.idle.append(slot.pid)
        else:
            self._retire(slot)
        return True

    def _ended(self, child: Child, code: int, cpu: float, *, exited: bool) -> None:
        from deployments.child import COMPLETED, ENDED

        self._reaped += 1
        if self._reaped % FULL_COLLECT_EVERY == 0:
            gc.collect()  # a full collection now and then keeps the long-lived worker's heap flat
            self._trace_memory()
        log.info("%s: exit %d after %.2f s, %.3f CPU-s%s", child.name, code, time.monotonic() - child.started, cpu,
                 "" if exited else f" (run process {child.pid})")
        if child.cancelled or code in (COMPLETED, ENDED):
            self._duty("lease release", lambda c=child: leases.release(self.engine, c.flow_run_id, self.name))
            return
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        self._duty("recovery", lambda c=child, h=how: self.recovery.recover(
            c.flow_run_id, f"its process on worker {self.name} {h}"))

    def _trace_memory(self) -> None:
        """`ORDERPIPE_TRACEMALLOC=1`: log where the worker's own heap grew since its first run
        (a diagnostic for `make bench-soak`; the forked runs do not trace)."""
        import tracemalloc

        if not tracemalloc.is_tracing():
            return
        now = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        if self._memory_base is None:
            self._memory_base = now
            return
        top = now.compare_to(self._memory_base, "traceback")[:8]
        log.info("worker heap after %d runs, growth since run %d:\n%s", self._reaped, FULL_COLLECT_EVERY,
                 "\n".join(f"{d.size_diff / 1024:+.0f} KiB {d.count_diff:+d} blocks\n    "
                           + "\n    ".join(d.traceback.format()[-6:]) for d in top))

    def _watch(self) -> None:
        """One read of the pool's active runs: stop cancelled children; now and then, re-drive
        runs whose worker is gone."""
        from prefect.client.schemas.objects import StateType

        from deployments.recovery import active_runs, orphans

        active = active_runs(self.client, self.pool)
        by_run = {c.flow_run_id: c for c in self.children.values() if not c.cancelled}
        for run in active:
            child = by_run.get(str(run.id))
            if child is not None and run.state_type == StateType.CANCELLING:
                child.cancelled = True
                try:
                    os.kill(child.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.recovery.recover(child.flow_run_id, f"cancel requested in Prefect; process on {self.name} stopped")
        now = time.monotonic()
        if self.stopping or not self._is_due("sweep", self.lease_seconds / 3 - WATCH_EVERY / 2, now):
            return
        mine = {c.flow_run_id for c in self.children.values()}
        for run, lease in orphans(active, self.engine, mine, self.lease_seconds):
            order_id = (run.parameters or {}).get("order_id")
            if leases.take_over(self.engine, lease, str(run.id), self.name, order_id):
                who = f"worker {lease.worker}" if lease else "its executor"
                self.recovery.recover(str(run.id), f"{who} stopped heartbeating (run was {run.state_name})")

    # ---- keeping the pool honest ----------------------------------------------------
    def _pool_heartbeat(self) -> None:
        self.client.send_worker_heartbeat(self.pool, self.name, heartbeat_interval_seconds=POOL_HEARTBEAT_EVERY)

    def _lease_heartbeats(self, engine: Any, stop: threading.Event) -> None:
        every = max(1.0, self.lease_seconds / 6)
        while not stop.wait(every):
            ids = [c.flow_run_id for c in list(self.children.values())]
            try:
                leases.heartbeat(engine, self.name, ids)
            except Exception as exc:  # noqa: BLE001 - database away: the next beat tries again
                log.warning("lease heartbeat failed: %s", str(exc).splitlines()[0] if str(exc) else exc)
        engine.dispose()

    def _alert_sink(self) -> Any:
        if self._sink is None:
            from orderpipe.bootstrap import build_alert_sink

            self._sink = build_alert_sink(self.settings)
        return self._sink

    def _shutdown(self) -> None:
        """Drain deadline passed (or the loop failed): stop what still runs and re-drive it;
        idle run processes leave on their own once their socket closes."""
        for pid in list(self.idle):
            self._retire(self.slots[pid])
        left = list(self.children.values())
        for child in left:
            try:
                os.kill(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for child in left:
            try:
                os.waitpid(child.pid, 0)
            except ChildProcessError:
                pass
            self.children.pop(child.pid, None)
            self.slots.pop(child.pid, None)
            self._duty("recovery", lambda c=child: self.recovery.recover(
                c.flow_run_id, f"worker {self.name} stopped before the run finished (drain deadline)"))
        deadline = time.monotonic() + 10  # idle ones ship their last logs and leave
        for pid in list(self.slots):
            while time.monotonic() < deadline:
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if done:
                    break
                time.sleep(0.05)
            self.slots.pop(pid, None)


def main() -> None:
    from orderpipe.settings import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    raise SystemExit(Worker(load_settings()).run())


if __name__ == "__main__":
    main()
