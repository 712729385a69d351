"""The receiver under hostile input and failing neighbours (issue 9).

- any body that is not a valid event is a 400, whatever breaks while parsing it (fuzzed:
  signed and unsigned garbage; `ORDERPIPE_FUZZ_EXAMPLES` asks for more examples);
- the receiver only records: no vendor I/O in the request, no vendor setting needed; the
  worker's outbox delivers the alert, once;
- SQLite: reads (health, polls) and redeliveries never wait for the write lock.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select
from sqlmodel import Session

from orderpipe import alerts, ledger
from orderpipe.db import get_engine, session_scope
from orderpipe.settings import load_settings
from orderpipe.tables import AlertRecord, Event, OrderRecord, utcnow
from tests.signing import event, sign
from tests.standins.slack import SlackStandIn, rollup_error
from tests.standins.wsgi_thread import Delay
from webhook.app import create_app

SECRET = "whsec_fuzz_current"
FUZZ_EXAMPLES = int(os.environ.get("ORDERPIPE_FUZZ_EXAMPLES", "200"))


def client_for(db_url: str) -> FlaskClient:
    return create_app(engine=get_engine(db_url), secrets=[SECRET], prefect_probe=lambda: True).test_client()


def post(client: FlaskClient, body: bytes, header: str | None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["Stripe-Signature"] = header
    r = client.post("/webhooks/stripe", data=body, headers=headers)
    return r.status_code, r.get_json()


def events_in(db_url: str) -> int:
    with Session(get_engine(db_url)) as s:
        return len(s.scalars(select(Event.id)).all())


# ---- 1. whatever breaks while parsing is a 400 ------------------------------------------

def test_signed_body_nested_100000_deep_is_400(any_db_url: str) -> None:
    client = client_for(any_db_url)
    for body in (b"[" * 100_000 + b"]" * 100_000,
                 b'{"object":"event","id":"evt_n","type":"x","data":' + b'{"a":' * 100_000 + b"1" + b"}" * 100_001,
                 b'{"object":"event","id":"evt_big","type":"x","data":{},"n":' + b"9" * 5000 + b"}"):
        status, payload = post(client, body, sign(body, SECRET))
        assert status == 400 and "error" in payload
    assert events_in(any_db_url) == 0


def test_signed_events_with_values_a_database_refuses_are_400_or_recorded(any_db_url: str) -> None:
    """A NUL, a lone surrogate, a 300-character id or type: 400 (or safely recorded), never 503."""
    client = client_for(any_db_url)
    odd = [
        {"id": "evt_\u0000", "type": "payment_intent.succeeded", "obj": {"id": "pi_1"}},
        {"id": "evt_" + "a" * 300, "type": "payment_intent.succeeded", "obj": {"id": "pi_2"}},
        {"id": "evt_t", "type": "x" * 300, "obj": {}},
        {"id": "evt_p", "type": "payment_intent.succeeded", "obj": {"id": "pi_" + "9" * 300}},
        {"id": "evt_s", "type": "payment_intent.payment_failed",
         "obj": {"id": "pi_s", "last_payment_error": {"message": "bad \ud800 \u0000 card"}}},
        {"id": "evt_f0", "type": "checkout.session.async_payment_failed", "obj": None},  # found by the fuzzer
        {"id": "evt_f1", "type": "payment_intent.payment_failed", "obj": {"id": "pi_f1", "last_payment_error": [1]}},
        {"id": "evt_u", "type": "checkout.session.completed",
         "obj": {"id": "cs_u", "payment_intent": "pi_u", "payment_status": "\u0000\ud800"}},
    ]
    for e in odd:
        body = event(e["id"], e["type"], e["obj"])
        if e["obj"] is None:
            body = body.replace(b'"data": {"object": null}', b'"data": {}')
        status, _ = post(client, body, sign(body, SECRET))
        assert status in (200, 400), (e, status)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
TYPES = st.sampled_from([
    "payment_intent.succeeded", "checkout.session.completed", "checkout.session.async_payment_succeeded",
    "payment_intent.payment_failed", "checkout.session.async_payment_failed", "charge.refunded",
    "customer.created",
]) | st.text(max_size=120)
IDS = st.from_regex(r"evt_[A-Za-z0-9]{1,24}", fullmatch=True) | st.text(max_size=300)
OBJECT = st.fixed_dictionaries(
    {},
    optional={"id": st.from_regex(r"(pi|cs)_[A-Za-z0-9]{1,20}", fullmatch=True) | st.text(max_size=300) | JSON,
              "object": st.sampled_from(["payment_intent", "checkout.session"]) | JSON,
              "payment_intent": st.from_regex(r"pi_[A-Za-z0-9]{1,20}", fullmatch=True) | JSON,
              "payment_status": st.sampled_from(["paid", "unpaid", "no_payment_required"]) | JSON,
              "last_payment_error": st.fixed_dictionaries({"message": st.text(max_size=50)}) | JSON},
)
EVENTS = st.fixed_dictionaries(
    {"id": IDS, "object": st.just("event") | JSON, "type": TYPES, "data": st.fixed_dictionaries({"object": OBJECT})
     | JSON},
    optional={"livemode": JSON, "created": JSON},
)
NESTED = st.integers(min_value=1, max_value=200_000).map(lambda n: b"[" * n + b"]" * n)
BODIES = EVENTS.map(lambda e: json.dumps(e).encode()) | st.binary(max_size=300) | NESTED | JSON.map(
    lambda j: json.dumps(j).encode())
HEADER_TEXT = st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f")  # what HTTP carries
HEADERS = st.none() | st.text(HEADER_TEXT, max_size=80) | st.builds(
    lambda t, sig: f"t={t},v1={sig}", st.integers() | st.text(HEADER_TEXT, max_size=12),
    st.text(HEADER_TEXT, max_size=70))


@pytest.fixture
def fuzz_client(any_db_url: str) -> Iterator[tuple[FlaskClient, str]]:
    yield client_for(any_db_url), any_db_url


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                           HealthCheck.too_slow,
                                                                           HealthCheck.data_too_large])
@given(body=BODIES, header=HEADERS, how=st.sampled_from(["unsigned", "forged", "wrong-secret", "tampered", "signed"]))
def test_fuzzed_requests_never_5xx_and_no_forgery_is_accepted(fuzz_client: tuple[FlaskClient, str], body: bytes,
                                                              header: str | None, how: str) -> None:
    client, db_url = fuzz_client
    before = events_in(db_url)
    if how == "signed":
        status, payload = post(client, body, sign(body, SECRET))
        assert status in (200, 400), (status, payload)
        if status == 200:
            assert payload["status"] in ("accepted", "duplicate", "ignored")
        return
    if how == "wrong-secret":
        header = sign(body, "whsec_someone_else")
    elif how == "tampered":
        header = sign(body, SECRET)
        body = body + b" "
    elif how == "forged":
        header = f"t={int(time.time())},v1={'0' * 64}"
    status, payload = post(client, body, header)
    assert status == 400 and "error" in payload, (status, payload)
    assert events_in(db_url) == before


# ---- 2. the receiver only records ----------------------------------------------------------

@pytest.fixture
def receiver_env(monkeypatch: pytest.MonkeyPatch, sqlite_url: str, data_dir: Path) -> str:
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("ORDERPIPE_DATA_DIR", str(data_dir))
    return sqlite_url


def failed_payment(event_id: str = "evt_pf1", pi: str = "pi_PF1") -> bytes:
    return event(event_id, "payment_intent.payment_failed",
                 {"id": pi, "object": "payment_intent", "last_payment_error": {"message": "Your card was declined."}})


def test_missing_netvisor_setting_does_not_stop_the_receiver(receiver_env: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from webhook.wsgi import application

    monkeypatch.setenv("ORDERPIPE_INVOICING", "netvisor")  # and no NETVISOR_* at all
    monkeypatch.setenv("ORDERPIPE_ALERTS", "telegram")  # nor TELEGRAM_*
    client = application().test_client()
    body = event("evt_nv", "payment_intent.succeeded", {"id": "pi_NV", "object": "payment_intent"})
    assert post(client, body, sign(body, SECRET))[1]["status"] == "accepted"
    with pytest.raises(Exception, match="NETVISOR_SENDER"):  # the worker still refuses, naming it
        load_settings()


def test_receiver_answers_fast_while_slack_hangs_and_the_worker_delivers_once(receiver_env: str,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from orderpipe.bootstrap import build_alert_sink
    from webhook.wsgi import application

    with SlackStandIn() as slack:
        monkeypatch.setenv("ORDERPIPE_ALERTS", "slack")
        monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.webhook_url)
        slack.inject(Delay(15), Delay(15))
        client = application().test_client()
        body = failed_payment()
        t0 = time.monotonic()
        status, payload = post(client, body, sign(body, SECRET))
        assert (status, payload["status"]) == (200, "ignored")
        assert time.monotonic() - t0 < 2.0  # Slack would hold it 15 s
        assert slack.requests == []  # no vendor I/O in the request
        [row] = alerts.list_alerts(get_engine(receiver_env), "pi_PF1")
        assert row.kind == "payment_failed" and not row.delivered

    with SlackStandIn() as slack:  # the worker side, Slack answering again
        monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.webhook_url)
        engine = get_engine(receiver_env)
        sink = build_alert_sink(load_settings())
        outboxes = [alerts.Outbox(engine, sink) for _ in range(3)]  # three workers at once
        threads = [threading.Thread(target=o.deliver_pending) for o in outboxes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(o.deliver_pending() for o in outboxes) == 0  # nothing left
        assert len(slack.messages) == 1 and "declined" in slack.messages[0]["text"]
        assert alerts.list_alerts(engine, "pi_PF1")[0].delivered


def test_outbox_retries_a_failed_delivery_with_backoff_and_sends_once(any_db_url: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from orderpipe.alerting.slack import SlackAlerts

    engine = get_engine(any_db_url)
    client = client_for(any_db_url)
    body = failed_payment("evt_pf2", "pi_PF2")
    post(client, body, sign(body, SECRET))
    now = [0.0]
    with SlackStandIn() as slack:
        monkeypatch.setenv("ORDERPIPE_ALERTS", "slack")
        monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.webhook_url)
        outbox = alerts.Outbox(engine, SlackAlerts(load_settings(), sleep=lambda _s: None), clock=lambda: now[0])
        slack.inject(*[rollup_error()] * 6)  # the sink's own retries included
        assert outbox.deliver_pending() == 0
        tried = len(slack.requests)
        assert tried >= 1 and outbox.deliver_pending() == 0 and len(slack.requests) == tried  # backing off
        slack.inject()
        now[0] = 1000.0
        while len(slack.messages) == 0 and now[0] < 5000:
            outbox.deliver_pending()
            now[0] += 400
        assert len(slack.messages) == 1
        now[0] += 10_000
        assert outbox.deliver_pending() == 0 and len(slack.messages) == 1


# ---- 3. SQLite: reads and redeliveries never wait for the write lock ---------------------

def hold_write_lock(db_url: str, seconds: float, held: threading.Event) -> threading.Thread:
    def writer() -> None:
        with session_scope(get_engine(db_url)) as s:
            s.execute(insert(AlertRecord).values(dedupe_key="lock-holder", kind="test", message="x",
                                                 delivered=True, created_at=utcnow()))
            held.set()
            time.sleep(seconds)

    t = threading.Thread(target=writer)
    t.start()
    assert held.wait(5)
    return t


def test_sqlite_reads_and_redeliveries_do_not_wait_for_a_writer(sqlite_url: str) -> None:
    client = client_for(sqlite_url)
    body = event("evt_rd", "payment_intent.succeeded", {"id": "pi_RD", "object": "payment_intent"})
    assert post(client, body, sign(body, SECRET))[1]["status"] == "accepted"
    writer = hold_write_lock(sqlite_url, 4.0, threading.Event())
    try:
        t0 = time.monotonic()
        assert client.get("/healthz").status_code == 200
        assert ledger.due_for_dispatch(get_engine(sqlite_url)) == ["pi_RD"]
        assert ledger.get_order(get_engine(sqlite_url), "pi_RD") is not None
        assert post(client, body, sign(body, SECRET))[1]["status"] == "duplicate"
        assert time.monotonic() - t0 < 2.5  # the writer holds its lock for 4 s
    finally:
        writer.join()
    with Session(get_engine(sqlite_url)) as s:
        assert len(s.scalars(select(OrderRecord)).all()) == 1
