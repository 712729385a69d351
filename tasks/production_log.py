from __future__ import annotations

from prefect import task

from orderpipe.bootstrap import process_services
from orderpipe.connectors.base import ProductionLogResult
from orderpipe.order import Order
from orderpipe.states import Step
from tasks.step_policy import CACHED_STEP, RETRY, log_outcome, run_name, step_task, tracked


@task(**step_task(Step.PRODUCTION_LOG, CACHED_STEP))  # type: ignore[call-overload]
def production_log(order: Order) -> ProductionLogResult:
    """The order's production log entry."""
    svc = process_services()
    with tracked(svc, order.order_id, Step.PRODUCTION_LOG):
        result = svc.production_log.record_order(order)
    log_outcome(Step.PRODUCTION_LOG, result)
    return result


@task(name="production_log_status", task_run_name=run_name("production_log_status"), **RETRY)  # type: ignore[call-overload]
def production_log_status(order_id: str, status: str) -> None:
    """Write the completed steps into the entry's status field (idempotent update)."""
    process_services().production_log.update_status(order_id, status)
