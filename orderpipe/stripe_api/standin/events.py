"""Stripe webhook events for the stand-in's orders, and their ``Stripe-Signature`` headers.

``order_event`` builds the event Stripe would send for an order (the object snapshot in
``data.object``), stores it so ``GET /v1/events`` lists it, and returns it.
``open_dispute`` / ``close_dispute`` change a dispute and store the event Stripe emits for
it, undelivered by default (a webhook Stripe never got through). ``signed_delivery`` turns
an event into the exact body and headers Stripe POSTs to a webhook endpoint, signed with
stripe-python's own helper.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

import stripe

from orderpipe.states import DISPUTE_TYPES, FULFILMENT_TYPES  # noqa: F401 - one definition, importable from here as before
from orderpipe.stripe_api.standin.store import StandinStore

WEBHOOK_API_VERSION = "2025-03-31.basil"

PI_TYPES = ("payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.processing",
            "payment_intent.canceled")
SESSION_TYPES = ("checkout.session.completed", "checkout.session.async_payment_succeeded",
                 "checkout.session.async_payment_failed", "checkout.session.expired")

DECLINE = {
    "type": "card_error", "code": "card_declined", "decline_code": "generic_decline",
    "message": "Your card was declined.", "doc_url": "https://docs.stripe.com/error-codes/card-declined",
}


def new_event_id() -> str:
    return "evt_" + uuid.uuid4().hex[:24]


def build_event(event_type: str, obj: dict[str, Any], *, event_id: str | None = None, created: int | None = None,
                api_version: str = WEBHOOK_API_VERSION, livemode: bool = False) -> dict[str, Any]:
    """A Stripe ``event`` object around a snapshot of ``obj``."""
    return {
        "id": event_id or new_event_id(),
        "object": "event",
        "api_version": api_version,
        "created": int(created if created is not None else time.time()),
        "data": {"object": copy.deepcopy(obj)},
        "livemode": livemode,
        "pending_webhooks": 1,
        "request": {"id": "req_" + uuid.uuid4().hex[:14], "idempotency_key": None},
        "type": event_type,
    }


def event_object(store: StandinStore, order_id: str, event_type: str) -> dict[str, Any]:
    """The ``data.object`` Stripe puts in an event of this type for this order."""
    with store.lock:
        pi = store.payment_intents.get(order_id)
        if pi is None:
            raise KeyError(f"stand-in has no order {order_id}")
        pi = copy.deepcopy(pi)
        session = store.session_for(order_id)
        session = copy.deepcopy(session) if session is not None else None
    if event_type in PI_TYPES:
        if event_type == "payment_intent.payment_failed":
            pi.update(status="requires_payment_method", amount_received=0, latest_charge=None,
                      last_payment_error=dict(DECLINE))
        elif event_type == "payment_intent.processing":
            pi.update(status="processing", amount_received=0)
        elif event_type == "payment_intent.canceled":
            pi.update(status="canceled", amount_received=0, cancellation_reason="abandoned")
        return pi
    if event_type in SESSION_TYPES:
        if session is None:
            raise ValueError(f"order {order_id} has no Checkout Session, so no {event_type} event")
        if event_type == "checkout.session.async_payment_failed":
            session["payment_status"] = "unpaid"
        elif event_type == "checkout.session.expired":
            session.update(status="expired", payment_status="unpaid")
        return session
    raise ValueError(f"the stand-in does not build {event_type} events")


def order_event(store: StandinStore, order_id: str, event_type: str, *, delivered: bool = False,
                created: int | None = None, event_id: str | None = None,
                overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the event, store it in the stand-in (for ``GET /v1/events``) and return it.

    ``overrides`` are set on ``data.object`` (e.g. ``{"payment_status": "unpaid"}``).
    """
    obj = event_object(store, order_id, event_type)
    obj.update(overrides or {})
    event = build_event(event_type, obj, event_id=event_id, created=created, livemode=bool(obj.get("livemode")))
    store.add_event(event, delivered=delivered)
    return event


REFUND_TYPES = ("refund.created", "refund.updated", "refund.failed", "charge.refund.updated")
CHARGE_TYPES = ("charge.refunded", "charge.succeeded", "charge.updated")
CLOSED_DISPUTE_STATUSES = ("won", "lost", "warning_closed", "prevented")


def object_event(store: StandinStore, object_id: str, event_type: str, *, delivered: bool = False,
                 created: int | None = None) -> dict[str, Any]:
    """A refund, charge or dispute event around the object as the stand-in has it now (stored too)."""
    with store.lock:
        if event_type in REFUND_TYPES:
            obj = store.refunds.get(object_id)
        elif event_type in CHARGE_TYPES:
            obj = store.charges.get(object_id)
        elif event_type in DISPUTE_TYPES:
            obj = store.disputes.get(object_id)
        else:
            raise ValueError(f"the stand-in does not build {event_type} events")
        if obj is None:
            raise KeyError(f"stand-in has no object {object_id} for {event_type}")
        obj = copy.deepcopy(obj)
    event = build_event(event_type, obj, created=created)
    store.add_event(event, delivered=delivered)
    return event


def open_dispute(store: StandinStore, pi_id: str, amount: int | None = None, *, reason: str = "fraudulent",
                 delivered: bool = False, created: int | None = None, dispute_id: str | None = None
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """A customer disputes the PaymentIntent's charge: the dispute (``needs_response``) and the
    ``charge.dispute.created`` event Stripe emits for it, stored as not delivered unless
    ``delivered`` (so ``GET /v1/events`` lists it with ``pending_webhooks`` 1, and nothing
    is POSTed anywhere). Returns (dispute, event)."""
    dispute = store.add_dispute(pi_id, amount, reason=reason, dispute_id=dispute_id, created=created)
    return dispute, object_event(store, dispute["id"], "charge.dispute.created", delivered=delivered,
                                 created=created)


def close_dispute(store: StandinStore, dispute_id: str, status: str = "lost", *, delivered: bool = False,
                  created: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The dispute is decided: its new status and the ``charge.dispute.closed`` event Stripe
    emits (stored as not delivered unless ``delivered``). Returns (dispute, event)."""
    if status not in CLOSED_DISPUTE_STATUSES:
        raise ValueError(f"a closed dispute's status is one of {', '.join(CLOSED_DISPUTE_STATUSES)}, not {status!r}")
    dispute = store.update_dispute(dispute_id, status=status)
    return dispute, object_event(store, dispute_id, "charge.dispute.closed", delivered=delivered, created=created)


def fulfilment_events(store: StandinStore, order_id: str, *, delivered: bool = False,
                      created: int | None = None) -> list[dict[str, Any]]:
    """What Stripe sends when the order is paid: session completed (Checkout only) and PI succeeded."""
    types = ["payment_intent.succeeded"]
    if store.session_for(order_id) is not None:
        types.insert(0, "checkout.session.completed")
    return [order_event(store, order_id, t, delivered=delivered, created=created) for t in types]


def encode_event(event: dict[str, Any]) -> bytes:
    """The event as Stripe sends it: pretty-printed JSON, UTF-8."""
    return json.dumps(event, indent=2, ensure_ascii=False).encode("utf-8")


def signature_header(payload: bytes | str, secrets: str | Sequence[str], timestamp: int | None = None) -> str:
    """``Stripe-Signature`` for payload: ``t=...,v1=...`` with one ``v1`` per secret (secret rolling)."""
    body = payload.decode("utf-8") if isinstance(payload, bytes) else payload
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    if not keys:
        raise ValueError("at least one webhook secret is needed to sign an event")
    ts = int(timestamp if timestamp is not None else time.time())
    parts = [stripe.WebhookSignature.generate_signature_header(body, key, timestamp=ts) for key in keys]
    v1s = [p.split(",", 1)[1] for p in parts]
    return ",".join([f"t={ts}", *v1s])


def signed_delivery(event: dict[str, Any], secrets: str | Sequence[str],
                    timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    """Body and headers of Stripe's webhook POST for this event."""
    body = encode_event(event)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "Stripe-Signature": signature_header(body, secrets, timestamp),
    }
    return body, headers
