"""The refund flow's steps: one Prefect task each, the order steps' retry and cache policy,
cached per refund and step (``<task>-refund-<re id>``), never colliding with an order's keys.

``credit_note`` waits for the order's invoice: a refund of an order still in flight gets
``NotInvoicedYet`` (transient) and is retried with a growing delay, about 10 minutes in
all (longer than any order run takes); after that the refund run fails with one ops alert
and reconciliation retries it (the cache skips what was done).
"""

from __future__ import annotations

import logging
from typing import Any

from prefect import task
from pydantic import BaseModel

from orderpipe.bootstrap import process_services
from orderpipe.connectors.base import CreditNoteResult, EmailResult
from orderpipe.email.credit_note import render_credit_note_email
from orderpipe.errors import OrderDataError, PermanentError
from orderpipe.order import Order
from orderpipe.orders import ledger, refund_ledger
from tasks.step_policy import CACHED_STEP, RETRY

log = logging.getLogger("orderpipe.refunds")
# Seconds between the credit note's attempts while the order has no invoice yet (~10 min).
INVOICE_WAIT_DELAYS = [2, 5, 10, 20, 40, 60, 90, 120, 120, 120]


class RefundInfo(BaseModel):
    """A refund (or lost dispute) as read back from Stripe."""

    refund_id: str
    kind: str  # refund | dispute
    order_id: str | None
    amount: int
    currency: str
    status: str  # refund: succeeded|pending|requires_action|failed|canceled; dispute: its status
    reason: str | None = None


def refund_step_key(ctx: Any, params: dict[str, Any]) -> str:
    """Cache key: step name + refund id (an order's keys are ``<step>-order-<pi id>``)."""
    info = params.get("info")
    refund_id = info.refund_id if info is not None else params["refund_id"]
    return f"{ctx.task.name}-refund-{refund_id}"


REFUND_STEP = dict(CACHED_STEP, cache_key_fn=refund_step_key)


@task(name="fetch_refund", **RETRY)  # type: ignore[call-overload]
def fetch_refund(refund_id: str) -> RefundInfo:
    """Read the refund (or dispute) back from Stripe: the event body is never trusted."""
    svc = process_services()
    if refund_id.startswith("du_"):
        obj = svc.stripe.fetch_dispute(refund_id)
        kind = "dispute"
    else:
        obj = svc.stripe.fetch_refund(refund_id)
        kind = "refund"
    pi = obj.get("payment_intent")
    info = RefundInfo(refund_id=refund_id, kind=kind, order_id=pi.get("id") if isinstance(pi, dict) else pi,
                      amount=int(obj["amount"]), currency=str(obj["currency"]).lower(), status=str(obj["status"]),
                      reason=obj.get("reason"))
    refund_ledger.set_refund(svc.engine, refund_id, order_id=info.order_id, amount=info.amount,
                             currency=info.currency, stripe_status=info.status)
    return info


@task(name="refund_order", **RETRY)  # type: ignore[call-overload]
def refund_order(order_id: str) -> Order:
    """The refunded order as Stripe has it (customer, language) — read, not tracked as an order step."""
    return process_services().stripe.fetch_order(order_id)


class OrderNeverInvoiced(PermanentError):
    """The order ended without an invoice (cancelled): there is nothing to credit."""


@task(name="credit_note", **dict(REFUND_STEP, retries=len(INVOICE_WAIT_DELAYS),  # type: ignore[call-overload]
                                 retry_delay_seconds=INVOICE_WAIT_DELAYS))
def credit_note(info: RefundInfo, language: str) -> CreditNoteResult | None:
    """The credit note for the refund (local UBL CreditNote + PDF; Netvisor: a credit invoice).

    None when the order was cancelled before it was invoiced (nothing to credit)."""
    svc = process_services()
    assert info.order_id
    row = ledger.get_order(svc.engine, info.order_id)
    if row is not None and row.state == "cancelled" and not row.invoice_number:
        return None
    return svc.invoicing.issue_credit_note(info.order_id, info.refund_id, info.amount,  # type: ignore[attr-defined]
                                           language=language)


@task(name="crm_refund", **REFUND_STEP)  # type: ignore[call-overload]
def crm_refund(info: RefundInfo, payment_status: str, refunded_amount: int) -> bool:
    """The CRM deal's stage after the refund (idempotent)."""
    svc = process_services()
    update = getattr(svc.crm, "record_refund", None)
    if update is None:
        log.warning("CRM %s cannot update deals for refunds; deal of %s left as it is", svc.crm.name, info.order_id)
        return False
    return bool(update(info.order_id, payment_status, refunded_amount))


@task(name="production_log_refund", **RETRY)  # type: ignore[call-overload]
def production_log_refund(order_id: str, status: str) -> None:
    """The production log entry's status after the refund (idempotent update)."""
    process_services().production_log.update_status(order_id, status)


@task(name="email_credit_note", **REFUND_STEP)  # type: ignore[call-overload]
def email_credit_note(info: RefundInfo, order: Order, cn: CreditNoteResult) -> EmailResult:
    """The customer's credit note email in the order's language, the credit note PDF attached.

    Sent once per refund: every transport is idempotent on the id it sends for (the refund id)."""
    svc = process_services()
    if not order.customer_email:
        raise OrderDataError(f"order {order.order_id} has no customer email: credit note {cn.number} not emailed")
    rendered = render_credit_note_email(order, cn, sender=svc.settings.orderpipe_email_from,
                                        seller_name=svc.seller.name, reply_to=svc.seller.email, files=svc.files)
    per_refund = order.model_copy(update={"order_id": info.refund_id})
    return svc.email.send(per_refund, rendered.message, language=rendered.language, variables=rendered.variables)
