"""The order's story in the Prefect UI, as plain text: task run names, the one-line business
outcome each step logs, and what a person can do when a step failed.

Pure functions over the step results (no Prefect, no I/O), so the wording is unit-tested.
Nothing here may carry a secret, a webhook body or personal data: only ids, numbers,
amounts, countries, languages and file store keys. The lines end up in the flow runs' logs,
and Prefect has no API to delete a log line (``orderpipe forget``, orderpipe/retention.py).
"""

from __future__ import annotations

from typing import Any

from orderpipe.connectors.base import CrmResult, EmailResult, InvoiceResult, ProductionLogResult, ShipmentResult
from orderpipe.money import to_decimal
from orderpipe.order import Order
from orderpipe.states import Step

RUN_NAME_SEPARATOR = " · "


def order_id_of(parameters: dict[str, Any]) -> str:
    """The order a task run works on, from its parameters (an Order, an order id, an Alert, a payload)."""
    for name in ("order", "alert", "payload"):
        value = parameters.get(name)
        found = value.get("order_id") if isinstance(value, dict) else getattr(value, "order_id", None)
        if found:
            return str(found)
    return str(parameters.get("order_id") or "?")


def task_run_name(step: str, parameters: dict[str, Any]) -> str:
    """``crm · pi_3Abc...``: the step, then the order (searchable in the UI)."""
    return f"{step}{RUN_NAME_SEPARATOR}{order_id_of(parameters)}"


def step_of_task_run_name(name: str) -> str:
    """The step of a task run named by ``task_run_name``."""
    return name.split(RUN_NAME_SEPARATOR, 1)[0]


def money(minor: int, currency: str) -> str:
    return f"{to_decimal(minor, currency)} {currency.upper()}"


def _again(created: bool) -> str:
    return "" if created else " (already there: nothing new created)"


def outcome_line(step: str, result: Any, order: Order | None = None) -> str:
    """One line: what the step did for the business (logged as ``<step>: <line>``), e.g.
    ``2026-000001 issued 2026-11-23: total 87.35 EUR, VAT 17.76 EUR`` for the invoice. Ids,
    never the customer's name, email or address (``order`` is accepted for the callers)."""
    if isinstance(result, Order):
        return (f"order {result.order_id} read back from Stripe: {len(result.lines)} line(s), "
                f"{money(result.amount_total, result.currency)}, country {result.country or '-'}, "
                f"language {result.locale or '-'}")
    if isinstance(result, CrmResult):
        return f"deal {result.deal_id} for contact {result.contact_id}{_again(result.created)}"
    if isinstance(result, ProductionLogResult):
        return f"record {result.entry_id}{_again(result.created)}"
    if isinstance(result, ShipmentResult):
        return (f"booked with {result.carrier}: tracking number {result.tracking_number}, "
                f"label {result.label.key}{_again(result.created)}")
    if isinstance(result, InvoiceResult):
        return (f"{result.invoice_number} issued {result.issue_date}: total "
                f"{money(result.amount_total, result.currency)}, VAT {money(result.amount_tax, result.currency)}"
                + (f", {result.pdf_key}" if result.pdf_key else "") + _again(result.created))
    if isinstance(result, EmailResult):
        # Never the address: this line is in the run's logs, which Prefect cannot delete (forget).
        return (f"confirmation sent to the customer in language {result.language} via {result.transport}, "
                f"message id {result.message_id}{_again(result.created)}")
    return f"{step} done"


_WHAT_TO_CHECK = {
    Step.FETCH_ORDER: "check that the PaymentIntent exists in Stripe (same mode, test or live) and that "
                      "STRIPE_API_KEY may read it (`orderpipe check`)",
    Step.CRM: "check the customer's email in Stripe and the CRM connector (`orderpipe check`)",
    Step.PRODUCTION_LOG: "check the production log connector (`orderpipe check`)",
    Step.SHIPMENT: "check the shipping address in Stripe (Checkout Session or PaymentIntent) and the shipping "
                   "connector (`orderpipe check`)",
    Step.INVOICE: "check the seller settings (ORDERPIPE_SELLER_*), the buyer's VAT id and the invoicing "
                  "connector (`orderpipe check`)",
    Step.EMAIL: "check the customer's email address in Stripe and the email connector (`orderpipe check`)",
}


def failure_hint(step: str, order_id: str, *, permanent: bool) -> str:
    """What a person can do about a failed step (the run is already alerted on)."""
    check = _WHAT_TO_CHECK.get(step, "check the step's connector (`orderpipe check`)")  # type: ignore[call-overload]
    cause = ("retrying cannot fix this: " if permanent
             else "the service kept failing through every retry (is it down?): ")
    return (f"{cause}{check}; then `orderpipe replay {order_id}` — completed steps are skipped, "
            "nothing is done twice")


def failure_line(step: str, order_id: str, error: str, *, permanent: bool) -> str:
    hint = failure_hint(step, order_id, permanent=permanent)
    return f"{step} failed for order {order_id}: {error}. What to do: {hint}"
