"""The confirmation email: headers, parts, attachment, language and locale formatting."""

from __future__ import annotations

from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
from reportlab.pdfgen.canvas import Canvas

from orderpipe.connectors.base import InvoiceResult, ShipmentResult, StoredFile
from orderpipe.email.render import format_money, message_id_for, render_confirmation
from orderpipe.email.texts import TEXTS
from orderpipe.errors import OrderDataError, PermanentError
from orderpipe.order import Address, Order, OrderLine

SENDER = "Painotalo Pikkuna <orders@pikkuna.example>"
NBSP = "\u00a0"
TRACKING = "CP000000014FI"
TRACKING_URL = f"https://tracking.example/track?id={TRACKING}&lang=x"


def make_order(**kw: object) -> Order:
    values: dict[str, object] = {
        "order_id": "pi_3Render",
        "created": datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        "currency": "eur",
        "amount_total": 4990,
        "amount_tax": 994,
        "customer_email": "asa@example.se",
        "customer_name": "Åsa Öberg-Ståhl",
        "locale": "fi",
        "shipping_address": Address(
            name="Åsa Öberg-Ståhl", line1="Mannerheimintie 1", postal_code="00100", city="Helsinki", country="FI"
        ),
        "lines": [
            OrderLine(description="Juliste A3 <kiiltävä>", quantity=2, amount_subtotal=3990, amount_total=3990,
                      amount_tax=795),
            OrderLine(description="Toimitus", quantity=1, amount_subtotal=1000, amount_total=1000, amount_tax=199,
                      is_shipping=True),
        ],
    }
    values.update(kw)
    return Order.model_validate(values)


@pytest.fixture
def invoice_pdf(tmp_path: Path) -> Path:
    path = tmp_path / "2026-000001.pdf"
    c = Canvas(str(path))
    c.drawString(72, 720, "Invoice 2026-000001")
    c.save()
    return path


def shipment() -> ShipmentResult:
    return ShipmentResult(tracking_number=TRACKING, carrier="local", tracking_url=TRACKING_URL,
                          label=StoredFile(key="labels/pi_3Render.pdf"), created=True)


def invoice(pdf: Path, *, currency: str = "eur", total: int = 4990, tax: int = 994) -> InvoiceResult:
    return InvoiceResult(invoice_number="2026-000001", issue_date="2026-11-23", currency=currency,
                         amount_total=total, amount_tax=tax, pdf_path=str(pdf), created=True)


def render(order: Order, pdf: Path, **kw: object) -> tuple[EmailMessage, str, str]:
    """Render, serialise and parse back; returns (parsed message, text part, html part)."""
    currency = order.currency
    rendered = render_confirmation(order, shipment(), invoice(pdf, currency=currency, total=order.amount_total),
                                   sender=SENDER, seller_name="Painotalo Pikkuna Oy",
                                   reply_to=kw.get("reply_to", "help@pikkuna.example"))  # type: ignore[arg-type]
    raw = rendered.message.as_bytes()
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)
    text = parsed.get_body(preferencelist=("plain",))
    html = parsed.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return parsed, text.get_content(), html.get_content()


def test_headers(invoice_pdf: Path) -> None:
    msg, _, _ = render(make_order(), invoice_pdf)
    assert msg["From"] == SENDER
    assert msg["To"].addresses[0].display_name == "Åsa Öberg-Ståhl"
    assert msg["To"].addresses[0].addr_spec == "asa@example.se"
    assert msg["Reply-To"] == "help@pikkuna.example"
    assert msg["Subject"] == "Tilausvahvistus pi_3Render"
    assert msg["Message-ID"] == "<order-confirmation.pi_3Render@pikkuna.example>"
    assert msg["Content-Language"] == "fi"
    assert msg["Date"].datetime is not None
    assert msg.get_content_type() == "multipart/mixed"


def test_raw_headers_are_ascii_and_crlf(invoice_pdf: Path) -> None:
    rendered = render_confirmation(make_order(), shipment(), invoice(invoice_pdf), sender=SENDER,
                                   seller_name="Pikkuna", reply_to=None)
    raw = rendered.message.as_bytes()
    head = raw.split(b"\r\n\r\n", 1)[0]
    head.decode("ascii")
    assert b"Content-Language: fi" in head.split(b"\r\n")
    assert b"Reply-To" not in head
    assert rendered.language == "fi"


def test_message_id_is_deterministic_per_order(invoice_pdf: Path) -> None:
    first, _, _ = render(make_order(), invoice_pdf)
    second, _, _ = render(make_order(), invoice_pdf)
    assert first["Message-ID"] == second["Message-ID"]
    assert message_id_for("pi_1", "no-domain") == "<order-confirmation.pi_1@orderpipe.local>"


def test_text_and_html_parts(invoice_pdf: Path) -> None:
    _, text, html = render(make_order(), invoice_pdf)
    for part in (text, html):
        assert TRACKING in part
        assert "Åsa Öberg-Ståhl" in part
        assert "2026-000001" in part
        assert f"49,90{NBSP}€" in part  # total, Finnish style
        assert f"9,94{NBSP}€" in part  # VAT
        assert f"39,90{NBSP}€" in part  # line
        assert "23. marraskuuta 2026" in part
        assert "Mannerheimintie 1" in part
    assert TRACKING_URL in text
    assert "Juliste A3 <kiiltävä> (Määrä 2)" in text
    # Values are escaped in HTML, the link too.
    assert "Juliste A3 &lt;kiiltävä&gt;" in html
    assert "<kiiltävä>" not in html
    assert f'href="{TRACKING_URL.replace("&", "&amp;")}"' in html


def test_invoice_pdf_is_attached(invoice_pdf: Path) -> None:
    msg, _, _ = render(make_order(), invoice_pdf)
    attachments = list(msg.iter_attachments())
    assert len(attachments) == 1
    pdf = attachments[0]
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_filename() == "2026-000001.pdf"
    assert pdf.get_content() == invoice_pdf.read_bytes()
    assert pdf.get_content().startswith(b"%PDF")


def test_zero_and_three_decimal_currencies(invoice_pdf: Path) -> None:
    us = Address(name="Amy Lee", line1="1 Main St", postal_code="10001", city="New York", state="NY", country="US")
    jpy = make_order(currency="jpy", amount_total=5000, locale="en", shipping_address=us, lines=[
        OrderLine(description="Print", quantity=1, amount_subtotal=5000, amount_total=5000)])
    _, text, _ = render(jpy, invoice_pdf)
    assert "¥5,000" in text
    assert "¥5,000.00" not in text
    kwd = make_order(currency="kwd", amount_total=5120, locale="en", shipping_address=us, lines=[
        OrderLine(description="Print", quantity=1, amount_subtotal=5120, amount_total=5120)])
    _, text, _ = render(kwd, invoice_pdf)
    assert "KWD5.120" in text
    assert "51.20" not in text


def test_format_money_uses_stripe_exponents() -> None:
    from babel import Locale

    assert format_money(4990, "eur", Locale.parse("fi")) == f"49,90{NBSP}€"
    assert format_money(500, "jpy", Locale.parse("fi")) == f"500{NBSP}¥"
    assert format_money(5120, "kwd", Locale.parse("en")) == "KWD5.120"
    assert format_money(4990, "eur", Locale.parse("de_CH")) == f"EUR{NBSP}49.90"
    assert format_money(123456, "usd", Locale.parse("en")) == "$1,234.56"


def test_every_language_renders_and_differs(invoice_pdf: Path) -> None:
    subjects, bodies = set(), set()
    for lang in sorted(TEXTS):
        msg, text, html = render(make_order(locale=lang), invoice_pdf)
        assert msg["Content-Language"] == lang
        assert f'<html lang="{lang}">' in html
        assert TRACKING in text and TRACKING in html
        assert TEXTS[lang].total in text
        subjects.add(msg["Subject"])
        bodies.add(text)
    assert len(subjects) == len(bodies) == len(TEXTS) >= 10


def test_country_decides_when_locale_is_auto(invoice_pdf: Path) -> None:
    order = make_order(locale="auto", shipping_address=Address(
        name="Åsa Öberg-Ståhl", line1="Storgatan 1", postal_code="114 51", city="Stockholm", country="SE"))
    msg, text, _ = render(order, invoice_pdf)
    assert msg["Content-Language"] == "sv"
    assert "Varav moms" in text
    assert "Sverige" in text


def test_unknown_locale_falls_back_to_english(invoice_pdf: Path) -> None:
    msg, text, _ = render(make_order(locale="xx-YY"), invoice_pdf)
    assert msg["Content-Language"] == "en"
    assert msg["Subject"] == "Order confirmation pi_3Render"
    assert "Your parcel's tracking number is CP000000014FI." in text


def test_reference_in_subject_and_header_injection_is_neutralised(invoice_pdf: Path) -> None:
    order = make_order(reference="A-1001\r\nBcc: victim@example.com", customer_name="Evil\r\nBcc: x@example.com")
    msg, _, _ = render(order, invoice_pdf)
    assert msg["Bcc"] is None
    assert msg["Subject"] == "Tilausvahvistus A-1001 Bcc: victim@example.com"


def test_variables_for_vendor_templates(invoice_pdf: Path) -> None:
    rendered = render_confirmation(make_order(), shipment(), invoice(invoice_pdf), sender=SENDER,
                                   seller_name="Pikkuna", reply_to=None)
    v = rendered.variables
    assert v["customer_name"] == "Åsa Öberg-Ståhl"
    assert v["order_id"] == "pi_3Render"
    assert v["tracking_number"] == TRACKING
    assert v["tracking_url"] == TRACKING_URL
    assert v["invoice_number"] == "2026-000001"
    assert v["total"] == f"49,90{NBSP}€"
    assert all(isinstance(x, str) for x in v.values())


def test_missing_email_names_the_order(invoice_pdf: Path) -> None:
    with pytest.raises(OrderDataError, match="order pi_3Render has no customer email"):
        render(make_order(customer_email=None), invoice_pdf)


def test_invalid_email_names_the_order(invoice_pdf: Path) -> None:
    with pytest.raises(OrderDataError, match="pi_3Render"):
        render(make_order(customer_email="not an address@@"), invoice_pdf)


def test_missing_invoice_pdf_is_a_permanent_error(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="order pi_3Render: cannot read invoice PDF"):
        render(make_order(), tmp_path / "missing.pdf")


def test_presigned_label_link_is_in_both_parts(invoice_pdf: Path) -> None:
    """With S3 the label is a presigned https link; it appears in the text and the HTML."""
    import email as email_lib
    from email.policy import default as default_policy

    from orderpipe.connectors.base import StoredFile
    from orderpipe.email.render import render_confirmation

    order, shipped, billed = make_order(), shipment(), invoice(invoice_pdf)
    url = "https://s3.example/labels/pi_x.pdf?X-Amz-Signature=abc"
    shipped = shipped.model_copy(update={"label": StoredFile(key="labels/pi_x.pdf", url=url)})
    rendered = render_confirmation(order, shipped, billed, sender="Shop <shop@example.fi>", seller_name="Shop",
                                   reply_to=None)
    msg = email_lib.message_from_bytes(rendered.message.as_bytes(), policy=default_policy)
    assert url in msg.get_body(("plain",)).get_content()
    assert "X-Amz-Signature=abc" in msg.get_body(("html",)).get_content()
    assert rendered.variables["label_url"] == url


def test_shipping_line_is_named_in_the_customers_language(invoice_pdf: Path) -> None:
    from orderpipe.email.render import render_confirmation

    lines = [
        OrderLine(description="Poster", quantity=1, amount_subtotal=3990, amount_total=3990, amount_tax=795),
        OrderLine(description="Shipping", quantity=1, amount_subtotal=1000, amount_total=1000, amount_tax=199,
                  is_shipping=True),
    ]
    for locale, word in (("de", "Versand"), ("sv", "Frakt"), ("en", "Shipping")):
        rendered = render_confirmation(make_order(locale=locale, lines=lines), shipment(), invoice(invoice_pdf),
                                       sender="Shop <shop@example.fi>", seller_name="Shop", reply_to=None)
        text = rendered.message.get_body(("plain",)).get_content()
        assert f"- {word} (" in text
