"""The names orderpipe stores and shows, each defined once: the steps of an order, the
states of orders, steps, dispatch and payment, and the Stripe event types that start a
fulfilment or name a dispute.

Every value equals the string stored in the database and printed by `orderpipe status
--json` (the contract's status object), so rows written before these enums existed read
back as the same members: ``OrderState("completed") is OrderState.COMPLETED``. StrEnum
members are ``str``: they compare equal to, format as and serialise to their value.
"""

from __future__ import annotations

from enum import StrEnum


class Step(StrEnum):
    """A business step of an order, in the order the flow runs them. The value is the Prefect
    task's name, the ledger's ``order_steps.step`` and the key in ``status --json``'s ``steps``;
    it is also part of each cached result's key (``<step>-order-<order id>``): never change one."""

    FETCH_ORDER = "fetch_order"
    CRM = "crm"
    PRODUCTION_LOG = "production_log"
    SHIPMENT = "shipment"
    INVOICE = "invoice"
    EMAIL = "email"


STEPS: tuple[Step, ...] = tuple(Step)


class StepState(StrEnum):
    """State of one step of one order (``order_steps.state``)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    NEEDS_ATTENTION = "needs_attention"  # outcome of a vendor write unknown; a person was alerted


class OrderState(StrEnum):
    """State of an order (``orders.state``)."""

    RECEIVED = "received"  # recorded, its flow run not started yet
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"  # fully refunded before it was fulfilled
    NEEDS_ATTENTION = "needs_attention"


FINAL_ORDER_STATES = frozenset({OrderState.COMPLETED, OrderState.FAILED, OrderState.CANCELLED,
                                OrderState.NEEDS_ATTENTION})


class DispatchState(StrEnum):
    """Whether the order's flow run was started (``orders.dispatch``)."""

    PENDING = "pending"  # to be started by the dispatcher (again, after a back-off, if Prefect refused)
    STARTED = "started"


class PaymentStatus(StrEnum):
    """The order's payment as Stripe last told it (``status --json``'s ``payment_status``)."""

    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    DISPUTED = "disputed"


class EventStatus(StrEnum):
    """What the receiver answered for a Stripe event (``events.status``)."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    ALERTED = "alerted"


# Stripe event types that mean "this order is paid: fulfil it" (checkout.session.completed
# only with payment_status paid or no_payment_required).
FULFILMENT_TYPES: tuple[str, ...] = (
    "payment_intent.succeeded",
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
)
PAYMENT_FAILED_TYPES: tuple[str, ...] = ("payment_intent.payment_failed", "checkout.session.async_payment_failed")
# Stripe event types of a dispute (``orderpipe.orders.refund_ledger`` records them, the
# receiver and reconciliation alike).
DISPUTE_TYPES: tuple[str, ...] = (
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
)
