from __future__ import annotations

from prefect import task

from orderpipe.bootstrap import process_services
from orderpipe.order import Order
from orderpipe.states import Step
from tasks.step_policy import RETRY, log_outcome, step_task, tracked


@task(**step_task(Step.FETCH_ORDER, RETRY))  # type: ignore[call-overload]
def fetch_order(order_id: str) -> Order:
    """Read the order back from the Stripe API (never from the webhook body).

    Not cached: a replay re-reads Stripe, so a corrected email or address is picked up;
    the steps after it are cached by order and step."""
    svc = process_services()
    with tracked(svc, order_id, Step.FETCH_ORDER):
        order = svc.stripe.fetch_order(order_id)
    log_outcome(Step.FETCH_ORDER, order)
    return order
