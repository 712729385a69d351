"""Free Checkout orders (contract, "Order identity"): `no_payment_required`, no PaymentIntent.

The receiver accepts them under the Checkout Session id; the flow run `order-cs_...` reads
the session back from Stripe and fulfils it with a zero invoice."""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from email.policy import default
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client

from flows.process_order import process_order
from orderpipe import ledger
from orderpipe.db import get_engine
from orderpipe.stripe_api.standin import StandinStore
from orderpipe.stripe_api.standin.samples import add_free_order
from tests.flow_env import flow_settings
from tests.signing import event, sign
from tests.standins.stripe import running_standin
from webhook.app import create_app

SECRET = "whsec_free_orders"
FREE = "cs_test_a1SampleFreeOrder0001"


def free_session_event(event_id: str, session_id: str = FREE) -> bytes:
    return event(event_id, "checkout.session.completed",
                 {"id": session_id, "object": "checkout.session", "payment_intent": None,
                  "payment_status": "no_payment_required", "status": "complete", "amount_total": 0})


def test_free_checkout_is_accepted_under_its_session_id(any_db_url: str) -> None:
    client = create_app(engine=get_engine(any_db_url), secrets=[SECRET]).test_client()
    body = free_session_event("evt_free1")
    r = client.post("/webhooks/stripe", data=body, headers={"Stripe-Signature": sign(body, SECRET)})
    assert r.status_code == 200 and r.get_json() == {"status": "accepted", "event_id": "evt_free1", "order_id": FREE}
    again = free_session_event("evt_free2")
    r = client.post("/webhooks/stripe", data=again, headers={"Stripe-Signature": sign(again, SECRET)})
    assert r.get_json()["status"] == "duplicate"
    row = ledger.get_order(get_engine(any_db_url), FREE)
    assert row is not None and row.dispatch == "pending"
    assert set(ledger.steps_of(get_engine(any_db_url), FREE).values()) == {"pending"}


@pytest.fixture
def standin() -> Iterator[tuple[str, StandinStore]]:
    with running_standin(seed=True) as pair:
        yield pair


def test_free_order_is_fulfilled_with_a_zero_invoice(prefect_api: str, standin: tuple[str, StandinStore],
                                                     data_dir: Path, sqlite_url: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    base, store = standin
    order_id = add_free_order(store, FREE)
    assert order_id == FREE
    engine = get_engine(sqlite_url)
    client = create_app(engine=engine, secrets=[SECRET]).test_client()
    body = free_session_event("evt_free_flow")
    assert client.post("/webhooks/stripe", data=body,
                       headers={"Stripe-Signature": sign(body, SECRET)}).get_json()["order_id"] == FREE
    with flow_settings(monkeypatch, prefect_api, data_dir, sqlite_url, base):
        result = process_order(order_id=FREE)
        assert result["steps"] == {s: "completed" for s in ledger.STEPS}
        row = ledger.get_order(engine, FREE)
        assert row is not None and row.state == "completed" and row.amount_total == 0 and row.currency == "eur"
        assert (data_dir / "labels" / f"{FREE}.pdf").read_bytes().startswith(b"%PDF")
        xml = (data_dir / "invoices" / f"{row.invoice_number}.xml").read_text()
        assert re.search(r"<cbc:PayableAmount currencyID=\"EUR\">0(\.00)?</cbc:PayableAmount>", xml), xml
        assert "Greeting card set" in xml
        msg = email.message_from_bytes((data_dir / "outbox" / f"{FREE}.eml").read_bytes(), policy=default)
        assert row.tracking_number and row.tracking_number in msg.get_body(("plain",)).get_content()
        with get_client(sync_client=True) as prefect:
            run = prefect.read_flow_run(row.flow_run_id)
        assert run.name == f"order-{FREE}"
    reads = [r["path"] for r in store.request_log()]
    assert f"/v1/checkout/sessions/{FREE}" in reads and f"/v1/checkout/sessions/{FREE}/line_items" in reads
    assert not any(p.startswith("/v1/payment_intents") for p in reads)
