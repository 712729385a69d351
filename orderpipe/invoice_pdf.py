"""The invoice PDF a person reads (reportlab, DejaVu fonts so names render as themselves)."""

from __future__ import annotations

import io
import threading
from decimal import Decimal
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from orderpipe.invoice_doc import InvoiceDocument, InvoiceParty, TaxCategory, format_rate
from orderpipe.pdf_fonts import one_at_a_time, printable, register

CATEGORY_LABELS = {
    TaxCategory.STANDARD: "Standard rate / Yleinen",
    TaxCategory.REVERSE_CHARGE: "Reverse charge / Käännetty verovelvollisuus",
    TaxCategory.ZERO_RATED: "Zero rated / Nollaverokannan myynti",
    TaxCategory.EXEMPT: "Exempt / Veroton",
}


# reportlab keeps per-font subsetting state in shared objects: render one PDF at a time per process.
_render_lock = threading.Lock()


def format_amount(amount: int, exponent: int) -> str:
    """Minor units as a grouped decimal: 123456 (2) -> '1 234.56', 500 (0) -> '500'."""
    value = Decimal(amount).scaleb(-exponent)
    return format(value, f",.{exponent}f").replace(",", "\u00a0")


@one_at_a_time
def render_invoice_pdf(doc: InvoiceDocument) -> bytes:
    regular, bold = register()
    styles = {
        "title": ParagraphStyle("title", fontName=bold, fontSize=18, leading=22),
        "h": ParagraphStyle("h", fontName=bold, fontSize=9, leading=12),
        "p": ParagraphStyle("p", fontName=regular, fontSize=9, leading=12),
        "small": ParagraphStyle("small", fontName=regular, fontSize=8, leading=10),
        "right": ParagraphStyle("right", fontName=regular, fontSize=9, leading=12, alignment=TA_RIGHT),
    }

    def para(text: str | None, style: str = "p") -> Paragraph:
        return Paragraph(escape(printable(text)).replace("\n", "<br/>"), styles[style])

    def money(amount: int) -> str:
        return format_amount(amount, doc.exponent)

    cur = doc.currency
    buf = io.BytesIO()
    pdf = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
        title=f"Invoice {doc.number}",
        author=doc.seller.name,
    )
    story: list[object] = [para("Invoice / Lasku", "title"), Spacer(1, 4 * mm)]

    facts = [
        ("Invoice number / Laskun numero", doc.number),
        ("Invoice date / Laskun päivä", doc.issue_date.isoformat()),
        ("Order date / Tilauspäivä", doc.order_date.date().isoformat()),
        ("Order / Tilaus", doc.order_reference or doc.order_id),
        ("Payment / Maksu", f"Paid by card / Maksettu kortilla ({doc.order_id})"),
    ]
    story.append(_table([[para(k, "h"), para(v)] for k, v in facts], [62 * mm, 112 * mm], grid=False))
    story.append(Spacer(1, 5 * mm))

    def party_block(title: str, party: InvoiceParty) -> list[Paragraph]:
        out = [para(title, "h"), para(party.name)]
        out += [para(line) for line in party.address_lines()]
        if party.vat_id:
            out.append(para(f"VAT id / ALV-tunnus: {party.vat_id}"))
        if party.email:
            out.append(para(party.email))
        return out

    blocks = [[party_block("Seller / Myyjä", doc.seller), party_block("Buyer / Ostaja", doc.buyer)]]
    if doc.delivery is not None:
        delivery = [para("Delivery address / Toimitusosoite", "h")] + [para(x) for x in doc.delivery.lines()]
        blocks[0].append(delivery)
    story.append(_table(blocks, [58 * mm] * len(blocks[0]), grid=False))
    story.append(Spacer(1, 6 * mm))

    header = ["Description / Kuvaus", "Qty", "Discount", "VAT %", f"Net ({cur})", f"VAT ({cur})", f"Total ({cur})"]
    rows: list[list[object]] = [[para(h, "h") for h in header]]
    for line in doc.lines:
        rows.append(
            [
                para(line.description),
                para(str(line.quantity), "right"),
                para(money(line.discount) if line.discount else "", "right"),
                para(f"{format_rate(line.rate)} {line.category.value}", "right"),
                para(money(line.net), "right"),
                para(money(line.tax), "right"),
                para(money(line.gross), "right"),
            ]
        )
    widths = [58 * mm, 12 * mm, 20 * mm, 18 * mm, 22 * mm, 22 * mm, 22 * mm]
    story.append(_table(rows, widths, grid=True, header=True))
    story.append(Spacer(1, 6 * mm))

    vat_rows: list[list[object]] = [
        [para(h, "h") for h in ("VAT breakdown / ALV-erittely", "VAT %", f"Taxable ({cur})", f"VAT ({cur})")]
    ]
    for sub in doc.tax_subtotals:
        label = CATEGORY_LABELS[sub.category]
        if sub.exemption_reason and sub.category is not TaxCategory.REVERSE_CHARGE:
            label = f"{label}: {sub.exemption_reason}"
        vat_rows.append(
            [para(label), para(format_rate(sub.rate), "right"), para(money(sub.taxable), "right"),
             para(money(sub.tax), "right")]
        )
    story.append(_table(vat_rows, [88 * mm, 18 * mm, 34 * mm, 34 * mm], grid=True, header=True))
    story.append(Spacer(1, 6 * mm))

    totals = [
        ("Total excl. VAT / Veroton yhteensä", doc.tax_exclusive),
        ("VAT / ALV", doc.tax_total),
        ("Total incl. VAT / Yhteensä", doc.tax_inclusive),
        ("Paid / Maksettu", doc.payable),
    ]
    story.append(
        _table(
            [[para(k, "h"), para(f"{money(v)} {cur}", "right")] for k, v in totals],
            [120 * mm, 54 * mm],
            grid=False,
        )
    )
    if doc.prices_include_vat:
        story += [Spacer(1, 3 * mm), para("Prices include VAT. / Hinnat sisältävät arvonlisäveron.", "small")]
    for note in doc.notes:
        story += [Spacer(1, 4 * mm), para(note, "h")]
    story += [
        Spacer(1, 8 * mm),
        para(f"{doc.seller.name} · VAT id / ALV-tunnus {doc.seller.vat_id} · {doc.seller.email or ''}", "small"),
    ]
    with _render_lock:
        pdf.build(story)  # type: ignore[arg-type]
    return buf.getvalue()


def _table(rows: list[list[object]], widths: list[float], *, grid: bool, header: bool = False) -> Table:
    table = Table(rows, colWidths=widths, hAlign="LEFT", repeatRows=1 if header else 0)
    style = [("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 3)]
    if grid:
        style.append(("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.grey))
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke))
    table.setStyle(TableStyle(style))
    return table
