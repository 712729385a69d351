from __future__ import annotations

from prefect import task

from orderpipe.bootstrap import process_services
from orderpipe.connectors.base import EmailResult, InvoiceResult, ShipmentResult
from orderpipe.email.render import render_confirmation
from orderpipe.order import Order
from orderpipe.states import Step
from tasks.step_policy import CACHED_STEP, log_outcome, step_task, tracked


@task(**step_task(Step.EMAIL, CACHED_STEP))  # type: ignore[call-overload]
def email(order: Order, shipment: ShipmentResult, invoice: InvoiceResult) -> EmailResult:
    """The confirmation email in the customer's language, invoice attached."""
    svc = process_services()
    with tracked(svc, order.order_id, Step.EMAIL):
        rendered = render_confirmation(
            order, shipment, invoice, sender=svc.settings.orderpipe_email_from, seller_name=svc.seller.name,
            reply_to=svc.seller.email, files=svc.files,
        )
        result = svc.email.send(order, rendered.message, language=rendered.language, variables=rendered.variables)
    log_outcome(Step.EMAIL, result, order)
    return result
