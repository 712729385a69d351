"""StatusCallbackClient against a shop stand-in (contract.md, "The status callback")."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from orderpipe.connectors.status_callback import (
    FIELDS,
    CallbackRejected,
    StatusCallbackClient,
    callback_payload,
    sign,
    verify_signature,
)
from orderpipe.errors import PermanentError, TransientError
from orderpipe.settings import load_settings
from tests.standins.shop_callback import ShopCallbackStandIn, shop_verifies
from tests.standins.wsgi_thread import Delay, Respond

SECRET = "cb_secret_0123456789"
ORDER = "pi_3Pabc123"
WHEN = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
FULFILLED = callback_payload(ORDER, "fulfilled", tracking_number="JJFI64000000000001",
                             invoice_number="2026-000001", occurred_at=WHEN)


@pytest.fixture
def shop(monkeypatch: pytest.MonkeyPatch) -> Iterator[ShopCallbackStandIn]:
    with ShopCallbackStandIn(secret=SECRET) as standin:
        monkeypatch.setenv("ORDERPIPE_STATUS_CALLBACK_URL", standin.callback_url)
        monkeypatch.setenv("ORDERPIPE_STATUS_CALLBACK_SECRET", SECRET)
        monkeypatch.delenv("ORDERPIPE_STATUS_CALLBACK_METHOD", raising=False)
        yield standin


def client(engine: Engine, **kw: object) -> StatusCallbackClient:
    return StatusCallbackClient(load_settings(), engine, **kw)  # type: ignore[arg-type]


def test_posts_the_contract_body_signed_with_stripes_scheme(shop: ShopCallbackStandIn, engine: Engine) -> None:
    assert client(engine).notify(FULFILLED) is True
    [req] = shop.requests
    assert (req.method, req.path, req.status) == ("POST", shop.path, 200)
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["Idempotency-Key"] == f"{ORDER}-fulfilled"
    body = json.loads(req.body)
    assert list(body) == ["order_id", "status", "tracking_number", "invoice_number", "failed_step", "occurred_at"]
    assert body == {"order_id": ORDER, "status": "fulfilled", "tracking_number": "JJFI64000000000001",
                    "invoice_number": "2026-000001", "failed_step": None, "occurred_at": "2026-11-23T12:00:00Z"}
    header = req.headers["X-Orderpipe-Signature"]
    t = int(header.split(",")[0].removeprefix("t="))
    assert abs(t - time.time()) < 60
    assert verify_signature(req.body, header, SECRET)
    assert shop_verifies(req.body, header, SECRET)  # the shop's own (independent) check
    assert not verify_signature(req.body, header, "wrong-secret")
    assert not verify_signature(req.body.replace(b"fulfilled", b"failed"), header, SECRET)


def test_patch_when_configured(shop: ShopCallbackStandIn, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERPIPE_STATUS_CALLBACK_METHOD", "PATCH")
    failed = callback_payload(ORDER, "failed", failed_step="shipment", occurred_at=WHEN)
    client(engine).notify(failed)
    [delivery] = shop.deliveries
    assert delivery.method == "PATCH"
    assert delivery.body["status"] == "failed" and delivery.body["failed_step"] == "shipment"
    assert delivery.body["tracking_number"] is None


def test_once_per_order_and_status_across_a_crash(shop: ShopCallbackStandIn, engine: Engine) -> None:
    assert client(engine).notify(FULFILLED) is True
    assert client(engine).notify(FULFILLED) is False  # new process, same database
    failed = callback_payload(ORDER, "failed", failed_step="email", occurred_at=WHEN)
    assert client(engine).notify(failed) is True  # another status is another callback
    assert [d.idempotency_key for d in shop.deliveries] == [f"{ORDER}-fulfilled", f"{ORDER}-failed"]


@pytest.mark.parametrize("fault", [Respond(500, "oops"), Respond(503, "", {"Retry-After": "7"}),
                                   Respond(429, "slow down", {"Retry-After": "3"})])
def test_non_2xx_is_retried_until_the_shop_answers_2xx(shop: ShopCallbackStandIn, engine: Engine,
                                                        fault: Respond) -> None:
    shop.inject(fault)
    callbacks = client(engine)
    with pytest.raises(TransientError) as err:
        callbacks.notify(FULFILLED)
    assert ORDER in str(err.value) and f"HTTP {fault.status}" in str(err.value)
    assert err.value.retry_after == (float(fault.headers["Retry-After"]) if fault.headers else None)
    assert callbacks.notify(FULFILLED) is True
    assert callbacks.notify(FULFILLED) is False
    assert len(shop.deliveries) == 1


def test_a_4xx_is_retried_too_and_says_what_the_shop_answered(shop: ShopCallbackStandIn, engine: Engine,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERPIPE_STATUS_CALLBACK_SECRET", "rotated-on-our-side-only")
    with pytest.raises(CallbackRejected) as err:
        client(engine).notify(FULFILLED)
    assert err.value.status_code == 400 and isinstance(err.value, TransientError)
    assert "bad signature" in str(err.value) and "rotated-on-our-side-only" not in str(err.value)
    monkeypatch.setenv("ORDERPIPE_STATUS_CALLBACK_SECRET", SECRET)  # fixed: the next retry goes through
    assert client(engine).notify(FULFILLED) is True


def test_timeout_then_success_carries_the_same_idempotency_key(shop: ShopCallbackStandIn, engine: Engine) -> None:
    shop.inject(Delay(0.6))
    with pytest.raises(TransientError, match="timed out"):
        client(engine, timeout=0.2).notify(FULFILLED)
    shop.wait_idle()
    assert client(engine).notify(FULFILLED) is True
    assert len(shop.deliveries) == 2 and list(shop.accepted) == [f"{ORDER}-fulfilled"]
    first, second = shop.deliveries
    assert first.raw == second.raw  # same body, freshly signed each time


def test_verify_signature_rejects_stale_and_malformed_headers() -> None:
    raw = json.dumps(FULFILLED).encode()
    now = int(time.time())
    assert verify_signature(raw, sign(raw, SECRET, now), SECRET)
    assert not verify_signature(raw, sign(raw, SECRET, now - 301), SECRET)
    assert verify_signature(raw, sign(raw, SECRET, now - 301), SECRET, tolerance=600)
    other = sign(raw, "old-secret", now).split(",")[1]
    assert verify_signature(raw, sign(raw, SECRET, now) + "," + other, SECRET)  # any v1 may match
    for header in ("", "t=abc,v1=00", f"t={now}", f"v1={sign(raw, SECRET, now).split('v1=')[1]}",
                   f"t={now},v0={sign(raw, SECRET, now).split('v1=')[1]}"):
        assert not verify_signature(raw, header, SECRET)


def test_not_configured_means_no_callback(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORDERPIPE_STATUS_CALLBACK_URL", raising=False)
    callbacks = client(engine)
    callbacks.check()
    assert callbacks.enabled is False and callbacks.notify(FULFILLED) is False


def test_check_validates_configuration_only(shop: ShopCallbackStandIn, engine: Engine,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    client(engine).check()
    assert shop.requests == []
    monkeypatch.setenv("ORDERPIPE_STATUS_CALLBACK_URL", "ftp://shop.example/status")
    with pytest.raises(PermanentError, match="ORDERPIPE_STATUS_CALLBACK_URL"):
        client(engine).check()


def test_a_payload_outside_the_contract_is_refused(shop: ShopCallbackStandIn, engine: Engine) -> None:
    with pytest.raises(ValueError, match="status"):
        client(engine).notify({**FULFILLED, "status": "shipped"})
    with pytest.raises(ValueError, match="unknown fields"):
        client(engine).notify({**FULFILLED, "customer_email": "anna@example.fi"})
    assert shop.requests == []


def test_a_refunds_status_is_sent_once_per_order_and_status(shop: ShopCallbackStandIn, engine: Engine) -> None:
    partial = callback_payload(ORDER, "partially_refunded", invoice_number="2026-000001", occurred_at=WHEN)
    assert client(engine).notify(partial) is True
    assert client(engine).notify(partial) is False  # a second partial refund: the same order and status
    assert client(engine).notify({**partial, "status": "refunded"}) is True
    assert [(d.idempotency_key, list(d.body)) for d in shop.deliveries] == [
        (f"{ORDER}-partially_refunded", list(FIELDS)), (f"{ORDER}-refunded", list(FIELDS))]
    with pytest.raises(ValueError, match="unknown fields"):
        client(engine).notify({**partial, "refunded_amount": 1000})

