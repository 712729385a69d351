"""Stand-in webhook events: shapes, storage, and signatures stripe-python accepts."""

from __future__ import annotations

import json
import time

import pytest
import stripe

from orderpipe.stripe_api.standin import StandinStore, seed_store
from orderpipe.stripe_api.standin import samples as s
from orderpipe.stripe_api.standin.events import (
    close_dispute,
    encode_event,
    fulfilment_events,
    open_dispute,
    order_event,
    signature_header,
    signed_delivery,
)

SECRET = "whsec_test_orderpipe_one"
OTHER = "whsec_test_orderpipe_two"


@pytest.fixture
def store() -> StandinStore:
    store = StandinStore()
    seed_store(store)
    return store


def test_signature_verifies_with_stripe_sdk(store: StandinStore) -> None:
    event = order_event(store, s.FI_CONSUMER, "checkout.session.completed")
    body, headers = signed_delivery(event, SECRET)
    assert stripe.WebhookSignature.verify_header(body, headers["Stripe-Signature"], SECRET, tolerance=300)
    parsed = stripe.Webhook.construct_event(body, headers["Stripe-Signature"], SECRET, tolerance=300)
    assert parsed.type == "checkout.session.completed"
    assert parsed.data.object.payment_intent == s.FI_CONSUMER


def test_wrong_secret_or_tampered_body_fails(store: StandinStore) -> None:
    body, headers = signed_delivery(order_event(store, s.FI_CONSUMER, "payment_intent.succeeded"), SECRET)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body, headers["Stripe-Signature"], OTHER, tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body.replace(b"8735", b"8736"), headers["Stripe-Signature"], SECRET,
                                              tolerance=300)


def test_old_timestamp_is_outside_tolerance() -> None:
    payload = b'{"id": "evt_1"}'
    header = signature_header(payload, SECRET, timestamp=int(time.time()) - 3600)
    with pytest.raises(stripe.SignatureVerificationError, match="tolerance"):
        stripe.WebhookSignature.verify_header(payload, header, SECRET, tolerance=300)


def test_header_matches_sdk_helper_and_carries_one_v1_per_secret() -> None:
    payload = '{"id": "evt_1", "object": "event"}'
    assert signature_header(payload, SECRET, timestamp=1717171717) == \
        stripe.WebhookSignature.generate_signature_header(payload, SECRET, timestamp=1717171717)
    header = signature_header(payload, [SECRET, OTHER], timestamp=int(time.time()))
    assert header.count("v1=") == 2 and header.startswith("t=")
    for secret in (SECRET, OTHER):
        assert stripe.WebhookSignature.verify_header(payload, header, secret, tolerance=300)


def test_signing_needs_a_secret() -> None:
    with pytest.raises(ValueError):
        signature_header(b"{}", [])


def test_event_shapes(store: StandinStore) -> None:
    completed = order_event(store, s.SE_CUSTOMER, "checkout.session.completed", created=1_790_000_000)
    assert completed["object"] == "event" and completed["id"].startswith("evt_")
    assert completed["created"] == 1_790_000_000
    assert completed["api_version"] == "2025-03-31.basil"
    session = completed["data"]["object"]
    assert session["object"] == "checkout.session" and session["payment_status"] == "paid"
    assert "shipping_details" not in session and session["collected_information"]["shipping_details"]

    succeeded = order_event(store, s.SE_CUSTOMER, "payment_intent.succeeded")
    assert succeeded["data"]["object"]["object"] == "payment_intent"
    assert succeeded["data"]["object"]["status"] == "succeeded"

    failed = order_event(store, s.SE_CUSTOMER, "payment_intent.payment_failed")
    pi = failed["data"]["object"]
    assert pi["status"] == "requires_payment_method" and pi["last_payment_error"]["code"] == "card_declined"
    assert store.payment_intents[s.SE_CUSTOMER]["status"] == "succeeded"  # the snapshot only

    async_failed = order_event(store, s.SE_CUSTOMER, "checkout.session.async_payment_failed")
    assert async_failed["data"]["object"]["payment_status"] == "unpaid"

    unpaid = order_event(store, s.SE_CUSTOMER, "checkout.session.completed", overrides={"payment_status": "unpaid"})
    assert unpaid["data"]["object"]["payment_status"] == "unpaid"


def test_events_are_stored_with_delivery_state(store: StandinStore) -> None:
    events = fulfilment_events(store, s.FI_CONSUMER)
    assert [e["type"] for e in events] == ["checkout.session.completed", "payment_intent.succeeded"]
    views = store.event_views()
    assert {e["id"] for e, delivered in views if not delivered} == {e["id"] for e in events}
    assert store.set_delivered(events[0]["id"], True)
    assert dict((e["id"], delivered) for e, delivered in store.event_views())[events[0]["id"]] is True
    assert not store.set_delivered("evt_missing", True)


def test_a_dispute_opened_and_closed_stores_stripes_events_undelivered(store: StandinStore) -> None:
    dispute, opened = open_dispute(store, s.SE_CUSTOMER, 2000, reason="product_not_received", created=1_790_000_000)
    assert dispute["id"].startswith("du_") and dispute["status"] == "needs_response"
    assert (dispute["amount"], dispute["payment_intent"], dispute["created"]) == (2000, s.SE_CUSTOMER, 1_790_000_000)
    assert store.charges[dispute["charge"]]["disputed"] is True
    assert opened["type"] == "charge.dispute.created" and opened["created"] == 1_790_000_000
    assert opened["data"]["object"] == dispute

    closed_dispute, closed = close_dispute(store, dispute["id"], "lost")
    assert closed_dispute["status"] == store.disputes[dispute["id"]]["status"] == "lost"
    assert closed["type"] == "charge.dispute.closed" and closed["data"]["object"]["status"] == "lost"
    assert opened["data"]["object"]["status"] == "needs_response"  # the first event keeps its snapshot
    views = {e["id"]: (e, delivered) for e, delivered in store.event_views()}
    for event in (opened, closed):  # listed by GET /v1/events, never delivered
        assert views[event["id"]][1] is False and views[event["id"]][0]["pending_webhooks"] == 1

    _, delivered = open_dispute(store, s.FI_CONSUMER, delivered=True)
    assert dict((e["id"], d) for e, d in store.event_views())[delivered["id"]] is True
    with pytest.raises(ValueError, match="closed dispute"):
        close_dispute(store, dispute["id"], "under_review")


def test_bare_payment_intent_has_no_session_events(store: StandinStore) -> None:
    assert [e["type"] for e in fulfilment_events(store, s.NO_BARE_PI)] == ["payment_intent.succeeded"]
    with pytest.raises(ValueError, match="no Checkout Session"):
        order_event(store, s.NO_BARE_PI, "checkout.session.completed")
    with pytest.raises(KeyError):
        order_event(store, "pi_unknown", "payment_intent.succeeded")
    with pytest.raises(ValueError, match="does not build"):
        order_event(store, s.FI_CONSUMER, "charge.refunded")


def test_encoded_event_is_utf8_json(store: StandinStore) -> None:
    event = order_event(store, s.SE_CUSTOMER, "checkout.session.completed")
    body = encode_event(event)
    assert "Åsa Öberg-Ståhl".encode() in body
    assert json.loads(body) == event
