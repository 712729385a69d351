"""The email ledger on SQLite and Postgres: one record per order, the first one wins."""

from __future__ import annotations

from orderpipe.connectors.base import EmailResult
from orderpipe.db import get_engine
from orderpipe.email.ledger import (
    already_sent,
    confirmation_message_id,
    domain_of,
    idempotency_key,
    record_sent,
)


def test_first_record_wins(any_db_url: str) -> None:
    engine = get_engine(any_db_url)
    assert already_sent(engine, "pi_1") is None
    first = EmailResult(message_id="<a@x>", language="fi", transport="smtp", location="h:587", created=True)
    assert record_sent(engine, "pi_1", first) == first
    second = first.model_copy(update={"message_id": "<b@x>"})
    stored = record_sent(engine, "pi_1", second)
    assert stored.message_id == "<a@x>" and stored.created is False
    assert already_sent(engine, "pi_1") == first.model_copy(update={"created": False})


def test_deterministic_ids() -> None:
    assert idempotency_key("pi_1") == "order-confirmation/pi_1"
    assert confirmation_message_id("pi_1", domain_of("Shop <orders@Shop.Example.fi>")) == \
        "<order-confirmation.pi_1@shop.example.fi>"
    assert confirmation_message_id("pi/1 x", "") == "<order-confirmation.pi-1-x@orderpipe.invalid>"
