from __future__ import annotations

from prefect import task

from orderpipe.bootstrap import process_services
from orderpipe.connectors.base import InvoiceResult
from orderpipe.order import Order
from orderpipe.states import Step
from tasks.step_policy import CACHED_STEP, log_outcome, step_task, tracked


@task(**step_task(Step.INVOICE, CACHED_STEP))  # type: ignore[call-overload]
def invoice(order: Order) -> InvoiceResult:
    """Issue the VAT invoice (gapless number, PDF, UBL)."""
    svc = process_services()
    with tracked(svc, order.order_id, Step.INVOICE):
        result = svc.invoicing.create_invoice(order)
    log_outcome(Step.INVOICE, result)
    return result
