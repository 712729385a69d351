from __future__ import annotations

from prefect import task

from orderpipe.bootstrap import process_services
from orderpipe.connectors.base import ShipmentResult
from orderpipe.order import Order
from orderpipe.states import Step
from tasks.step_policy import CACHED_STEP, log_outcome, step_task, tracked


@task(**step_task(Step.SHIPMENT, CACHED_STEP))  # type: ignore[call-overload]
def shipment(order: Order) -> ShipmentResult:
    """Book the shipment and store its PDF label."""
    svc = process_services()
    with tracked(svc, order.order_id, Step.SHIPMENT):
        result = svc.shipping.create_shipment(order)
    log_outcome(Step.SHIPMENT, result)
    return result
