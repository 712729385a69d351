from __future__ import annotations

from prefect import task

from orderpipe.bootstrap import process_services
from orderpipe.connectors.base import ProductionLogResult
from orderpipe.order import Order
from tasks.step_policy import CACHED_STEP, RETRY, tracked


@task(name="production_log", **CACHED_STEP)  # type: ignore[call-overload]
def production_log(order: Order) -> ProductionLogResult:
    """The order's production log entry."""
    svc = process_services()
    with tracked(svc, order.order_id, "production_log"):
        return svc.production_log.record_order(order)


@task(name="production_log_status", **RETRY)  # type: ignore[call-overload]
def production_log_status(order_id: str, status: str) -> None:
    """Write the completed steps into the entry's status field (idempotent update)."""
    process_services().production_log.update_status(order_id, status)
