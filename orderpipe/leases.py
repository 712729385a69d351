"""Run leases: which worker process executes which flow run, kept fresh by a heartbeat.

A worker writes the lease *before* it claims the run in Prefect (Pending) and refreshes
the heartbeat of all its leases every few seconds while their child processes live. A lease
whose heartbeat is older than the lease time belongs to a worker that is gone (killed,
machine lost, frozen): any worker's watchdog may take it over with a compare-and-set on
the heartbeat, so exactly one of them re-drives the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, select, update
from sqlmodel import Session

from orderpipe.db import aware, insert_ignore, reader, session_scope
from orderpipe.tables import RunLease, utcnow


@dataclass(frozen=True)
class Lease:
    flow_run_id: str
    order_id: str | None
    worker: str
    heartbeat_at: datetime


def acquire(engine: Engine, flow_run_id: str, worker: str, order_id: str | None, stale_after: float) -> bool:
    """Take the lease for a run about to be claimed: new, already ours, or stale. True if ours now."""
    now = utcnow()
    with session_scope(engine) as s:
        if insert_ignore(s, RunLease, dict(flow_run_id=flow_run_id, order_id=order_id, worker=worker,
                                           claimed_at=now, heartbeat_at=now)):
            return True
        taken = s.execute(
            update(RunLease).where(RunLease.flow_run_id == flow_run_id)
            .where((RunLease.worker == worker) | (RunLease.heartbeat_at < now - timedelta(seconds=stale_after)))
            .values(worker=worker, order_id=order_id, claimed_at=now, heartbeat_at=now, pid=None)
        )
        return bool(taken.rowcount)


def set_pid(engine: Engine, flow_run_id: str, pid: int) -> None:
    with session_scope(engine) as s:
        s.execute(update(RunLease).where(RunLease.flow_run_id == flow_run_id).values(pid=pid))


def heartbeat(engine: Engine, worker: str, flow_run_ids: list[str]) -> int:
    """Refresh this worker's leases of live runs; returns how many are still ours."""
    if not flow_run_ids:
        return 0
    with session_scope(engine) as s:
        result = s.execute(
            update(RunLease).where(RunLease.worker == worker)
            .where(RunLease.flow_run_id.in_(flow_run_ids))  # type: ignore[attr-defined]
            .values(heartbeat_at=utcnow())
        )
        return int(result.rowcount or 0)


def release(engine: Engine, flow_run_id: str, worker: str | None = None) -> None:
    with session_scope(engine) as s:
        q = delete(RunLease).where(RunLease.flow_run_id == flow_run_id)
        if worker is not None:
            q = q.where(RunLease.worker == worker)
        s.execute(q)


def take_over(engine: Engine, lease: Lease | None, flow_run_id: str, worker: str, order_id: str | None) -> bool:
    """Compare-and-set: take a stale lease (or a run without one) for recovery. True if won."""
    now = utcnow()
    with session_scope(engine) as s:
        if lease is None:
            return insert_ignore(s, RunLease, dict(flow_run_id=flow_run_id, order_id=order_id, worker=worker,
                                                   claimed_at=now, heartbeat_at=now))
        won = s.execute(
            update(RunLease).where(RunLease.flow_run_id == flow_run_id)
            .where(RunLease.worker == lease.worker).where(RunLease.heartbeat_at == lease.heartbeat_at)
            .values(worker=worker, heartbeat_at=now, claimed_at=now, pid=None)
        )
        return bool(won.rowcount)


def all_leases(engine: Engine) -> dict[str, Lease]:
    with Session(reader(engine)) as s:
        rows = s.scalars(select(RunLease)).all()
        return {r.flow_run_id: Lease(r.flow_run_id, r.order_id, r.worker, r.heartbeat_at) for r in rows}


def is_stale(lease: Lease, stale_after: float, now: datetime | None = None) -> bool:
    now = now or utcnow()
    beat = aware(lease.heartbeat_at)
    assert beat is not None
    return beat < now - timedelta(seconds=stale_after)
