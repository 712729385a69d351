from __future__ import annotations

from prefect import task

from orderpipe.bootstrap import process_services
from orderpipe.connectors.base import CrmResult
from orderpipe.order import Order
from orderpipe.states import Step
from tasks.step_policy import CACHED_STEP, log_outcome, step_task, tracked


@task(**step_task(Step.CRM, CACHED_STEP))  # type: ignore[call-overload]
def crm(order: Order) -> CrmResult:
    """CRM contact (upsert by email) and the order's deal."""
    svc = process_services()
    with tracked(svc, order.order_id, Step.CRM):
        result = svc.crm.record_order(order)
    log_outcome(Step.CRM, result)
    return result
