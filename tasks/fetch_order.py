from __future__ import annotations

from prefect import task

from orderpipe.bootstrap import process_services
from orderpipe.order import Order
from tasks.step_policy import RETRY, tracked


@task(name="fetch_order", **RETRY)  # type: ignore[call-overload]
def fetch_order(order_id: str) -> Order:
    """Read the order back from the Stripe API (never from the webhook body).

    Not cached: a replay re-reads Stripe, so a corrected email or address is picked up;
    the steps after it are cached by order and step."""
    svc = process_services()
    with tracked(svc, order_id, "fetch_order"):
        return svc.stripe.fetch_order(order_id)
