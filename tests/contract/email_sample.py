"""A sample order and a rendered confirmation like ``orderpipe.email.render`` produces."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

from orderpipe.order import Address, Order, OrderLine

PDF = b"%PDF-1.4\n% sample invoice\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
FROM = "Painotalo Pikkuna <orders@mg.example.fi>"


def sample_order(order_id: str = "pi_3Pabc123") -> Order:
    return Order(
        order_id=order_id, created=datetime(2026, 5, 10, 10, 0, tzinfo=UTC), currency="eur",
        amount_total=5390, amount_tax=400, amount_shipping=990, customer_email="anna@example.fi",
        customer_name="Anna Virtanen", locale="fi", reference="A-1001",
        shipping_address=Address(name="Anna Virtanen", line1="Katu 1", postal_code="00100", city="Helsinki",
                                 country="FI"),
        lines=[
            OrderLine(description="Muki", quantity=2, unit_amount=2000, amount_subtotal=4000, amount_tax=400,
                      amount_total=4400),
            OrderLine(description="Toimitus", quantity=1, amount_subtotal=990, amount_total=990, is_shipping=True),
        ],
    )


def sample_message(order: Order, *, subject: str = "Tilausvahvistus A-1001", message_id: str | None = None,
                   sender: str = FROM) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "Anna Virtanen <anna@example.fi>"
    msg["Subject"] = subject
    msg["Message-ID"] = message_id or f"<random.{order.order_id}@renderer.example>"
    msg.set_content("Kiitos tilauksestasi! Seurantanumero: JJFI64000000000001")
    msg.add_alternative("<p>Kiitos tilauksestasi! Seurantanumero: <b>JJFI64000000000001</b></p>", subtype="html")
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="INV-2026-000001.pdf")
    # After the parts: add_alternative/add_attachment move Content-* headers into the first part.
    msg["Content-Language"] = "fi"
    return msg


VARIABLES = {"order_ref": "A-1001", "total": "53,90 €", "tracking_number": "JJFI64000000000001",
             "customer_name": "Anna Virtanen"}
