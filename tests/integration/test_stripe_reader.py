"""StripeReader against the Stripe stand-in on a free port (real HTTP, stripe-python's client)."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from orderpipe.errors import OrderDataError, PermanentError, TransientError
from orderpipe.states import DISPUTE_TYPES
from orderpipe.stripe_api.normalise import normalise
from orderpipe.stripe_api.reader import StripeReader
from orderpipe.stripe_api.standin import SAMPLE_ORDER_IDS, StandinStore
from orderpipe.stripe_api.standin import samples as s
from orderpipe.stripe_api.standin.events import close_dispute, open_dispute, order_event
from tests.standins.stripe import STANDIN_KEY, running_standin


@pytest.fixture
def standin() -> Iterator[tuple[str, StandinStore]]:
    with running_standin(seed=True) as pair:
        yield pair


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def _reader(base_url: str, **kwargs: object) -> StripeReader:
    return StripeReader(STANDIN_KEY, base_url, **kwargs)  # type: ignore[arg-type]


def _expected(store: StandinStore, order_id: str):  # type: ignore[no-untyped-def]
    pi = store.payment_intents[order_id]
    session = store.session_for(order_id)
    items = store.line_items[session["id"]] if session else []
    customer_id = (session or {}).get("customer") or pi.get("customer")
    return normalise(pi, session, items, store.customers.get(customer_id) if customer_id else None)


@pytest.mark.parametrize("order_id", SAMPLE_ORDER_IDS)
def test_fetch_every_sample(standin: tuple[str, StandinStore], order_id: str) -> None:
    base_url, store = standin
    order = _reader(base_url).fetch_order(order_id)
    assert order == _expected(store, order_id)
    assert order.lines_total() == order.amount_total == store.payment_intents[order_id]["amount"]


def test_fetch_reads_taxes_and_products_via_indexed_expand(standin: tuple[str, StandinStore]) -> None:
    base_url, store = standin
    order = _reader(base_url).fetch_order(s.FI_TWO_RATES)
    assert [str(line.tax_rate) for line in order.lines] == ["14", "25.5", "25.5"]
    assert order.lines[0].product_id == "prod_SampleFt01"
    calls = [r for r in store.request_log() if r["path"].endswith("/line_items")]
    assert len(calls) == 1
    assert ["expand[0]", "data.price.product"] in calls[0]["args"]
    assert ["expand[1]", "data.taxes"] in calls[0]["args"]
    assert ["limit", "100"] in calls[0]["args"]
    session_calls = [r for r in store.request_log() if r["path"] == "/v1/checkout/sessions"]
    assert ["payment_intent", s.FI_TWO_RATES] in session_calls[0]["args"]


def test_line_items_are_paged(standin: tuple[str, StandinStore]) -> None:
    base_url, store = standin
    sample = copy.deepcopy(next(x for x in s.sample_orders() if x.order_id == s.DK_NO_TAX))
    template = sample.line_items[0]
    items = []
    for n in range(5):
        item = copy.deepcopy(template)
        item["id"] = f"li_Paged{n}"
        item["description"] = f"Poster {n}"
        items.append(item)
    per_item = template["amount_total"]
    shipping = sample.session["shipping_cost"]["amount_total"]  # type: ignore[index]
    total = 5 * per_item + shipping
    pi = dict(sample.payment_intent, id="pi_3PagedOrder", amount=total, amount_received=total)
    session = dict(sample.session or {}, id="cs_test_paged", payment_intent="pi_3PagedOrder", amount_total=total)
    store.add_order(pi, session, items, None, sample.products)

    order = _reader(base_url, page_size=2).fetch_order("pi_3PagedOrder")
    assert [line.description for line in order.lines] == [f"Poster {n}" for n in range(5)] + ["Shipping"]
    assert order.lines_total() == total
    pages = [r for r in store.request_log() if r["path"] == "/v1/checkout/sessions/cs_test_paged/line_items"]
    assert len(pages) == 3
    assert ["starting_after", "li_Paged1"] in pages[1]["args"]


def test_server_error_then_success_is_retried(standin: tuple[str, StandinStore]) -> None:
    base_url, store = standin
    store.fail_next("/v1/payment_intents/", 500, 1)
    order = _reader(base_url).fetch_order(s.FI_CONSUMER)
    assert order.amount_total == 8735
    statuses = [r["status"] for r in store.request_log() if r["path"].startswith("/v1/payment_intents/")]
    assert statuses == [500, 200]


def test_persistent_server_error_is_transient(standin: tuple[str, StandinStore]) -> None:
    base_url, store = standin
    store.fail_next("/v1/checkout/sessions", 503, 5)
    with pytest.raises(TransientError) as info:
        _reader(base_url, max_network_retries=0).fetch_order(s.FI_CONSUMER)
    assert s.FI_CONSUMER in str(info.value) and "503" in str(info.value)


def test_rate_limit_is_transient(standin: tuple[str, StandinStore]) -> None:
    base_url, store = standin
    store.fail_next("/v1/payment_intents/", 429, 1)
    with pytest.raises(TransientError, match="429"):
        _reader(base_url).fetch_order(s.FI_CONSUMER)


def test_connection_refused_is_transient() -> None:
    from tests.conftest import free_port

    with pytest.raises(TransientError, match="connection failed"):
        _reader(f"http://127.0.0.1:{free_port()}", max_network_retries=0).fetch_order(s.FI_CONSUMER)


def test_unknown_order_is_permanent(standin: tuple[str, StandinStore]) -> None:
    base_url, _store = standin
    with pytest.raises(PermanentError) as info:
        _reader(base_url).fetch_order("pi_3DoesNotExist")
    message = str(info.value)
    assert "pi_3DoesNotExist" in message and "404" in message and "No such payment_intent" in message
    assert not isinstance(info.value, TransientError)


def test_bad_key_is_permanent_and_never_echoed(standin: tuple[str, StandinStore]) -> None:
    base_url, _store = standin
    key = "sk_live_TopSecretValue0123456789"
    reader = StripeReader(key, base_url)
    with pytest.raises(PermanentError) as info:
        reader.fetch_order(s.FI_CONSUMER)
    assert "401" in str(info.value) and key not in str(info.value)
    assert key not in repr(reader)
    with pytest.raises(PermanentError):
        reader.check()


def test_unpaid_order_is_order_data_error(standin: tuple[str, StandinStore]) -> None:
    base_url, store = standin
    sample = next(x for x in s.sample_orders() if x.order_id == s.NO_BARE_PI)
    store.add_order(dict(sample.payment_intent, id="pi_3Processing", status="processing", amount_received=0))
    with pytest.raises(OrderDataError, match=r"pi_3Processing.*'processing'"):
        _reader(base_url).fetch_order("pi_3Processing")
    with pytest.raises(OrderDataError, match="ch_test_x"):
        _reader(base_url).fetch_order("ch_test_x")
    with pytest.raises(PermanentError, match="cs_test_x"):  # a free order's session that Stripe does not know
        _reader(base_url).fetch_order("cs_test_x")
    paid = next(x for x in s.sample_orders() if x.order_id == s.FI_CONSUMER)
    store.add_order(paid.payment_intent, paid.session, paid.line_items, paid.customer, paid.products)
    assert paid.session is not None
    with pytest.raises(OrderDataError, match="PaymentIntent"):  # a paid session: its PaymentIntent is the order
        _reader(base_url).fetch_order(paid.session["id"])


def test_check(standin: tuple[str, StandinStore]) -> None:
    base_url, store = standin
    _reader(base_url).check()
    assert store.request_log()[-1]["path"] == "/v1/balance"


def test_fulfilment_events_since_and_undelivered(standin: tuple[str, StandinStore]) -> None:
    base_url, store = standin
    now = int(datetime.now(UTC).timestamp())
    old = order_event(store, s.FI_CONSUMER, "payment_intent.succeeded", created=now - 7200)
    new_delivered = order_event(store, s.SE_CUSTOMER, "checkout.session.completed", created=now - 60, delivered=True)
    new_pending = order_event(store, s.DE_REVERSE_CHARGE, "checkout.session.async_payment_succeeded",
                              created=now - 30)
    order_event(store, s.JP_YEN, "payment_intent.payment_failed", created=now - 10)  # not a fulfilment type
    since = datetime.now(UTC) - timedelta(hours=1)
    reader = _reader(base_url, page_size=1)

    every = reader.list_fulfilment_events(since, undelivered_only=False)
    assert [e["id"] for e in every] == [new_pending["id"], new_delivered["id"]]
    assert every[0]["data"]["object"]["payment_intent"] == s.DE_REVERSE_CHARGE

    pending = reader.list_fulfilment_events(since, undelivered_only=True)
    assert [e["id"] for e in pending] == [new_pending["id"]]

    older = reader.list_fulfilment_events(since - timedelta(hours=2), undelivered_only=True)
    assert [e["id"] for e in older] == [new_pending["id"], old["id"]]

    calls = [r for r in store.request_log() if r["path"] == "/v1/events"]
    args = dict((k, v) for k, v in calls[-1]["args"])
    assert args["delivery_success"] == "false"
    assert {args["types[0]"], args["types[1]"], args["types[2]"]} == {
        "payment_intent.succeeded", "checkout.session.completed", "checkout.session.async_payment_succeeded"}
    assert int(args["created[gte]"]) == int((since - timedelta(hours=2)).timestamp())
    assert any(["starting_after", new_pending["id"]] in c["args"] for c in calls)


def test_dispute_events_since_delivered_or_not_through_every_page(standin: tuple[str, StandinStore]) -> None:
    base_url, store = standin
    now = int(datetime.now(UTC).timestamp())
    old, _ = open_dispute(store, s.FI_CONSUMER, created=now - 7200)
    dispute, opened = open_dispute(store, s.SE_CUSTOMER, 2000, created=now - 60, delivered=True)
    _, closed = close_dispute(store, dispute["id"], "lost", created=now - 30)
    order_event(store, s.JP_YEN, "payment_intent.succeeded", created=now - 10)  # not a dispute event
    since = datetime.now(UTC) - timedelta(hours=1)

    events = _reader(base_url, page_size=1).list_dispute_events(since)
    assert [e["id"] for e in events] == [closed["id"], opened["id"]]  # newest first; the old one is outside
    assert events[0]["data"]["object"] == dict(dispute, status="lost")
    assert events[1]["data"]["object"]["status"] == "needs_response"  # as its webhook carried it
    assert len(_reader(base_url).list_dispute_events(since - timedelta(hours=2))) == 3
    assert old["id"] in {e["data"]["object"]["id"] for e in _reader(base_url).list_dispute_events(
        since - timedelta(hours=2))}

    calls = [r for r in store.request_log() if r["path"] == "/v1/events"]
    args = dict((k, v) for k, v in calls[0]["args"])
    assert "delivery_success" not in args  # a delivered event the ledger lacks counts too
    assert [args[f"types[{i}]"] for i in range(len(DISPUTE_TYPES))] == list(DISPUTE_TYPES)
    assert int(args["created[gte]"]) == int(since.timestamp()) and args["limit"] == "1"
    assert any(["starting_after", closed["id"]] in c["args"] for c in calls)


def test_succeeded_payment_intents(standin: tuple[str, StandinStore]) -> None:
    base_url, store = standin
    sample = next(x for x in s.sample_orders() if x.order_id == s.NO_BARE_PI)
    store.add_order(dict(sample.payment_intent, id="pi_3Failed", status="requires_payment_method"))
    reader = _reader(base_url, page_size=3)
    ids = reader.list_succeeded_payment_intents(datetime.now(UTC) - timedelta(days=1))
    assert sorted(ids) == sorted(SAMPLE_ORDER_IDS)
    assert reader.list_succeeded_payment_intents(datetime.now(UTC) + timedelta(minutes=5)) == []
    with pytest.raises(ValueError):
        reader.list_succeeded_payment_intents(datetime(2026, 1, 1))


# ---- the stand-in's wire format -------------------------------------------------------

def test_both_expand_forms_and_list_shape(standin: tuple[str, StandinStore], http: httpx.Client) -> None:
    base_url, store = standin
    session_id = store.session_for(s.FI_CONSUMER)["id"]  # type: ignore[index]
    url = f"{base_url}/v1/checkout/sessions/{session_id}/line_items"
    auth = {"Authorization": f"Bearer {STANDIN_KEY}"}
    bracket = http.get(url + "?expand[]=data.taxes&expand[]=data.price.product", headers=auth)
    indexed = http.get(url + "?expand[0]=data.taxes&expand[1]=data.price.product", headers=auth)
    plain = http.get(url, headers=auth)
    assert bracket.status_code == indexed.status_code == plain.status_code == 200
    assert bracket.json() == indexed.json()
    body = bracket.json()
    assert body["object"] == "list" and body["has_more"] is False and body["url"].endswith("/line_items")
    assert body["data"][0]["taxes"][0]["rate"]["percentage"] == 25.5
    assert body["data"][0]["price"]["product"]["object"] == "product"
    assert "taxes" not in plain.json()["data"][0]
    assert isinstance(plain.json()["data"][0]["price"]["product"], str)
    assert bracket.headers["Request-Id"].startswith("req_")


def test_stripe_error_objects(standin: tuple[str, StandinStore], http: httpx.Client) -> None:
    base_url, _store = standin
    auth = {"Authorization": f"Bearer {STANDIN_KEY}"}
    missing = http.get(f"{base_url}/v1/payment_intents/pi_nope", headers=auth)
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "invalid_request_error"
    assert missing.json()["error"]["code"] == "resource_missing"
    assert missing.json()["error"]["param"] == "id"
    assert missing.headers["Request-Id"].startswith("req_")

    bad_expand = http.get(f"{base_url}/v1/payment_intents/{s.FI_CONSUMER}?expand[]=nope", headers=auth)
    assert bad_expand.status_code == 400 and bad_expand.json()["error"]["param"] == "expand"

    bad_limit = http.get(f"{base_url}/v1/events?limit=500", headers=auth)
    assert bad_limit.status_code == 400 and bad_limit.json()["error"]["param"] == "limit"

    both = http.get(f"{base_url}/v1/events?type=a&types[]=b", headers=auth)
    assert both.status_code == 400

    no_key = http.get(f"{base_url}/v1/balance")
    assert no_key.status_code == 401 and "API key" in no_key.json()["error"]["message"]

    basic = http.get(f"{base_url}/v1/balance", auth=(STANDIN_KEY, ""))
    assert basic.status_code == 200 and basic.json()["object"] == "balance"

    unknown = http.post(f"{base_url}/v1/refunds", headers=auth)
    assert unknown.status_code == 404 and "Unrecognized request URL" in unknown.json()["error"]["message"]


def test_strict_key_mode(http: httpx.Client) -> None:
    with running_standin(seed=False, api_key="sk_test_only_this", accept_any_test_key=False) as (base_url, _store):
        assert http.get(f"{base_url}/v1/balance", headers={"Authorization": "Bearer sk_test_other"}).status_code \
            == 401
        assert http.get(f"{base_url}/v1/balance",
                         headers={"Authorization": "Bearer sk_test_only_this"}).status_code == 200


def test_control_endpoints_over_http(http: httpx.Client) -> None:
    with running_standin(seed=False) as (base_url, store):
        seeded = http.post(f"{base_url}/_standin/seed").json()["order_ids"]
        assert tuple(seeded) == SAMPLE_ORDER_IDS

        sample = next(x for x in s.sample_orders() if x.order_id == s.FI_CONSUMER)
        body = {"payment_intent": dict(sample.payment_intent, id="pi_3ViaHttp"),
                "session": dict(sample.session or {}, id="cs_test_viahttp", payment_intent="pi_3ViaHttp"),
                "line_items": sample.line_items, "customer": sample.customer, "products": sample.products}
        assert http.post(f"{base_url}/_standin/orders", json=body).status_code == 201
        assert "pi_3ViaHttp" in http.get(f"{base_url}/_standin/orders").json()["order_ids"]
        assert http.post(f"{base_url}/_standin/orders", json={"payment_intent": {"id": "x"}}).status_code == 400
        assert _reader(base_url).fetch_order("pi_3ViaHttp").amount_total == 8735

        armed = http.post(f"{base_url}/_standin/failures",
                           json={"path_prefix": "/v1/balance", "status": 500, "count": 1, "should_retry": False})
        assert armed.status_code == 201
        failed = http.get(f"{base_url}/v1/balance", headers={"Authorization": f"Bearer {STANDIN_KEY}"})
        assert failed.status_code == 500 and failed.headers["Stripe-Should-Retry"] == "false"
        assert failed.json()["error"]["type"] == "api_error"

        event = http.post(f"{base_url}/_standin/events",
                           json={"order_id": "pi_3ViaHttp", "type": "payment_intent.succeeded"})
        assert event.status_code == 201
        event_id = event.json()["id"]
        listed = http.get(f"{base_url}/v1/events?delivery_success=false",
                           headers={"Authorization": f"Bearer {STANDIN_KEY}"}).json()
        assert [e["id"] for e in listed["data"]] == [event_id]
        assert listed["data"][0]["pending_webhooks"] == 1
        assert http.post(f"{base_url}/_standin/events/{event_id}/delivery", json={"delivered": True}).is_success
        listed = http.get(f"{base_url}/v1/events?delivery_success=false",
                           headers={"Authorization": f"Bearer {STANDIN_KEY}"}).json()
        assert listed["data"] == []
        got = http.get(f"{base_url}/v1/events/{event_id}", headers={"Authorization": f"Bearer {STANDIN_KEY}"})
        assert got.json()["pending_webhooks"] == 0

        log = http.get(f"{base_url}/_standin/requests").json()["requests"]
        assert log and all("Authorization" not in str(entry) and STANDIN_KEY not in str(entry) for entry in log)
        assert http.delete(f"{base_url}/_standin/requests").is_success
        assert store.request_log() == []


def test_standin_runs_as_a_process() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "orderpipe.stripe_api.standin", "--host", "127.0.0.1", "--port", "0", "--seed"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("stripe stand-in listening on http://127.0.0.1:"), line
        base_url = line.rsplit(" ", 1)[1].strip()
        order = _reader(base_url).fetch_order(s.SE_CUSTOMER)
        assert order.customer_name == "Åsa Öberg-Ståhl"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
