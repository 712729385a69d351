"""The real rendered confirmation (``email_render``) through each email API stand-in."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from reportlab.pdfgen.canvas import Canvas
from sqlalchemy import Engine

from orderpipe.connectors.base import InvoiceResult, ShipmentResult, StoredFile
from orderpipe.email.mailgun import MailgunEmail
from orderpipe.email.render import RenderedEmail, render_confirmation
from orderpipe.email.resend import ResendEmail
from orderpipe.email.smtp import SmtpEmail
from orderpipe.order import Address, Order, OrderLine
from orderpipe.settings import load_settings
from tests.standins.mailgun import MailgunStandIn
from tests.standins.resend import ResendStandIn
from tests.standins.smtp import SmtpStandIn

ORDER = "pi_3Rendered"
MESSAGE_ID = f"<order-confirmation.{ORDER}@pikkuna.example>"


@pytest.fixture
def rendered(tmp_path: Path) -> tuple[Order, RenderedEmail, bytes]:
    order = Order(
        order_id=ORDER, created=datetime(2026, 11, 23, 12, 0, tzinfo=UTC), currency="eur", amount_total=4990,
        amount_tax=994, customer_email="asa@example.se", customer_name="Åsa Öberg-Ståhl", locale="sv",
        shipping_address=Address(name="Åsa Öberg-Ståhl", line1="Storgatan 1", postal_code="11122",
                                 city="Stockholm", country="SE"),
        lines=[OrderLine(description="Affisch A3", quantity=2, amount_subtotal=3990, amount_total=3990,
                         amount_tax=795),
               OrderLine(description="Frakt", quantity=1, amount_subtotal=1000, amount_total=1000, amount_tax=199,
                         is_shipping=True)],
    )
    pdf_path = tmp_path / "2026-000001.pdf"
    canvas = Canvas(str(pdf_path))
    canvas.drawString(72, 720, "Invoice 2026-000001")
    canvas.save()
    shipment = ShipmentResult(tracking_number="CP000000014FI", carrier="local",
                              tracking_url="https://tracking.example/track?id=CP000000014FI",
                              label=StoredFile(key=f"labels/{ORDER}.pdf"), created=True)
    invoice = InvoiceResult(invoice_number="2026-000001", issue_date="2026-11-23", currency="eur",
                            amount_total=4990, amount_tax=994, pdf_path=str(pdf_path), created=True)
    email = render_confirmation(order, shipment, invoice, sender="Painotalo Pikkuna <orders@pikkuna.example>",
                                seller_name="Painotalo Pikkuna Oy", reply_to="help@pikkuna.example")
    return order, email, pdf_path.read_bytes()


def test_smtp_delivers_the_rendered_message(rendered: tuple[Order, RenderedEmail, bytes], engine: Engine,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    order, email, pdf = rendered
    with SmtpStandIn() as smtp:
        monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("SMTP_PORT", str(smtp.port))
        monkeypatch.setenv("SMTP_STARTTLS", "false")
        result = SmtpEmail(load_settings(), engine).send(order, email.message, language=email.language,
                                                         variables=email.variables)
        [captured] = smtp.messages
    got = captured.message
    assert got["Message-ID"] == MESSAGE_ID == result.message_id
    assert got["Content-Language"] == email.language
    assert "CP000000014FI" in got.get_body(preferencelist=("plain",)).get_content()
    assert [p.get_payload(decode=True) for p in got.iter_attachments()] == [pdf]


def test_resend_posts_the_rendered_parts(rendered: tuple[Order, RenderedEmail, bytes], engine: Engine,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    order, email, pdf = rendered
    with ResendStandIn(api_key="re_test") as resend:
        monkeypatch.setenv("RESEND_API_KEY", "re_test")
        monkeypatch.setenv("RESEND_API_BASE", resend.url)
        ResendEmail(load_settings(), engine).send(order, email.message, language=email.language,
                                                  variables=email.variables)
        [payload] = resend.emails.values()
    assert payload["to"] == ["asa@example.se"] and payload["reply_to"] == "help@pikkuna.example"
    assert "CP000000014FI" in payload["text"] and "CP000000014FI" in payload["html"]
    assert [base64.b64decode(a["content"]) for a in payload["attachments"]] == [pdf]


def test_mailgun_sends_template_variables_and_the_pdf(rendered: tuple[Order, RenderedEmail, bytes],
                                                      engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    order, email, pdf = rendered
    with MailgunStandIn(api_key="key-t", domain="mg.pikkuna.example") as mailgun:
        for name, value in (("MAILGUN_API_KEY", "key-t"), ("MAILGUN_DOMAIN", "mg.pikkuna.example"),
                            ("MAILGUN_TEMPLATE", "order-confirmation"), ("MAILGUN_API_BASE", mailgun.url)):
            monkeypatch.setenv(name, value)
        MailgunEmail(load_settings(), engine).send(order, email.message, language=email.language,
                                                   variables=email.variables)
        [message] = mailgun.messages
    assert json.loads(message.one("t:variables") or "{}") == {"language": email.language, **email.variables}
    assert message.one("h:Message-Id") == MESSAGE_ID
    assert [data for _name, _type, data in message.files["attachment"]] == [pdf]
