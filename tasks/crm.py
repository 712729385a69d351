from __future__ import annotations

from prefect import task

from orderpipe.bootstrap import process_services
from orderpipe.connectors.base import CrmResult
from orderpipe.order import Order
from tasks.step_policy import CACHED_STEP, tracked


@task(name="crm", **CACHED_STEP)  # type: ignore[call-overload]
def crm(order: Order) -> CrmResult:
    """CRM contact (upsert by email) and the order's deal."""
    svc = process_services()
    with tracked(svc, order.order_id, "crm"):
        return svc.crm.record_order(order)
