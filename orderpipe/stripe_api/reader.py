"""Reads orders (and, for reconciliation, recent events, payments, refunds and disputes) back from the Stripe API.

Uses stripe-python's ``StripeClient`` aimed at ``STRIPE_API_BASE`` (host only; the SDK adds
``/v1``) with the SDK's own network retries (connection errors, 409, 5xx, and whatever
``Stripe-Should-Retry`` says). What is still failing afterwards is mapped to orderpipe's
errors: 429, 5xx and connection problems -> ``TransientError``; other 4xx ->
``PermanentError`` with Stripe's message (never the key).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import stripe

from orderpipe.errors import OrderDataError, PermanentError, TransientError
from orderpipe.order import Order
from orderpipe.states import DISPUTE_TYPES
from orderpipe.stripe_api.normalise import normalise, normalise_free

log = logging.getLogger(__name__)

FULFILMENT_EVENT_TYPES = (
    "payment_intent.succeeded",
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
)
LINE_ITEM_EXPAND = ["data.price.product", "data.taxes"]

Obj = dict[str, Any]


class StripeReader:
    name = "stripe"

    def __init__(self, api_key: str, api_base: str, max_network_retries: int = 2, *, page_size: int = 100,
                 timeout: float = 20.0) -> None:
        if not api_key:
            raise ValueError("StripeReader needs an API key (STRIPE_API_KEY)")
        if not 1 <= page_size <= 100:
            raise ValueError("page_size must be between 1 and 100")
        self._key = api_key
        self._api_base = api_base.rstrip("/")
        self._page_size = page_size
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": self._api_base},
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout),
        )

    def __repr__(self) -> str:  # never show the key
        return f"StripeReader(api_base={self._api_base!r})"

    # ---- orders ---------------------------------------------------------------------
    def fetch_order(self, order_id: str) -> Order:
        """Read a paid order (PaymentIntent, its Checkout Session, line items, Customer) and normalise it;
        a free Checkout order (`cs_...`) from its session alone."""
        if order_id.startswith("cs_"):
            return self._fetch_free_order(order_id)
        if not order_id.startswith("pi_"):
            raise OrderDataError(f"order {order_id}: not a PaymentIntent (pi_...) or Checkout Session (cs_...) id")
        where = f"order {order_id}"
        pi = self._call(where, "GET /v1/payment_intents", lambda: self._client.v1.payment_intents.retrieve(
            order_id, params={"expand": ["latest_charge"]}))
        status = pi.get("status")
        if status != "succeeded":
            raise OrderDataError(
                f"order {order_id}: PaymentIntent status is {status!r}, not 'succeeded'; nothing to fulfil yet"
            )
        session = self._session_for(order_id)
        line_items = self._line_items(order_id, session["id"]) if session else []
        customer_id = _id_of((session or {}).get("customer")) or _id_of(pi.get("customer"))
        customer = None
        if customer_id:
            customer = self._call(where, "GET /v1/customers",
                                  lambda: self._client.v1.customers.retrieve(customer_id))
        # A Billing payment has no payment-mode Checkout Session: only then is invoice_payments asked.
        billing = _id_of(pi.get("invoice")) or (self.billing_invoice_of(pi) if session is None else None)
        charge = pi.get("latest_charge")
        refunded = int(charge.get("amount_refunded") or 0) if isinstance(charge, dict) else 0
        if isinstance(charge, dict):
            pi = {**pi, "latest_charge": charge.get("id")}
        order = normalise(pi, session, line_items, customer)
        if refunded or billing:
            order = order.model_copy(update={"amount_refunded": refunded, "billing_invoice": billing})
        return order

    def _fetch_free_order(self, session_id: str) -> Order:
        """A free Checkout order (contract, "Order identity"): the session, with no PaymentIntent
        and `payment_status` `no_payment_required`, its line items and Customer."""
        where = f"order {session_id}"
        session = self._call(where, "GET /v1/checkout/sessions",
                             lambda: self._client.v1.checkout.sessions.retrieve(session_id))
        if session.get("payment_intent"):
            pi = _id_of(session["payment_intent"])
            raise OrderDataError(f"order {session_id}: the session has PaymentIntent {pi}, which is the order's id")
        if session.get("status") != "complete" or session.get("payment_status") != "no_payment_required":
            raise OrderDataError(f"order {session_id}: Checkout Session status {session.get('status')!r}, "
                                 f"payment_status {session.get('payment_status')!r}; not a completed free order")
        line_items = self._line_items(session_id, session_id)
        customer_id = _id_of(session.get("customer"))
        customer = None
        if customer_id:
            customer = self._call(where, "GET /v1/customers", lambda: self._client.v1.customers.retrieve(customer_id))
        return normalise_free(session, line_items, customer)

    def _session_for(self, order_id: str) -> Obj | None:
        page = self._call(
            f"order {order_id}", "GET /v1/checkout/sessions",
            lambda: self._client.v1.checkout.sessions.list(params={"payment_intent": order_id, "limit": 10}),
        )
        sessions = page.get("data") or []
        for wanted in ("complete", None):
            for session in sessions:
                if wanted is None or session.get("status") == wanted:
                    return dict(session)
        return None

    def _line_items(self, order_id: str, session_id: str) -> list[Obj]:
        def page(after: str | None) -> Obj:
            params: dict[str, Any] = {"limit": self._page_size, "expand": LINE_ITEM_EXPAND}
            if after:
                params["starting_after"] = after
            return self._call(
                f"order {order_id}", "GET /v1/checkout/sessions/line_items",
                lambda: self._client.v1.checkout.sessions.line_items.list(session_id, params=params),
            )

        return list(self._pages(page))

    # ---- reconciliation -------------------------------------------------------------
    def list_fulfilment_events(self, since: datetime, undelivered_only: bool) -> list[Obj]:
        """Events that start fulfilment, created at or after ``since`` (Stripe keeps 30 days), newest first."""
        return self._list_events(FULFILMENT_EVENT_TYPES, since, undelivered_only)

    def list_dispute_events(self, since: datetime) -> list[Obj]:
        """``charge.dispute.*`` events created at or after ``since``, newest first, delivered or not.

        The Events API lists only the last 30 days; each event's ``data.object`` is the
        dispute as it was when the event was created, exactly what its webhook carried."""
        return self._list_events(DISPUTE_TYPES, since, undelivered_only=False)

    def _list_events(self, types: tuple[str, ...], since: datetime, undelivered_only: bool) -> list[Obj]:
        """``GET /v1/events?types[]=...&created[gte]=`` through every page (``types``: at most 20)."""
        if not 1 <= len(types) <= 20:
            raise ValueError("the Events API takes 1 to 20 event types")

        def page(after: str | None) -> Obj:
            params: dict[str, Any] = {"types": list(types), "created": {"gte": _unix(since)}, "limit": self._page_size}
            if undelivered_only:
                params["delivery_success"] = False
            if after:
                params["starting_after"] = after
            return self._call("reconciliation", "GET /v1/events", lambda: self._client.v1.events.list(params=params))

        return list(self._pages(page))

    def list_succeeded_payment_intents(self, since: datetime) -> list[str]:
        """Ids of PaymentIntents created at or after ``since`` that succeeded, newest first."""
        def page(after: str | None) -> Obj:
            params: dict[str, Any] = {"created": {"gte": _unix(since)}, "limit": self._page_size}
            if after:
                params["starting_after"] = after
            return self._call("reconciliation", "GET /v1/payment_intents",
                              lambda: self._client.v1.payment_intents.list(params=params))

        return [pi["id"] for pi in self._pages(page) if pi.get("status") == "succeeded"]

    # ---- refunds and disputes -------------------------------------------------------
    def fetch_refund(self, refund_id: str) -> Obj:
        """The refund as Stripe has it now (amount, status, payment_intent, charge)."""
        if not refund_id.startswith(("re_", "pyr_")):
            raise PermanentError(f"refund {refund_id}: not a Stripe refund id (expected re_...)")
        return self._call(f"refund {refund_id}", "GET /v1/refunds",
                          lambda: self._client.v1.refunds.retrieve(refund_id))

    def fetch_dispute(self, dispute_id: str) -> Obj:
        """The dispute as Stripe has it now (amount, status, reason, payment_intent)."""
        if not dispute_id.startswith("du_"):
            raise PermanentError(f"dispute {dispute_id}: not a Stripe dispute id (expected du_...)")
        return self._call(f"dispute {dispute_id}", "GET /v1/disputes",
                          lambda: self._client.v1.disputes.retrieve(dispute_id))

    def list_refunds(self, *, payment_intent: str | None = None, since: datetime | None = None) -> list[Obj]:
        """Refunds of one PaymentIntent, or all created at or after ``since``; newest first."""
        def page(after: str | None) -> Obj:
            params: dict[str, Any] = {"limit": self._page_size}
            if payment_intent:
                params["payment_intent"] = payment_intent
            if since is not None:
                params["created"] = {"gte": _unix(since)}
            if after:
                params["starting_after"] = after
            return self._call(payment_intent or "reconciliation", "GET /v1/refunds",
                              lambda: self._client.v1.refunds.list(params=params))

        return list(self._pages(page))

    def billing_invoice_of(self, pi: Obj) -> str | None:
        """The Stripe (Billing) invoice a PaymentIntent paid, or None for a shop payment.

        API versions before 2025-03-31 name it on the PaymentIntent (``invoice``); from then
        on an ``invoice_payments`` entry links the two."""
        invoice = _id_of(pi.get("invoice"))
        if invoice:
            return invoice
        params = {"payment": {"type": "payment_intent", "payment_intent": pi["id"]}, "limit": 1}
        page = self._call(f"order {pi['id']}", "GET /v1/invoice_payments",
                          lambda: self._client.v1.invoice_payments.list(params=params))  # type: ignore[arg-type]
        for entry in page.get("data") or []:
            return _id_of(entry.get("invoice")) or "an invoice"
        return None

    def list_succeeded_payment_intent_objects(self, since: datetime) -> list[Obj]:
        """PaymentIntents created at or after ``since`` that succeeded (whole objects), newest first."""
        def page(after: str | None) -> Obj:
            params: dict[str, Any] = {"created": {"gte": _unix(since)}, "limit": self._page_size}
            if after:
                params["starting_after"] = after
            return self._call("reconciliation", "GET /v1/payment_intents",
                              lambda: self._client.v1.payment_intents.list(params=params))

        return [pi for pi in self._pages(page) if pi.get("status") == "succeeded"]

    def check(self) -> None:
        """Cheap authenticated read (balance): raises PermanentError for a bad key, TransientError if down."""
        self._call("check", "GET /v1/balance", lambda: self._client.v1.balance.retrieve())

    # ---- plumbing -------------------------------------------------------------------
    @staticmethod
    def _pages(fetch: Callable[[str | None], Obj]) -> Iterator[Obj]:
        after: str | None = None
        while True:
            page = fetch(after)
            data = page.get("data") or []
            yield from data
            if not page.get("has_more") or not data:
                return
            after = data[-1]["id"]

    def _call(self, where: str, what: str, fn: Callable[[], Any]) -> Obj:
        with self._errors(where, what):
            result = fn()
        request_id = getattr(getattr(result, "last_response", None), "request_id", None)
        log.debug("Stripe %s for %s ok (request %s)", what, where, request_id)
        return result.to_dict() if hasattr(result, "to_dict") else dict(result)

    @contextmanager
    def _errors(self, where: str, what: str) -> Iterator[None]:
        try:
            yield
        except stripe.StripeError as exc:
            raise self._translate(exc, where, what) from None

    def _translate(self, exc: stripe.StripeError, where: str, what: str) -> Exception:
        status = exc.http_status
        error = getattr(exc, "error", None)
        code = getattr(error, "code", None) or exc.code
        reason = " ".join(str(exc.user_message or type(exc).__name__).split())[:400]
        if isinstance(exc, stripe.APIConnectionError):
            reason = "connection failed: " + reason
        request_id = exc.request_id
        parts = [f"Stripe {what} for {where} failed"]
        if status:
            parts.append(f"HTTP {status}")
        if code:
            parts.append(str(code))
        message = ": ".join([", ".join(parts), self._scrub(str(reason))])
        if request_id:
            message += f" (request {request_id})"
        retry_after = _retry_after(exc)
        if isinstance(exc, (stripe.APIConnectionError, stripe.RateLimitError)):
            return TransientError(message, retry_after=retry_after)
        if status is None or status in (408, 409, 429) or status >= 500:
            return TransientError(message, retry_after=retry_after)
        return PermanentError(message)

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "sk_***") if self._key else text


def _retry_after(exc: stripe.StripeError) -> float | None:
    headers = exc.headers or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _unix(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("since must be timezone-aware (UTC)")
    return int(moment.timestamp())


def _id_of(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("id")
    return value or None
