"""Credit notes as data: a refund against a stored invoice, split exactly across its VAT rates.

Pure maths, no I/O (the local invoicing connector numbers, renders and stores them; the
refund flow calls :meth:`orderpipe.invoicing.local.LocalInvoicing.issue_credit_note`).

* :func:`split_refund` splits a refund (minor units) across the invoice's VAT groups
  (category and rate) in proportion to what is still left to refund in each, by largest
  remainder: the parts sum to the refund, each part's taxable + tax equals the part, no
  group is ever credited more than it invoiced, and the credit notes of a fully refunded
  invoice add up to the invoice exactly (tax included).
* :func:`build_credit_note` makes the credit note document (an :class:`InvoiceDocument`
  with ``document_type == "credit_note"``) that :func:`orderpipe.invoicing.ubl.render_ubl` renders as
  a UBL 2.1 ``CreditNote`` and :func:`orderpipe.invoicing.pdf.render_invoice_pdf` as a PDF in
  the customer's language. A full refund mirrors the invoice's lines; a partial one has one
  line per VAT group.

A refund larger than what is left raises :class:`RefundExceedsInvoice` (permanent): there
is never a negative document.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from pydantic import BaseModel

from orderpipe.errors import PermanentError
from orderpipe.invoicing.document import (
    InvoiceDocument,
    InvoiceLine,
    TaxCategory,
    TaxSubtotal,
    canonical_rate,
    format_rate,
    largest_remainder,
)
from orderpipe.money import round_div, to_decimal


class RefundExceedsInvoice(PermanentError):
    """The refund is larger than what is left to refund on the invoice."""


class RefundPart(BaseModel):
    """The share of a refund in one VAT group of the invoice: ``taxable + tax == amount``."""

    category: TaxCategory
    rate: Decimal
    amount: int
    taxable: int
    tax: int


CREDIT_NOTE_LINE_TEXT = {
    "en": "Refund of invoice {invoice}, VAT {rate} %",
    "fi": "Hyvitys laskusta {invoice}, ALV {rate} %",
    "sv": "Kreditering av faktura {invoice}, moms {rate} %",
    "da": "Kreditering af faktura {invoice}, moms {rate} %",
    "nb": "Kreditering av faktura {invoice}, mva {rate} %",
    "de": "Gutschrift zur Rechnung {invoice}, USt. {rate} %",
    "fr": "Avoir sur la facture {invoice}, TVA {rate} %",
    "es": "Abono de la factura {invoice}, IVA {rate} %",
    "it": "Storno della fattura {invoice}, IVA {rate} %",
    "nl": "Creditering van factuur {invoice}, btw {rate} %",
    "pt": "Crédito da fatura {invoice}, IVA {rate} %",
}
CREDIT_NOTE_NOTE = "Credit note for invoice {invoice} (refund {refund}, order {order})."


def _key(category: TaxCategory, rate: Decimal) -> tuple[str, Decimal]:
    return category.value, canonical_rate(rate)


def remaining(invoice: InvoiceDocument, credited: Sequence[RefundPart] = ()) -> list[tuple[TaxSubtotal, int, int]]:
    """Per VAT group of the invoice: (subtotal, gross left to refund, tax left to refund)."""
    used: dict[tuple[str, Decimal], tuple[int, int]] = {}
    for part in credited:
        a, t = used.get(_key(part.category, part.rate), (0, 0))
        used[_key(part.category, part.rate)] = (a + part.amount, t + part.tax)
    out = []
    for sub in invoice.tax_subtotals:
        a, t = used.get(_key(sub.category, sub.rate), (0, 0))
        out.append((sub, sub.taxable + sub.tax - a, sub.tax - t))
    return out


def refundable(invoice: InvoiceDocument, credited: Sequence[RefundPart] = ()) -> int:
    """What is left to refund on the invoice (minor units)."""
    return sum(gross for _, gross, _ in remaining(invoice, credited))


def split_refund(invoice: InvoiceDocument, amount: int, *, credited: Sequence[RefundPart] = ()) -> list[RefundPart]:
    """The refund split across the invoice's VAT groups (see the module docstring).

    ``credited`` are the parts of the credit notes already issued against this invoice.
    Groups that get nothing are left out."""
    if amount <= 0:
        raise PermanentError(f"invoice {invoice.number}: a refund must be positive, got {amount}")
    groups = remaining(invoice, credited)
    left = sum(gross for _, gross, _ in groups)
    if amount > left:
        raise RefundExceedsInvoice(
            f"invoice {invoice.number}: a refund of {to_decimal(amount, invoice.currency)} {invoice.currency} is more "
            f"than the {to_decimal(left, invoice.currency)} {invoice.currency} left to refund (invoiced "
            f"{to_decimal(invoice.payable, invoice.currency)}); no credit note was issued"
        )
    shares = largest_remainder(amount, [max(gross, 0) for _, gross, _ in groups])
    parts = []
    for (sub, gross, tax_left), share in zip(groups, shares, strict=True):
        if share == 0:
            continue
        tax = tax_left if share == gross else round_div(share * tax_left, gross)
        parts.append(RefundPart(category=sub.category, rate=sub.rate, amount=share, taxable=share - tax, tax=tax))
    return parts


def build_credit_note(
    invoice: InvoiceDocument,
    amount: int,
    *,
    number: str,
    issue_date: date,
    refund_id: str,
    credited: Sequence[RefundPart] = (),
    language: str = "en",
) -> InvoiceDocument:
    """The credit note document for a refund of ``amount`` (minor units) against ``invoice``."""
    parts = split_refund(invoice, amount, credited=credited)
    by_key = {_key(s.category, s.rate): s for s in invoice.tax_subtotals}
    subtotals = [
        TaxSubtotal(
            category=p.category, rate=p.rate, taxable=p.taxable, tax=p.tax,
            exemption_reason=by_key[_key(p.category, p.rate)].exemption_reason,
            exemption_reason_code=by_key[_key(p.category, p.rate)].exemption_reason_code,
        )
        for p in parts
    ]
    if amount == invoice.payable and not credited:
        lines = [line.model_copy() for line in invoice.lines]  # a full refund credits every line as invoiced
    else:
        text = CREDIT_NOTE_LINE_TEXT.get(language, CREDIT_NOTE_LINE_TEXT["en"])
        lines = [
            InvoiceLine(
                line_id=i, description=text.format(invoice=invoice.number, rate=format_rate(p.rate)), quantity=1,
                gross=p.amount, net=p.taxable, tax=p.tax, discount=0, category=p.category, rate=p.rate,
            )
            for i, p in enumerate(parts, start=1)
        ]
    line_extension = sum(line.net for line in lines)
    tax_total = sum(s.tax for s in subtotals)
    assert line_extension == sum(s.taxable for s in subtotals) and line_extension + tax_total == amount
    return invoice.model_copy(
        update={
            "number": number,
            "issue_date": issue_date,
            "lines": lines,
            "tax_subtotals": subtotals,
            "line_extension": line_extension,
            "tax_total": tax_total,
            "tax_inclusive": line_extension + tax_total,
            "payable": amount,
            "document_type": "credit_note",
            "billing_reference": invoice.number,
            "billing_reference_date": invoice.issue_date,
            "refund_id": refund_id,
            "language": language,
            "notes": [CREDIT_NOTE_NOTE.format(invoice=invoice.number, refund=refund_id, order=invoice.order_id)],
            "vat_notes": [],
        },
        deep=True,
    )


def parts_of(doc: InvoiceDocument) -> list[RefundPart]:
    """The refund parts a credit note document carries (for the next refund's ``credited``)."""
    return [RefundPart(category=s.category, rate=s.rate, amount=s.taxable + s.tax, taxable=s.taxable, tax=s.tax)
            for s in doc.tax_subtotals]
