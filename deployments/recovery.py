"""Re-driving a flow run whose execution was interrupted, and noticing runs nobody executes.

Whatever interrupted it (its process killed, its worker or machine lost, the worker's drain
deadline), the run is marked Crashed with the reason and put straight back to
AwaitingRetry: the same flow run, so its idempotency key, history and UI page stay, and the
per-order task cache skips every step that had completed. After MAX_ATTEMPTS executions
the run stays Crashed, the order is failed and a person is alerted once.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from orderpipe import leases
from orderpipe.alerting import alerts
from orderpipe.connectors.base import Alert, AlertSink
from orderpipe.orders import ledger

MAX_ATTEMPTS = 4
log = logging.getLogger("orderpipe.recovery")


@dataclass
class Recovery:
    engine: Engine
    client: Any
    sink: Any  # a callable returning the AlertSink (built on first use)

    def recover(self, flow_run_id: str, reason: str) -> str:
        """Crashed + AwaitingRetry (or give up); returns what was done. The caller holds the lease."""
        from prefect.client.schemas.objects import StateType
        from prefect.states import Cancelled, Crashed, Scheduled

        run = self.client.read_flow_run(flow_run_id)
        order_id = (run.parameters or {}).get("order_id")
        state = run.state_type
        outcome: str
        if state is not None and state in (StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED,
                                           StateType.SCHEDULED):
            outcome = f"already {state.value.lower()}"
        elif state == StateType.CANCELLING:
            self.client.set_flow_run_state(run.id, Cancelled(message=f"cancelled; {reason}"), force=True)
            if order_id:
                ledger.set_order_state(self.engine, order_id, "failed", last_error=f"run cancelled ({reason})")
            outcome = "cancelled"
        else:
            if state != StateType.CRASHED:
                self.client.set_flow_run_state(run.id, Crashed(message=reason), force=True)
            if run.run_count >= MAX_ATTEMPTS:
                self._give_up(run.name, order_id, reason, run.run_count)
                outcome = "given up"
            else:
                self.client.set_flow_run_state(
                    run.id, Scheduled(name="AwaitingRetry", message=f"orderpipe re-drives it: {reason}"), force=True)
                outcome = "re-driven"
        leases.release(self.engine, flow_run_id)
        log.warning("flow run %s (%s): %s -> %s", run.name, flow_run_id, reason, outcome)
        return outcome

    def _give_up(self, run_name: str, order_id: str | None, reason: str, attempts: int) -> None:
        message = (f"run {run_name} was interrupted {attempts} times (last: {reason}); it is left Crashed. "
                   "Check the worker logs, then retry it from the Prefect UI or with `orderpipe replay`.")
        if order_id:
            ledger.set_order_state(self.engine, order_id, "failed", last_error=message)
        alert = Alert(order_id=order_id, step="run", kind="run_abandoned", message=message,
                      dedupe_key=f"run_abandoned:{order_id or run_name}", occurred_at=datetime.now(UTC))
        sink: AlertSink = self.sink()
        alerts.raise_alert(self.engine, sink, alert)


def default_worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def dead_local_worker(name: str) -> bool:
    """A worker of this machine (default name `<host>-<pid>`) whose process is gone: its leases
    are void at once, so a restarted worker re-drives its predecessor's runs without waiting
    for the lease time. Other names (another machine, ORDERPIPE_WORKER_NAME) wait for the lease."""
    host, _, pid = name.rpartition("-")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def active_runs(client: Any, pool: str) -> list[Any]:
    """Runs of the pool that some executor should be holding: Pending, Running, Cancelling."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        WorkPoolFilter,
        WorkPoolFilterName,
    )
    from prefect.client.schemas.objects import StateType

    return list(client.read_flow_runs(
        flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(
            any_=[StateType.PENDING, StateType.RUNNING, StateType.CANCELLING]))),
        work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool])), limit=200,
    ))


def orphans(active: list[Any], engine: Engine, mine: set[str], stale_after: float) -> list[tuple[Any, Any]]:
    """(run, lease) for the active runs that no live worker holds (their lease stopped beating)."""
    held = leases.all_leases(engine)
    now = datetime.now(UTC)
    out = []
    for run in active:
        rid = str(run.id)
        if rid in mine:
            continue
        lease = held.get(rid)
        if lease is not None and not (leases.is_stale(lease, stale_after, now) or dead_local_worker(lease.worker)):
            continue
        since = run.state.timestamp if run.state is not None else None
        if lease is None and since is not None and since > now - timedelta(seconds=stale_after):
            continue  # claimed by an executor that holds no lease (not orderpipe's): give it time
        out.append((run, lease))
    active_ids = {str(r.id) for r in active}
    for rid, lease in held.items():  # leases left by a worker that died after its run ended
        if rid not in active_ids and rid not in mine and leases.is_stale(lease, stale_after, now):
            leases.release(engine, rid, lease.worker)
    return out
