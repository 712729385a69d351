"""The receiver against a real database: every answer of the contract."""

from __future__ import annotations

import json
import threading
import time

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlmodel import Session

from orderpipe.alerting.alerts import list_alerts
from orderpipe.connectors.base import Alert
from orderpipe.db import get_engine
from orderpipe.tables import Event, OrderRecord
from tests.conftest import free_port
from tests.signing import event, sign
from webhook.app import create_app


class CollectingAlerts:
    """An AlertSink that keeps what it was sent."""

    name = "collect"

    def __init__(self) -> None:
        self.sent: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.sent.append(alert)

    def check(self) -> None:
        pass


SECRET = "whsec_test_current"
OLD_SECRET = "whsec_test_previous"


def make_client(db_url: str, probe_ok: bool = True) -> FlaskClient:
    app = create_app(engine=get_engine(db_url), secrets=[SECRET, OLD_SECRET], prefect_probe=lambda: probe_ok)
    return app.test_client()


def post(client: FlaskClient, body: bytes, header: str | None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["Stripe-Signature"] = header
    r = client.post("/webhooks/stripe", data=body, headers=headers)
    return r.status_code, r.get_json()


def paid_session(pi: str, status: str = "paid") -> dict:
    return {"id": f"cs_{pi}", "object": "checkout.session", "payment_intent": pi, "payment_status": status}


def count(db_url: str, model: type) -> int:
    with Session(get_engine(db_url)) as s:
        return len(s.scalars(select(model)).all())


@pytest.fixture
def client(any_db_url: str) -> FlaskClient:
    return make_client(any_db_url)


def test_accepts_paid_checkout_then_sibling_is_duplicate(client: FlaskClient, any_db_url: str) -> None:
    body = event("evt_1", "checkout.session.completed", paid_session("pi_A1"))
    assert post(client, body, sign(body, SECRET)) == (
        200, {"status": "accepted", "event_id": "evt_1", "order_id": "pi_A1"})
    sibling = event("evt_2", "payment_intent.succeeded", {"id": "pi_A1", "object": "payment_intent"})
    assert post(client, sibling, sign(sibling, SECRET))[1]["status"] == "duplicate"
    assert post(client, body, sign(body, SECRET))[1]["status"] == "duplicate"  # redelivery
    assert count(any_db_url, OrderRecord) == 1 and count(any_db_url, Event) == 2


def test_payment_intent_first_then_checkout(client: FlaskClient) -> None:
    pi = event("evt_p", "payment_intent.succeeded", {"id": "pi_B2", "object": "payment_intent"})
    assert post(client, pi, sign(pi, SECRET))[1] == {"status": "accepted", "event_id": "evt_p", "order_id": "pi_B2"}
    cs = event("evt_c", "checkout.session.completed", paid_session("pi_B2"))
    assert post(client, cs, sign(cs, SECRET))[1]["status"] == "duplicate"


def test_old_secret_still_verifies_during_rotation(client: FlaskClient) -> None:
    body = event("evt_r", "checkout.session.async_payment_succeeded", paid_session("pi_R"))
    assert post(client, body, sign(body, OLD_SECRET))[1]["status"] == "accepted"


@pytest.mark.parametrize(
    "header, fragment",
    [
        (None, "missing Stripe-Signature"),
        ("garbage", "signature verification failed"),
        ("t=123", "signature verification failed"),
    ],
)
def test_bad_signatures_are_400_and_record_nothing(client: FlaskClient, any_db_url: str, header: str | None,
                                                   fragment: str) -> None:
    body = event("evt_x", "payment_intent.succeeded", {"id": "pi_X"})
    status, payload = post(client, body, header)
    assert status == 400 and fragment in payload["error"]
    assert count(any_db_url, Event) == 0


def test_wrong_secret_and_stale_timestamp_are_400(client: FlaskClient, any_db_url: str) -> None:
    body = event("evt_w", "payment_intent.succeeded", {"id": "pi_W"})
    status, payload = post(client, body, sign(body, "whsec_wrong"))
    assert status == 400 and "No signatures found" in payload["error"]
    status, payload = post(client, body, sign(body, SECRET, timestamp=int(time.time()) - 301))
    assert status == 400 and "tolerance" in payload["error"].lower()
    tampered = body.replace(b"pi_W", b"pi_V")
    assert post(client, tampered, sign(body, SECRET))[0] == 400
    assert count(any_db_url, Event) == 0


def test_signed_non_event_is_400(client: FlaskClient) -> None:
    for body in (b"not json", b"[1,2]", json.dumps({"id": "x", "object": "charge"}).encode()):
        status, payload = post(client, body, sign(body, SECRET))
        assert status == 400 and "error" in payload


def test_body_over_one_mib_is_413(client: FlaskClient) -> None:
    body = b"{" + b" " * (1024 * 1024 + 10) + b"}"
    status, payload = post(client, body, sign(body, SECRET))
    assert status == 413 and "larger" in payload["error"]


def test_ignored_types_and_unpaid_sessions(client: FlaskClient, any_db_url: str) -> None:
    body = event("evt_i", "customer.created", {"id": "cus_1", "object": "customer"})
    assert post(client, body, sign(body, SECRET))[1] == {"status": "ignored", "event_id": "evt_i", "order_id": None}
    unpaid = event("evt_u", "checkout.session.completed", paid_session("pi_U", status="unpaid"))
    assert post(client, unpaid, sign(unpaid, SECRET))[1]["status"] == "ignored"
    assert count(any_db_url, OrderRecord) == 0 and count(any_db_url, Event) == 2


def test_payment_failed_raises_one_alert_and_starts_nothing(client: FlaskClient, any_db_url: str) -> None:
    obj = {"id": "pi_F", "object": "payment_intent", "last_payment_error": {"message": "Your card was declined."}}
    body = event("evt_f", "payment_intent.payment_failed", obj)
    assert post(client, body, sign(body, SECRET))[1]["status"] == "ignored"
    assert post(client, body, sign(body, SECRET))[1]["status"] == "duplicate"
    found = list_alerts(get_engine(any_db_url), "pi_F")
    assert len(found) == 1 and "declined" in found[0].message and found[0].kind == "payment_failed"
    assert count(any_db_url, OrderRecord) == 0


def test_concurrent_deliveries_record_one_order(any_db_url: str) -> None:
    client_pool = [make_client(any_db_url) for _ in range(4)]
    body = event("evt_c20", "checkout.session.completed", paid_session("pi_C20"))
    sibling = event("evt_s20", "payment_intent.succeeded", {"id": "pi_C20", "object": "payment_intent"})
    results: list[str] = []

    def deliver(i: int) -> None:
        b = sibling if i == 7 else body
        results.append(post(client_pool[i % 4], b, sign(b, SECRET))[1]["status"])

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(21)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results).count("accepted") == 1 and results.count("duplicate") == 20
    assert count(any_db_url, OrderRecord) == 1


def test_database_down_is_503_and_health_says_so() -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"
    client = make_client(url)
    body = event("evt_d", "payment_intent.succeeded", {"id": "pi_D"})
    status, payload = post(client, body, sign(body, SECRET))
    assert status == 503 and "retry" in payload["error"]
    r = client.get("/healthz")
    assert r.status_code == 503 and r.get_json()["database"] == "unreachable"


def test_health_reports_prefect_unreachable_but_still_accepts(sqlite_url: str) -> None:
    client = make_client(sqlite_url, probe_ok=False)
    r = client.get("/healthz")
    assert r.status_code == 200 and r.get_json() == {"status": "ok", "database": "ok", "prefect": "unreachable"}
    body = event("evt_h", "payment_intent.succeeded", {"id": "pi_H"})
    assert post(client, body, sign(body, SECRET))[1]["status"] == "accepted"


def test_create_app_refuses_without_secret(sqlite_url: str) -> None:
    with pytest.raises(ValueError, match="STRIPE_WEBHOOK_SECRET"):
        create_app(engine=get_engine(sqlite_url), secrets=[])
