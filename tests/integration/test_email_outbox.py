"""The outbox email transport: one .eml file and one emails row per order."""

from __future__ import annotations

from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
from reportlab.pdfgen.canvas import Canvas
from sqlalchemy import Engine
from sqlmodel import Session, select

from orderpipe.connectors.base import EmailResult, InvoiceResult, ShipmentResult, StoredFile
from orderpipe.db import get_engine
from orderpipe.email.outbox import OutboxEmail
from orderpipe.email.render import RenderedEmail, render_confirmation
from orderpipe.errors import OrderDataError, PermanentError
from orderpipe.order import Address, Order, OrderLine
from orderpipe.tables import EmailSent

TRACKING = "CP000000014FI"


def make_order(**kw: object) -> Order:
    values: dict[str, object] = {
        "order_id": "pi_3Mail",
        "created": datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        "currency": "eur",
        "amount_total": 4990,
        "customer_email": "kunde@example.de",
        "customer_name": "Jürgen Groß",
        "locale": "de",
        "shipping_address": Address(name="Jürgen Groß", line1="Hauptstraße 5", postal_code="10115", city="Berlin",
                                    country="DE"),
        "lines": [OrderLine(description="Plakat", quantity=1, amount_subtotal=4990, amount_total=4990)],
    }
    values.update(kw)
    return Order.model_validate(values)


def rendered(order: Order, tmp_path: Path) -> RenderedEmail:
    pdf = tmp_path / "RE-2026-1.pdf"
    c = Canvas(str(pdf))
    c.drawString(72, 720, "Rechnung")
    c.save()
    shipment = ShipmentResult(tracking_number=TRACKING, carrier="local", tracking_url=f"https://t.example/{TRACKING}",
                              label=StoredFile(key="labels/pi_3Mail.pdf"), created=True)
    invoice = InvoiceResult(invoice_number="RE-2026-1", issue_date="2026-11-23", currency="eur", amount_total=4990,
                            amount_tax=797, pdf_path=str(pdf), created=True)
    return render_confirmation(order, shipment, invoice, sender="Shop <orders@shop.example>", seller_name="Shop",
                               reply_to=None)


def send(outbox: OutboxEmail, order: Order, email: RenderedEmail) -> EmailResult:
    return outbox.send(order, email.message, language=email.language, variables=email.variables)


def test_send_writes_the_eml_and_records_it(engine: Engine, data_dir: Path, tmp_path: Path) -> None:
    order = make_order()
    email = rendered(order, tmp_path)
    result = send(OutboxEmail(engine, data_dir), order, email)
    path = data_dir / "outbox" / "pi_3Mail.eml"
    assert result.created is True
    assert result.transport == "outbox"
    assert result.language == "de"
    assert result.message_id == "<order-confirmation.pi_3Mail@shop.example>"
    assert result.location == str(path.resolve())
    raw = path.read_bytes()
    assert raw == email.message.as_bytes()
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Content-Language"] == "de"
    assert parsed["Subject"] == "Bestellbestätigung pi_3Mail"
    text = parsed.get_body(preferencelist=("plain",))
    assert text is not None and TRACKING in text.get_content()
    attachments = list(parsed.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["RE-2026-1.pdf"]
    assert [p.name for p in path.parent.iterdir()] == ["pi_3Mail.eml"]  # no temp file left behind
    with Session(engine) as session:
        row = session.get(EmailSent, "pi_3Mail")
    assert row is not None and row.location == str(path.resolve())


def test_repeat_writes_nothing(engine: Engine, data_dir: Path, tmp_path: Path) -> None:
    order = make_order()
    email = rendered(order, tmp_path)
    outbox = OutboxEmail(engine, data_dir)
    first = send(outbox, order, email)
    path = data_dir / "outbox" / "pi_3Mail.eml"
    path.unlink()
    second = send(outbox, order, email)
    assert second.created is False
    assert second.message_id == first.message_id
    assert second.location == first.location
    assert not path.exists()  # already sent: the outbox does not send twice
    with Session(engine) as session:
        assert len(session.exec(select(EmailSent)).all()) == 1


def test_idempotent_on_both_databases(any_db_url: str, data_dir: Path, tmp_path: Path) -> None:
    order = make_order()
    email = rendered(order, tmp_path)
    outbox = OutboxEmail(get_engine(any_db_url), data_dir)
    assert [send(outbox, order, email).created for _ in range(2)] == [True, False]


def test_order_without_email_is_refused(engine: Engine, data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(OrderDataError, match="order pi_3Mail has no customer email"):
        rendered(make_order(customer_email=None), tmp_path)
    assert not (data_dir / "outbox").exists()


def test_check(engine: Engine, data_dir: Path, tmp_path: Path) -> None:
    OutboxEmail(engine, data_dir).check()
    assert (data_dir / "outbox").is_dir()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PermanentError, match="email outbox: cannot write to"):
        OutboxEmail(engine, blocker).check()


def test_unwritable_outbox_names_the_order(engine: Engine, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    order = make_order()
    with pytest.raises(PermanentError, match="order pi_3Mail: outbox cannot write pi_3Mail.eml"):
        send(OutboxEmail(engine, blocker), order, rendered(order, tmp_path))
    with Session(engine) as session:
        assert session.get(EmailSent, "pi_3Mail") is None
