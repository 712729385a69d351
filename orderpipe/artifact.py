"""The per-order markdown artifact: the order's summary in the Prefect UI (no secrets)."""

from __future__ import annotations

import re
from typing import Any

from orderpipe.connectors.base import CrmResult, EmailResult, InvoiceResult, ShipmentResult
from orderpipe.money import to_decimal
from orderpipe.order import Order


def artifact_key(order_id: str) -> str:
    """Prefect keys allow [a-z0-9-]: order-pi_3ABC -> order-pi-3abc."""
    return re.sub(r"[^a-z0-9-]", "-", f"order-{order_id}".lower())


def _money(minor: int, currency: str) -> str:
    return f"{to_decimal(minor, currency)} {currency.upper()}"


def order_markdown(
    order: Order,
    *,
    steps: dict[str, str],
    crm: CrmResult | None,
    shipment: ShipmentResult | None,
    invoice: InvoiceResult | None,
    email: EmailResult | None,
    errors: dict[str, str],
    payment: dict[str, Any] | None = None,
) -> str:
    c = order.currency
    rows = [
        f"# Order `{order.order_id}`",
        "",
        f"**Customer:** {order.recipient_name or '-'} ({order.customer_email or 'no email'})"
        + (f", {order.business_name}" if order.business_name else ""),
        f"**Country:** {order.country or '-'} · **Currency:** {c.upper()} · **Language:** "
        f"{email.language if email else (order.locale or '-')}",
        "",
        "| line | qty | amount |",
        "|---|---:|---:|",
    ]
    for line in order.lines:
        rows.append(f"| {line.description} | {line.quantity} | {_money(line.amount_total, c)} |")
    rows += [
        f"| **total charged** | | **{_money(order.amount_total, c)}** |",
        "",
        f"**VAT:** {_money(invoice.amount_tax, c) if invoice else '-'}",
        f"**Tracking number:** {shipment.tracking_number if shipment else '-'}"
        + (f" ([track]({shipment.tracking_url}))" if shipment else ""),
        f"**Label:** {shipment.label.url or shipment.label.path if shipment else '-'}",
        f"**Invoice:** {invoice.invoice_number if invoice else '-'}"
        + (f" (`{_invoice_file(invoice)}`)" if invoice and _invoice_file(invoice) else ""),
        f"**CRM deal:** {crm.deal_id if crm else '-'}",
        f"**Email:** {email.transport + ' ' + (email.location or email.message_id) if email else '-'}",
        *(payment_markdown(payment, c) if payment is not None else []),
        "",
        "| step | state |",
        "|---|---|",
    ]
    for step, state in steps.items():
        rows.append(f"| {step} | {state}{' — ' + errors[step] if step in errors else ''} |")
    return "\n".join(rows) + "\n"


def _invoice_file(invoice: InvoiceResult) -> str | None:
    """The local path, else the file store key (results cached by older versions have no key)."""
    return invoice.pdf_path or getattr(invoice, "pdf_key", None)


def payment_markdown(payment: dict[str, Any], currency: str | None) -> list[str]:
    """The order's money after the sale: payment status, refunded amount, credit notes."""
    c = currency or ""
    refunded = payment.get("refunded_amount", 0)
    rows = [
        f"**Payment status:** {payment.get('payment_status', 'paid')}",
        f"**Refunded:** {_money(refunded, c) if c else refunded}",
    ]
    notes = payment.get("credit_notes") or []
    if notes:
        rows += ["", "| credit note | amount | refund |", "|---|---:|---|"]
        rows += [f"| {n['number']} | {_money(n['amount'], c) if c else n['amount']} | {n['refund_id']} |"
                 for n in notes]
    return rows


def order_status_markdown(row: Any, steps: dict[str, str], payment: dict[str, Any],
                          note: str | None = None) -> str:
    """The order's artifact rewritten after a refund, from the ledger (the order run's results
    are not at hand in the refund run): customer, amount, tracking, invoice, payment, steps."""
    c = row.currency or ""
    rows = [
        f"# Order `{row.order_id}`",
        "",
        f"**Customer:** {row.customer_email or '-'} · **Country:** {row.country or '-'} · **Currency:** "
        f"{c.upper() or '-'}",
        f"**Total charged:** {_money(row.amount_total, c) if row.amount_total is not None and c else '-'}",
        f"**State:** {row.state}",
        f"**Tracking number:** {row.tracking_number or '-'}",
        f"**Invoice:** {row.invoice_number or '-'}",
        *payment_markdown(payment, row.currency),
    ]
    if note:
        rows += ["", note]
    rows += ["", "| step | state |", "|---|---|", *(f"| {s} | {st} |" for s, st in steps.items())]
    return "\n".join(rows) + "\n"
