"""The per-order markdown artifact: the order's summary in the Prefect UI (no secrets)."""

from __future__ import annotations

import re

from orderpipe.connectors.base import CrmResult, EmailResult, InvoiceResult, ShipmentResult
from orderpipe.money import to_decimal
from orderpipe.order import Order


def artifact_key(order_id: str) -> str:
    """Prefect keys allow [a-z0-9-]: order-pi_3ABC -> order-pi-3abc."""
    return re.sub(r"[^a-z0-9-]", "-", f"order-{order_id}".lower())


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def md(text: object) -> str:
    """Customer- and shop-supplied text as literal markdown: no links, images, HTML or
    table breaks; newlines become spaces (a table cell is one line)."""
    value = " ".join(str(text).split())
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", value)


def _url(value: str | None) -> str | None:
    """A link target only when it is a plain http(s) URL (percent-encoding what would end it)."""
    if not value or not re.match(r"https?://", value):
        return None
    return value.replace(" ", "%20").replace("(", "%28").replace(")", "%29").replace("<", "%3C").replace(">", "%3E")


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
) -> str:
    c = order.currency
    rows = [
        f"# Order `{order.order_id}`",
        "",
        f"**Customer:** {md(order.recipient_name or '-')} ({md(order.customer_email or 'no email')})"
        + (f", {md(order.business_name)}" if order.business_name else ""),
        f"**Country:** {order.country or '-'} · **Currency:** {c.upper()} · **Language:** "
        f"{email.language if email else (order.locale or '-')}",
        "",
        "| line | qty | amount |",
        "|---|---:|---:|",
    ]
    for line in order.lines:
        rows.append(f"| {md(line.description)} | {line.quantity} | {_money(line.amount_total, c)} |")
    rows += [
        f"| **total charged** | | **{_money(order.amount_total, c)}** |",
        "",
        f"**VAT:** {_money(invoice.amount_tax, c) if invoice else '-'}",
        f"**Tracking number:** {md(shipment.tracking_number) if shipment else '-'}"
        + (f" ([track]({_url(shipment.tracking_url)}))" if shipment and _url(shipment.tracking_url) else ""),
        f"**Label:** {shipment.label.url or shipment.label.path if shipment else '-'}",
        f"**Invoice:** {invoice.invoice_number if invoice else '-'}"
        + (f" (`{_invoice_file(invoice)}`)" if invoice and _invoice_file(invoice) else ""),
        f"**CRM deal:** {crm.deal_id if crm else '-'}",
        f"**Email:** {email.transport + ' ' + (email.location or email.message_id) if email else '-'}",
        "",
        "| step | state |",
        "|---|---|",
    ]
    for step, state in steps.items():
        rows.append(f"| {step} | {state}{' — ' + md(errors[step]) if step in errors else ''} |")
    return "\n".join(rows) + "\n"


def _invoice_file(invoice: InvoiceResult) -> str | None:
    """The local path, else the file store key (results cached by older versions have no key)."""
    return invoice.pdf_path or getattr(invoice, "pdf_key", None)
