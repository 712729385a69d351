"""Starts the flow run of every pending order: the receiver only records, this starts.

One Prefect flow run per order: the order id is the idempotency key (unique per flow on
the server) and the run name. If Prefect is unreachable the order stays pending with a
backoff; nothing is lost. The receiver touches a wake file so a new order starts at once;
otherwise the ledger is polled every `poll_seconds`.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from uuid import UUID

from sqlalchemy import Engine

from orderpipe import ledger

DEPLOYMENT = "process-order/orderpipe"
log = logging.getLogger("orderpipe.dispatcher")


def wake_file(data_dir: Path) -> Path:
    return data_dir / "dispatch.wake"


def wake(data_dir: Path) -> None:
    """Called by the receiver after it accepted an order."""
    try:
        wake_file(data_dir).touch()
    except OSError:  # the poll picks the order up anyway
        pass


class Dispatcher:
    def __init__(self, engine: Engine, data_dir: Path, *, deployment: str = DEPLOYMENT,
                 poll_seconds: float = 2.0) -> None:
        self.engine = engine
        self.data_dir = data_dir
        self.deployment = deployment
        self.poll_seconds = poll_seconds
        self._deployment_id: UUID | None = None

    def _deployment_uuid(self, client: object) -> UUID:
        if self._deployment_id is None:
            self._deployment_id = client.read_deployment_by_name(self.deployment).id  # type: ignore[attr-defined]
        return self._deployment_id

    def start(self, order_id: str) -> str | None:
        """Create (or find, by idempotency key) the order's flow run; returns its id."""
        from prefect.client.orchestration import get_client

        try:
            with get_client(sync_client=True) as client:
                run = client.create_flow_run_from_deployment(
                    self._deployment_uuid(client), parameters={"order_id": order_id}, idempotency_key=order_id,
                    name=f"order-{order_id}", tags=["orderpipe"],
                )
        except Exception as exc:  # noqa: BLE001 - Prefect down or refusing: keep pending, back off
            self._deployment_id = None
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            log.warning("order %s not started yet (%s); will retry", order_id, reason)
            ledger.mark_dispatch_failed(self.engine, order_id, reason)
            return None
        ledger.mark_dispatched(self.engine, order_id, str(run.id))
        log.info("order %s -> flow run %s", order_id, run.id)
        return str(run.id)

    def dispatch_once(self, limit: int = 50) -> list[str]:
        started = []
        for order_id in ledger.due_for_dispatch(self.engine, limit=limit):
            if self.start(order_id):
                started.append(order_id)
        return started

    def run_forever(self, stop: threading.Event) -> None:
        wf = wake_file(self.data_dir)
        last_mtime = -1.0
        waited = self.poll_seconds
        while not stop.is_set():
            try:
                mtime = wf.stat().st_mtime
            except OSError:
                mtime = 0.0
            if mtime != last_mtime or waited >= self.poll_seconds:
                last_mtime, waited = mtime, 0.0
                try:
                    self.dispatch_once()
                except Exception as exc:  # noqa: BLE001 - database blip: try again next round
                    log.error("dispatch round failed: %s", str(exc).splitlines()[0] if str(exc) else exc)
            stop.wait(0.1)
            waited += 0.1
