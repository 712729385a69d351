"""Flask app factory for the receiver.

POST /webhooks/stripe: verify the signature on the raw body, record the event (and its
order) in the ledger, answer. The answer never waits on Prefect: a dispatcher starts the
order's flow run from the ledger. GET /healthz reports database and Prefect reachability.

The receiver only records: it talks to no vendor. A payment-failed alert is a row in the
alerts table (written with the event); the worker delivers it (orderpipe.alerts.Outbox).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, jsonify, request
from sqlalchemy import Engine
from werkzeug.exceptions import RequestEntityTooLarge

from orderpipe.db import DatabaseUnavailable, ping
from orderpipe.orders.ledger import Classified, classify, record_event
from webhook.signature import BadSignature, verify

MAX_BODY = 1024 * 1024
log = logging.getLogger("orderpipe.receiver")
# What the ledger's columns take (ids up to 255, type up to 100 characters); Stripe's own
# ids and types are far inside these.
EVENT_ID = re.compile(r"[A-Za-z0-9_]{1,255}")
EVENT_TYPE = re.compile(r"[a-z0-9_.]{1,100}")
ORDER_ID = re.compile(r"(pi|cs)_[A-Za-z0-9_]{1,252}")


class NotAnEvent(ValueError):
    """A verified body that is not a Stripe event orderpipe can record."""


def parse_event(raw: bytes) -> tuple[dict[str, Any], Classified]:
    """The event and what it means, or NotAnEvent, whatever breaks while parsing (deep
    nesting -> RecursionError, huge integers, odd shapes...)."""
    try:
        event = json.loads(raw)
    except (ValueError, RecursionError, MemoryError):
        raise NotAnEvent("body is not JSON") from None
    try:
        if not (isinstance(event, dict) and event.get("object") == "event" and isinstance(event.get("id"), str)
                and isinstance(event.get("type"), str) and isinstance(event.get("data"), dict)):
            raise NotAnEvent("body is not a Stripe event (needs object=event, id, type, data)")
        if not (EVENT_ID.fullmatch(event["id"]) and EVENT_TYPE.fullmatch(event["type"])):
            raise NotAnEvent("body is not a Stripe event (malformed id or type)")
        classified = classify(event)
        if classified.order_id is not None and not ORDER_ID.fullmatch(classified.order_id):
            raise NotAnEvent("body is not a Stripe event (malformed PaymentIntent or Checkout Session id)")
    except NotAnEvent:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever else a strange body breaks is still a 400
        raise NotAnEvent(f"body is not a Stripe event ({type(exc).__name__})") from None
    return event, classified


def create_app(
    *,
    engine: Engine,
    secrets: list[str],
    prefect_probe: Callable[[], bool] | None = None,
    on_accepted: Callable[[str], None] | None = None,
) -> Flask:
    """Build the receiver. Everything it talks to is handed in (tests pass the same things):
    the database and, for /healthz, a Prefect probe. No vendor connector."""
    if not secrets:
        raise ValueError("STRIPE_WEBHOOK_SECRET: at least one webhook secret is required")
    app = Flask("orderpipe.webhook")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    probe_cache: dict[str, Any] = {"at": 0.0, "ok": False}

    def error(status: int, message: str) -> tuple[Response, int]:
        return jsonify({"error": message}), status

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_exc: Exception) -> tuple[Response, int]:
        return error(413, f"body larger than {MAX_BODY} bytes")

    @app.post("/webhooks/stripe")
    def stripe_webhook() -> tuple[Response, int]:
        raw = request.get_data(cache=False)  # over MAX_CONTENT_LENGTH -> RequestEntityTooLarge -> 413
        try:
            verify(raw, request.headers.get("Stripe-Signature"), secrets)
        except BadSignature as exc:
            return error(400, f"signature verification failed: {exc}")
        try:
            event, classified = parse_event(raw)
        except NotAnEvent as exc:
            return error(400, str(exc))
        try:
            recorded = record_event(engine, event, raw.decode("utf-8"), classified)
        except Exception as exc:  # noqa: BLE001 - any database failure: Stripe must retry
            text = str(exc)
            log.error("could not record event %s: %s", event.get("id"), text.splitlines()[0] if text else type(exc))
            return error(503, "event could not be recorded (database unavailable); retry later")
        if recorded.status == "accepted" and on_accepted is not None:
            on_accepted(recorded.order_id or "")
        log.info("event %s %s -> %s (order %s)", recorded.event_id, event["type"], recorded.status,
                 recorded.order_id)
        return jsonify({"status": recorded.status, "event_id": recorded.event_id,
                        "order_id": recorded.order_id}), 200

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        prefect = "unknown"
        if prefect_probe is not None:
            now = time.monotonic()
            if now - probe_cache["at"] > 5:
                probe_cache["ok"], probe_cache["at"] = prefect_probe(), now
            prefect = "ok" if probe_cache["ok"] else "unreachable"
        try:
            ping(engine)
        except DatabaseUnavailable:
            return jsonify({"status": "error", "database": "unreachable", "prefect": prefect}), 503
        return jsonify({"status": "ok", "database": "ok", "prefect": prefect}), 200

    return app
