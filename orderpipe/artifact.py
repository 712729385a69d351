"""The per-order artifacts: the order's summary (markdown, with links to the label and the
invoice) and its steps (a table with times and outcomes) in the Prefect UI (no secrets).

Personal data in them: the summary's ``**Customer:**`` line (name, email, business name),
a VAT note naming the buyer's VAT id, and (runs before the outcome lines became id-only) the
steps table's email outcome "confirmation sent to <email>". ``redact_artifact_data`` takes
them out of a stored version for ``orderpipe forget`` / ``purge``, leaving the rest.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orderpipe.connectors.base import CrmResult, EmailResult, FileStore, InvoiceResult, ShipmentResult
from orderpipe.errors import StepError
from orderpipe.money import to_decimal
from orderpipe.order import Order
from orderpipe.states import STEPS


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


def steps_table_key(order_id: str) -> str:
    """Key of the order's steps table: order-pi-3abc-steps."""
    return artifact_key(order_id) + "-steps"


def file_link(files: FileStore, key: str) -> str | None:
    """Where a person opens a stored file: the store's URL (S3: presigned, 7 days) or local
    path; None when the store cannot say (the artifact then shows the key)."""
    try:
        return files.link(key)
    except (StepError, OSError, AttributeError) as exc:
        logging.getLogger("orderpipe.artifact").warning("no link for %s: %s", key, exc)
        return None


def _link(text: str, where: str | None) -> str:
    """A markdown link for a URL; a local path as code (browsers do not open file:// from the UI)."""
    if not where:
        return f"`{text}`"
    url = _url(where)
    if url:
        return f"[{text}]({url})"  # text: a file key orderpipe made
    return f"`{where}`"


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
    links: dict[str, str | None] | None = None,
    payment: dict[str, Any] | None = None,
) -> str:
    """The order's summary; ``links`` maps "label" and "invoice" to what ``file_link`` gave."""
    links = links or {}
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
        f"**VAT:** {_money(invoice.amount_tax, c) if invoice else '-'}"
        + "".join(f" · _{md(note)}_" for note in (getattr(invoice, "vat_notes", None) or [])),
        f"**Tracking number:** {md(shipment.tracking_number) if shipment else '-'}"
        + (f" ([track]({_url(shipment.tracking_url)}))" if shipment and _url(shipment.tracking_url) else ""),
        f"**Label:** {_label(shipment, links.get('label')) if shipment else '-'}",
        f"**Invoice:** {invoice.invoice_number if invoice else '-'}"
        + (f" ({_link(_invoice_file(invoice) or '', links.get('invoice'))})"
           if invoice and _invoice_file(invoice) else ""),
        f"**CRM deal:** {crm.deal_id if crm else '-'}",
        f"**Email:** {email.transport + ' ' + (email.location or email.message_id) if email else '-'}",
        *(payment_markdown(payment, c) if payment is not None else []),
        "",
        "| step | state |",
        "|---|---|",
    ]
    for step, state in steps.items():
        rows.append(f"| {step} | {state}{' — ' + md(errors[step]) if step in errors else ''} |")
    return "\n".join(rows) + "\n"


def _label(shipment: ShipmentResult, link: str | None) -> str:
    """The label's link; a cached result's own URL may have expired, so a fresh link comes first."""
    label = shipment.label
    return _link(label.key, link or label.path or (label.url if label.url and label.url.startswith("http") else None))


def _invoice_file(invoice: InvoiceResult) -> str | None:
    """The local path, else the file store key (results cached by older versions have no key)."""
    return invoice.pdf_path or getattr(invoice, "pdf_key", None)


@dataclass
class StepTiming:
    """What the flow saw of one step: when it was submitted (the table's "started": the task
    runner starts it at once), when its final state was set (retries included), what it did."""

    step: str
    submitted: datetime
    finished: datetime | None = None
    state_name: str | None = None  # Prefect's: Completed, Cached, Failed, ...
    outcome: str | None = None  # audit.outcome_line of the result
    error: str | None = None


def _clock(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3] + " UTC" if at else "-"


def steps_table(timings: list[StepTiming]) -> list[dict[str, str]]:
    """Rows of the steps table, in step order; steps the run never reached say so."""
    by_step = {t.step: t for t in timings}
    rows = []
    for step in STEPS:
        t = by_step.get(step)
        if t is None:
            rows.append({"step": str(step), "state": "not run", "started": "-", "finished": "-", "took": "-",
                         "outcome": "not started: an earlier step failed"})
            continue
        took = f"{(t.finished - t.submitted).total_seconds():.2f} s" if t.finished else "-"
        rows.append({"step": str(step), "state": t.state_name or "-", "started": _clock(t.submitted),
                     "finished": _clock(t.finished), "took": took,
                     "outcome": t.outcome or (f"failed: {t.error}" if t.error else "-")})
    return rows


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
        f"**Customer:** {md(row.customer_email or '-')} · **Country:** {row.country or '-'} · **Currency:** "
        f"{c.upper() or '-'}",
        f"**Total charged:** {_money(row.amount_total, c) if row.amount_total is not None and c else '-'}",
        f"**State:** {row.state}",
        f"**Tracking number:** {md(row.tracking_number or '-')}",
        f"**Invoice:** {md(row.invoice_number or '-')}",
        *payment_markdown(payment, row.currency),
    ]
    if note:
        rows += ["", note]
    rows += ["", "| step | state |", "|---|---|", *(f"| {s} | {st} |" for s, st in steps.items())]
    return "\n".join(rows) + "\n"


# ---- erasure (orderpipe forget / purge) -------------------------------------------------

ERASED = "(erased)"
_ERASED_LINE = "(erased by orderpipe "
#: The customer part of ``**Customer:** ...``: up to the status view's `` · **Country:**`` (the
#: customer text itself is md()-escaped, so it never holds a literal ``**``), else the line.
_CUSTOMER = re.compile(r"^(\*\*Customer:\*\* )(?!\(erased by orderpipe )(.*?)(?= · \*\*Country:\*\*|$)", re.M)
_SENT_TO = re.compile(r"(confirmation sent to )(?!the customer )(.+?)( in language )")
_QUOTED = r"(?:'[^'\n]*'|\"[^\"\n]*\")"
_BUYER_VAT = re.compile(r"(Buyer VAT id )" + _QUOTED)
_INVALID_EMAIL = re.compile(r"(invalid customer email )" + _QUOTED)
MIN_VALUE = 3  # shorter strings ("FI", "1") would erase more than the customer


def redaction_forms(values: Iterable[str | None]) -> list[str]:
    """The strings to erase for a customer's values: each as given and as ``md()`` renders it,
    longest first; too short or blank values are left out."""
    forms: set[str] = set()
    for value in values:
        text = " ".join(str(value or "").split())
        if len(text) < MIN_VALUE:
            continue
        forms.add(text)
        forms.add(md(text))
    return sorted(forms, key=lambda f: (-len(f), f))


def redact_text(text: str, forms: list[str], note: str) -> str:
    """``text`` without the customer: the ``**Customer:**`` line says ``note`` instead, the
    email outcome names "the customer", quoted VAT ids and emails in notes and errors become
    ``(erased)``, and so does every occurrence of ``forms`` (case-insensitive, whole values
    only: ``2026`` does not erase a part of ``2026-000001``)."""
    for form in forms:
        text = re.sub(r"(?<![\w-])" + re.escape(form) + r"(?![\w-])", ERASED, text, flags=re.I)
    text = _CUSTOMER.sub(lambda m: m.group(1) + note, text)
    text = _SENT_TO.sub(lambda m: m.group(1) + "the customer" + m.group(3), text)
    text = _BUYER_VAT.sub(lambda m: m.group(1) + ERASED, text)
    return _INVALID_EMAIL.sub(lambda m: m.group(1) + ERASED, text)


def _redact_value(value: object, forms: list[str], note: str) -> object:
    if isinstance(value, str):
        return redact_text(value, forms, note)
    if isinstance(value, list):
        return [_redact_value(v, forms, note) for v in value]
    if isinstance(value, dict):
        return {k: _redact_value(v, forms, note) for k, v in value.items()}
    return value


def redact_artifact_data(data: object, forms: list[str], note: str) -> object:
    """An artifact version's data without the customer (``redact_text`` on every string).
    Markdown is text; a table's data is the JSON of its rows (Prefect's ``json.dumps``), so
    its strings are redacted decoded and the rows encoded again the same way."""
    if isinstance(data, str):
        try:
            rows = json.loads(data)
        except ValueError:
            return redact_text(data, forms, note)
        if isinstance(rows, list | dict):
            redacted = _redact_value(rows, forms, note)
            return data if redacted == rows else json.dumps(redacted)
        return redact_text(data, forms, note)
    return _redact_value(data, forms, note)


def erasure_note(command: str, when: datetime) -> str:
    """What the ``**Customer:**`` line says after ``orderpipe <command>``."""
    return f"{_ERASED_LINE}{command} on {when:%Y-%m-%d})"
