"""In-memory state of the Stripe stand-in: orders, events, injected failures, request log.

Thread-safe (the stand-in serves each request in its own thread). Objects are stored as
Stripe returns them with nothing expanded: ``price.product`` is a product id, and line
items keep their ``taxes`` (the server strips them unless ``expand[]=data.taxes``).
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

DEFAULT_API_KEY = "sk_test_orderpipe_standin"

Obj = dict[str, Any]


@dataclass
class InjectedFailure:
    """Answer the next ``remaining`` matching requests with ``status`` instead of the real thing."""

    path_prefix: str
    status: int
    remaining: int = 1
    method: str | None = None  # None: any method
    should_retry: bool | None = None  # sets Stripe-Should-Retry when not None

    def matches(self, method: str, path: str) -> bool:
        return (self.remaining > 0 and path.startswith(self.path_prefix)
                and (self.method is None or self.method.upper() == method.upper()))


@dataclass
class EventRecord:
    event: Obj
    delivered: bool = False


@dataclass
class StandinStore:
    api_key: str = DEFAULT_API_KEY
    accept_any_test_key: bool = True  # any sk_test_... works, like a sandbox with many keys
    payment_intents: dict[str, Obj] = field(default_factory=dict)
    sessions: dict[str, Obj] = field(default_factory=dict)
    line_items: dict[str, list[Obj]] = field(default_factory=dict)  # session id -> items
    customers: dict[str, Obj] = field(default_factory=dict)
    products: dict[str, Obj] = field(default_factory=dict)
    charges: dict[str, Obj] = field(default_factory=dict)  # made from the PaymentIntent on first use
    refunds: dict[str, Obj] = field(default_factory=dict)
    disputes: dict[str, Obj] = field(default_factory=dict)
    invoice_payments: list[Obj] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    failures: list[InjectedFailure] = field(default_factory=list)
    requests: list[Obj] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    # ---- auth -----------------------------------------------------------------------
    def key_is_valid(self, key: str | None) -> bool:
        if not key:
            return False
        return key == self.api_key or (self.accept_any_test_key and key.startswith("sk_test_"))

    # ---- orders ---------------------------------------------------------------------
    def add_order(self, payment_intent: Obj | None, session: Obj | None = None, line_items: list[Obj] | None = None,
                  customer: Obj | None = None, products: list[Obj] | None = None) -> str:
        """Store one order (deep-copied); expanded products in line items are split out. Returns the
        order id: the PI id, or for a free Checkout order (`payment_intent` None, the session's
        `payment_status` `no_payment_required`) the session id."""
        if session is not None and not str(session.get("id", "")).startswith("cs_"):
            raise ValueError("session.id must be a cs_... id")
        if payment_intent is None:
            if session is None or session.get("payment_intent") or session.get(
                    "payment_status") != "no_payment_required":
                raise ValueError("an order without a PaymentIntent is a session with payment_status "
                                 "no_payment_required")
            pi_id = str(session["id"])
        else:
            pi_id = payment_intent.get("id")
        if payment_intent is not None and (not isinstance(pi_id, str) or not pi_id.startswith("pi_")):
            raise ValueError("payment_intent.id must be a pi_... id")
        with self.lock:
            for product in products or []:
                self.products[product["id"]] = copy.deepcopy(product)
            items = []
            for item in line_items or []:
                item = copy.deepcopy(item)
                price = item.get("price") or {}
                if isinstance(price.get("product"), dict):
                    product = price["product"]
                    self.products[product["id"]] = product
                    price["product"] = product["id"]
                items.append(item)
            if payment_intent is not None:
                self.payment_intents[pi_id] = copy.deepcopy(dict(payment_intent))
                invoice = payment_intent.get("invoice")
                if invoice:  # a Billing payment: basil and later link it through invoice_payments
                    self.add_invoice_payment(pi_id, invoice if isinstance(invoice, str) else invoice["id"])
            if session is not None:
                self.sessions[session["id"]] = copy.deepcopy(dict(session))
                self.line_items[session["id"]] = items
            if customer is not None:
                self.customers[customer["id"]] = copy.deepcopy(dict(customer))
        return pi_id

    def order_ids(self) -> list[str]:
        with self.lock:
            free = [cs for cs, s in self.sessions.items() if not s.get("payment_intent")]
            return list(self.payment_intents) + free

    def session_for(self, pi_id: str) -> Obj | None:
        with self.lock:
            for session in self.sessions.values():
                if session.get("payment_intent") == pi_id:
                    return session
        return None

    # ---- charges, refunds, disputes, invoice payments ---------------------------------
    def charge_for(self, pi_id: str) -> Obj:
        """The PaymentIntent's (latest) charge, made the way Stripe shows it on first use."""
        with self.lock:
            pi = self.payment_intents.get(pi_id)
            if pi is None:
                raise KeyError(f"stand-in has no order {pi_id}")
            charge_id = pi.get("latest_charge") if isinstance(pi.get("latest_charge"), str) else None
            charge_id = charge_id or "ch_" + pi_id[3:]
            pi["latest_charge"] = charge_id
            if charge_id not in self.charges:
                amount = int(pi.get("amount_received") or pi.get("amount") or 0)
                self.charges[charge_id] = {
                    "id": charge_id, "object": "charge", "amount": amount, "amount_captured": amount,
                    "amount_refunded": 0, "balance_transaction": "txn_" + pi_id[3:], "captured": True,
                    "created": pi.get("created", int(time.time())), "currency": pi.get("currency"),
                    "customer": pi.get("customer"), "description": pi.get("description"), "disputed": False,
                    "livemode": bool(pi.get("livemode")), "metadata": {}, "paid": True, "payment_intent": pi_id,
                    "payment_method": pi.get("payment_method"), "receipt_email": pi.get("receipt_email"),
                    "refunded": False, "status": "succeeded",
                }
            return self.charges[charge_id]

    def add_refund(self, pi_id: str, amount: int | None = None, *, status: str = "succeeded",
                   reason: str | None = "requested_by_customer", refund_id: str | None = None,
                   created: int | None = None) -> Obj:
        """Refund (part of) the PaymentIntent's charge as ``POST /v1/refunds`` would; ValueError past the charge."""
        with self.lock:
            charge = self.charge_for(pi_id)
            left = charge["amount"] - charge["amount_refunded"]
            amount = left if amount is None else int(amount)
            if left <= 0:
                raise ValueError(f"Charge {charge['id']} has already been refunded.")
            if not 0 < amount <= left:
                raise ValueError(f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})")
            refund = {
                "id": refund_id or "re_" + uuid.uuid4().hex[:24], "object": "refund", "amount": amount,
                "balance_transaction": None, "charge": charge["id"],
                "created": int(created if created is not None else time.time()), "currency": charge["currency"],
                "destination_details": {"card": {"type": "refund"}, "type": "card"}, "metadata": {},
                "payment_intent": pi_id, "reason": reason, "receipt_number": None,
                "source_transfer_reversal": None, "status": status, "transfer_reversal": None,
            }
            self.refunds[refund["id"]] = refund
            if status not in ("failed", "canceled"):
                charge["amount_refunded"] += amount
                charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
            return copy.deepcopy(refund)

    def update_refund(self, refund_id: str, **fields: Any) -> Obj:
        with self.lock:
            refund = self.refunds[refund_id]
            was_counted = refund["status"] not in ("failed", "canceled")
            refund.update(fields)
            if was_counted and refund["status"] in ("failed", "canceled"):
                charge = self.charges[refund["charge"]]
                charge["amount_refunded"] -= refund["amount"]
                charge["refunded"] = False
            return copy.deepcopy(refund)

    def add_dispute(self, pi_id: str, amount: int | None = None, *, reason: str = "fraudulent",
                    status: str = "needs_response", dispute_id: str | None = None,
                    created: int | None = None) -> Obj:
        """The dispute alone, no event (``events.open_dispute`` also stores the event Stripe emits)."""
        with self.lock:
            charge = self.charge_for(pi_id)
            charge["disputed"] = True
            created = int(created if created is not None else time.time())
            dispute = {
                "id": dispute_id or "du_" + uuid.uuid4().hex[:24], "object": "dispute",
                "amount": charge["amount"] if amount is None else int(amount), "balance_transactions": [],
                "charge": charge["id"], "created": created, "currency": charge["currency"],
                "evidence_details": {"due_by": created + 7 * 86400, "has_evidence": False,
                                     "past_due": False, "submission_count": 0},
                "is_charge_refundable": False, "livemode": False, "metadata": {}, "payment_intent": pi_id,
                "reason": reason, "status": status,
            }
            self.disputes[dispute["id"]] = dispute
            return copy.deepcopy(dispute)

    def update_dispute(self, dispute_id: str, **fields: Any) -> Obj:
        with self.lock:
            self.disputes[dispute_id].update(fields)
            return copy.deepcopy(self.disputes[dispute_id])

    def add_invoice_payment(self, pi_id: str, invoice_id: str) -> Obj:
        """A Stripe Billing invoice paid by this PaymentIntent (``GET /v1/invoice_payments``)."""
        with self.lock:
            pi = self.payment_intents.get(pi_id) or {}
            entry = {
                "id": "inpay_" + uuid.uuid4().hex[:24], "object": "invoice_payment",
                "amount_paid": pi.get("amount"), "amount_requested": pi.get("amount"),
                "created": pi.get("created", int(time.time())), "currency": pi.get("currency"),
                "invoice": invoice_id, "is_default": True, "livemode": False,
                "payment": {"type": "payment_intent", "payment_intent": pi_id}, "status": "paid",
            }
            self.invoice_payments.append(entry)
            return copy.deepcopy(entry)

    # ---- events ---------------------------------------------------------------------
    def add_event(self, event: Obj, *, delivered: bool = False) -> Obj:
        with self.lock:
            self.events.append(EventRecord(copy.deepcopy(event), delivered))
        return event

    def set_delivered(self, event_id: str, delivered: bool) -> bool:
        with self.lock:
            for record in self.events:
                if record.event["id"] == event_id:
                    record.delivered = delivered
                    return True
        return False

    def event_views(self) -> list[tuple[Obj, bool]]:
        """(event, delivered) newest first, as the API shows them (``pending_webhooks`` 0 once delivered)."""
        with self.lock:
            records = list(enumerate(self.events))
        records.sort(key=lambda pair: (pair[1].event.get("created", 0), pair[0]), reverse=True)
        out = []
        for _, record in records:
            event = copy.deepcopy(record.event)
            event["pending_webhooks"] = 0 if record.delivered else 1
            out.append((event, record.delivered))
        return out

    # ---- failures and request log ---------------------------------------------------
    def fail_next(self, path_prefix: str, status: int, count: int = 1, *, method: str | None = None,
                  should_retry: bool | None = None) -> None:
        with self.lock:
            self.failures.append(InjectedFailure(path_prefix, status, count, method, should_retry))

    def take_failure(self, method: str, path: str) -> InjectedFailure | None:
        with self.lock:
            for failure in self.failures:
                if failure.matches(method, path):
                    failure.remaining -= 1
                    return failure
        return None

    def clear_failures(self) -> None:
        with self.lock:
            self.failures.clear()

    def log_request(self, entry: Obj) -> None:
        with self.lock:
            self.requests.append(entry)

    def request_log(self) -> list[Obj]:
        with self.lock:
            return copy.deepcopy(self.requests)

    def clear_request_log(self) -> None:
        with self.lock:
            self.requests.clear()
