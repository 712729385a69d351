"""The invoice PDF shows names as themselves, the number, the VAT breakdown and the totals."""

from __future__ import annotations

import io

from pypdf import PdfReader

from orderpipe.invoicing.document import build_invoice
from orderpipe.invoicing.pdf import format_amount, render_invoice_pdf
from orderpipe.order import Order
from tests.unit.invoice_samples import (
    FI_RATE,
    ISSUE_DATE,
    SELLER,
    inclusive_no_stripe_tax,
    jpy_order,
    kwd_order,
    reverse_charge_de,
)


def pdf_text(order: Order) -> str:
    doc = build_invoice(order, SELLER, number="2026-000007", issue_date=ISSUE_DATE, default_vat_rate=FI_RATE)
    data = render_invoice_pdf(doc)
    assert data.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(data))
    return " ".join(" ".join((page.extract_text() or "").split()) for page in reader.pages)


def test_nordic_name_invoice_number_and_totals() -> None:
    text = pdf_text(inclusive_no_stripe_tax())
    assert "Åsa Öberg-Ståhl" in text
    assert "2026-000007" in text and "2026-03-14" in text
    assert "Painotalo Pikkuna Oy" in text and "FI12345671" in text
    assert "89.72 EUR" in text  # total excl. VAT
    assert "22.88 EUR" in text  # VAT 25.5 %
    assert "112.60 EUR" in text  # paid == charge
    assert "25.5" in text
    assert "Prices include VAT" in text


def test_reverse_charge_note_and_buyer_vat_id() -> None:
    text = pdf_text(reverse_charge_de())
    assert "Druckerei Groß GmbH" in text and "DE136695976" in text
    assert "Intra-community supply" in text and "Yhteisömyynti" in text and "VATEX-EU-IC" in text
    assert "2006/112/EC" in text
    assert "1\u00a0017.90 EUR" in text or "1 017.90 EUR" in text


def test_cjk_names_do_not_crash_and_yen_has_no_decimals() -> None:
    text = pdf_text(jpy_order())
    assert "7\u00a0629 JPY" in text or "7 629 JPY" in text


def test_kwd_amounts_show_three_decimals() -> None:
    text = pdf_text(kwd_order())
    assert "7.750 KWD" in text


def test_format_amount() -> None:
    assert format_amount(123456, 2) == "1\u00a0234.56"
    assert format_amount(500, 0) == "500"
    assert format_amount(5120, 3) == "5.120"
    assert format_amount(0, 2) == "0.00"


def test_label_and_invoice_pdfs_rendered_at_once_in_threads_are_both_whole() -> None:
    """An order's shipment and invoice steps run concurrently: reportlab's shared font state
    must never be touched by two renders at once (it once raised KeyError: 106)."""
    from concurrent.futures import ThreadPoolExecutor

    from orderpipe.shipping.label import render_label

    doc = build_invoice(reverse_charge_de(), SELLER, number="2026-000042", issue_date=ISSUE_DATE,
                        default_vat_rate=FI_RATE)

    def label(i: int) -> bytes:
        return render_label(tracking_number=f"CP{i:09d}FI", sender_lines=["Shop Oy", "Katu 1", "00100 Helsinki"],
                            recipient_lines=[f"Åsa Öberg {i}", "Storgatan 5", "11451 Stockholm", "SE"],
                            order_id=f"pi_{i}")

    import sys

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(label, i) if i % 2 else pool.submit(render_invoice_pdf, doc) for i in range(60)]
            pdfs = [f.result() for f in futures]
    finally:
        sys.setswitchinterval(switch)
    assert all(p.startswith(b"%PDF") and p.rstrip().endswith(b"%%EOF") for p in pdfs)
