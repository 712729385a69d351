"""The embedded carrier's shipping label: an A6 PDF with addresses and a Code 128 barcode.

Text goes through :func:`orderpipe.pdf_fonts.printable`, so any name renders (characters the
font lacks become "?") and the PDF is byte-for-byte the same for the same input
(reportlab's invariant mode), so storing it again overwrites it with identical content.
"""

from __future__ import annotations

import io

from reportlab.graphics.barcode.code128 import Code128
from reportlab.lib.pagesizes import A6
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from orderpipe import pdf_fonts

PAGE_W, PAGE_H = A6  # 105 x 148 mm, portrait
MARGIN = 6 * mm
MIN_FONT_SIZE = 6.0
BARCODE_Y = MARGIN + 22 * mm
BARCODE_TOP = BARCODE_Y + 18 * mm


def _fit(text: str, font: str, size: float, width: float) -> tuple[str, float]:
    """Shrink the font down to MIN_FONT_SIZE, then cut the text with an ellipsis, to fit width."""
    while size > MIN_FONT_SIZE and stringWidth(text, font, size) > width:
        size = max(MIN_FONT_SIZE, size - 0.5)
    if stringWidth(text, font, size) <= width:
        return text, size
    while text and stringWidth(text + "…", font, size) > width:
        text = text[:-1]
    return text + "…", size


def _lines(canvas: Canvas, lines: list[str], *, x: float, y: float, font: str, size: float, width: float) -> float:
    """Draw lines top-down from baseline y; returns the y below the last line."""
    for raw in lines:
        text, used = _fit(pdf_fonts.printable(raw), font, size, width)
        canvas.setFont(font, used)
        canvas.drawString(x, y, text)
        y -= used * 1.25
    return y


@pdf_fonts.one_at_a_time
def render_label(
    *,
    tracking_number: str,
    sender_lines: list[str],
    recipient_lines: list[str],
    order_id: str,
    weight_grams: int | None = None,
    notes: str | None = None,
    carrier: str = "orderpipe local post",
) -> bytes:
    """The label PDF as bytes."""
    regular, bold = pdf_fonts.register()
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=A6, invariant=True, pageCompression=1)
    c.setTitle(f"Shipping label {tracking_number}")
    c.setAuthor("orderpipe")
    c.setSubject(f"Order {order_id}")
    width = PAGE_W - 2 * MARGIN
    x = MARGIN
    top = PAGE_H - MARGIN

    # Header: carrier and tracking number.
    c.setLineWidth(1)
    c.rect(MARGIN, top - 14 * mm, width, 14 * mm)
    _lines(c, [carrier.upper()], x=x + 2 * mm, y=top - 5 * mm, font=bold, size=9, width=width - 4 * mm)
    _lines(c, [tracking_number], x=x + 2 * mm, y=top - 11 * mm, font=bold, size=12, width=width - 4 * mm)

    # Sender.
    y = top - 20 * mm
    _lines(c, ["FROM / AVSÄNDARE / LÄHETTÄJÄ"], x=x, y=y, font=bold, size=6.5, width=width)
    y = _lines(c, sender_lines, x=x, y=y - 9, font=regular, size=8, width=width)

    # Recipient, boxed and larger.
    y -= 3 * mm
    box_top = y
    _lines(c, ["TO / TILL / VASTAANOTTAJA"], x=x + 2 * mm, y=y - 9, font=bold, size=6.5, width=width - 4 * mm)
    # Shrink the recipient's lines when there are many, so they never run into the barcode.
    room = (y - 12) - (BARCODE_TOP + 3 * mm)
    size = max(MIN_FONT_SIZE, min(12.0, room / (1 + 1.25 * max(1, len(recipient_lines)))))
    y = _lines(c, recipient_lines, x=x + 2 * mm, y=y - 12 - size, font=bold, size=size, width=width - 4 * mm)
    c.setLineWidth(1.5)
    c.rect(MARGIN, y, width, box_top - y)

    # Barcode (Code 128 of the tracking number) with the human-readable number below.
    bar_height = BARCODE_TOP - BARCODE_Y
    barcode = Code128(tracking_number, barHeight=bar_height, barWidth=1.1, quiet=True)
    if barcode.width > width:
        barcode = Code128(tracking_number, barHeight=bar_height, barWidth=1.1 * width / barcode.width, quiet=True)
    bar_y = BARCODE_Y
    barcode.drawOn(c, MARGIN + (width - barcode.width) / 2, bar_y)
    c.setFont(bold, 11)
    c.drawCentredString(PAGE_W / 2, bar_y - 5 * mm, tracking_number)

    # Footer: order reference, weight, notes.
    details = []
    if weight_grams is not None:
        details.append(f"Weight {weight_grams // 1000}.{weight_grams % 1000:03d} kg")
    if notes:
        details.append(notes)
    footer = [f"Order {order_id}"] + ([" · ".join(details)] if details else [])
    _lines(c, footer, x=x, y=MARGIN + 6 * mm, font=regular, size=7, width=width)

    c.showPage()
    c.save()
    return buf.getvalue()
