"""Reconciliation's choices, as pure functions: which Stripe events and PaymentIntents
become orders, which missed dispute events are recorded (and in what order), which failed
runs are re-driven, when it gives up and who hears of it, and which status callback a
finished order gets.

``reconciliation.py`` gathers the facts (Stripe, the ledger, Prefect) and acts on these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from orderpipe.connectors.base import Alert
from orderpipe.orders.prefect_api import RunInfo
from orderpipe.states import DISPUTE_TYPES, EventStatus, OrderState, StepState

#: A failed or crashed run is put back to AwaitingRetry while it has run at most this many times.
MAX_AUTO_RETRIES = 3
#: Prefect state types of a run that reconciliation re-drives.
REDRIVEN_STATE_TYPES = frozenset({"FAILED", "CRASHED"})
#: Order states whose runs reconciliation looks at (``running``: the run may have died unseen;
#: ``received`` with a run: it ended before its first ledger write, e.g. the database was away).
ORDER_STATES_TO_CHECK = (OrderState.FAILED, OrderState.RUNNING, OrderState.RECEIVED)
#: Order states whose status callback is re-sent until the shop acknowledges it.
CALLBACK_STATES = (OrderState.COMPLETED, OrderState.FAILED)


def new_events(events: Iterable[Mapping[str, object]], known_ids: set[str]) -> list[Mapping[str, object]]:
    """Stripe events of the window the ledger has not seen (webhooks missed): recorded as if delivered."""
    return [e for e in events if e["id"] not in known_ids]


def missed_dispute_events(events: Iterable[Mapping[str, Any]], known_ids: set[str]) -> list[Mapping[str, Any]]:
    """``charge.dispute.*`` events of the window the ledger has not seen, oldest first (Stripe
    lists newest first): recorded one by one as if their webhooks had come in that order.
    The order does not change the outcome (an older state never reopens a closed dispute),
    but the ledger then reads as the deliveries would have."""
    fresh = [e for e in events if e["id"] not in known_ids and e.get("type") in DISPUTE_TYPES]
    fresh.reverse()  # stable sort below: events of one second keep Stripe's order, oldest first
    return sorted(fresh, key=lambda e: e.get("created") if isinstance(e.get("created"), int) else 0)


def dispute_id_of(event: Mapping[str, Any]) -> str | None:
    """The ``du_...`` id a dispute event names (``data.object.id``)."""
    data = event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    dispute_id = obj.get("id") if isinstance(obj, Mapping) else None
    return dispute_id if isinstance(dispute_id, str) and dispute_id else None


def dispute_recorded(status: str, *, new_event: bool) -> bool:
    """Did recording a missed dispute event change the ledger's dispute? ``accepted``: a new
    dispute (its one alert raised) or a lost one's refund row; ``duplicate``: a newer state.
    ``ignored``: nothing changed (an older state, or the state the ledger has). An event the
    ledger had meanwhile (``new_event`` False: the receiver took it first) is not reconcile's."""
    return new_event and status in (EventStatus.ACCEPTED, EventStatus.DUPLICATE)


class PaymentAction(StrEnum):
    SKIP = "skip"  # the ledger has it already (as an order, or as an ignored payment)
    IGNORE = "ignore"  # a Stripe Billing invoice's payment: recorded as ignored, with the reason
    RECORD = "record"  # a paid order the ledger lacks: recorded, then started like any other


@dataclass(frozen=True)
class PaymentDecision:
    action: PaymentAction
    reason: str = ""


def skip_event_id(pi_id: str) -> str:
    """The ledger's event id for a PaymentIntent reconciliation recorded (or ignored) itself."""
    return f"reconcile:{pi_id}"


def payment_intent_decision(*, has_order: bool, already_seen: bool, billing_invoice: str | None) -> PaymentDecision:
    """A succeeded PaymentIntent of the window: record it as an order, ignore it, or skip it."""
    if has_order or already_seen:
        return PaymentDecision(PaymentAction.SKIP)
    if billing_invoice:
        return PaymentDecision(PaymentAction.IGNORE,
                               f"paid through Stripe invoice {billing_invoice} (Billing): not a shop order")
    return PaymentDecision(PaymentAction.RECORD)


class RunAction(StrEnum):
    LEAVE = "leave"  # not failed or crashed (still running, completed, scheduled...)
    RETRY = "retry"  # back to AwaitingRetry: the same run, the per-order cache skips what was done
    GIVE_UP = "give_up"  # failed too often: a person is told, once


def run_decision(run: RunInfo, *, max_retries: int = MAX_AUTO_RETRIES) -> RunAction:
    if run.state_type not in REDRIVEN_STATE_TYPES:
        return RunAction.LEAVE
    return RunAction.GIVE_UP if run.run_count > max_retries else RunAction.RETRY


def retry_message(run: RunInfo) -> str:
    return f"reconcile: retry after {run.state_type}"


def gave_up_alert(order_id: str, run: RunInfo, last_error: str | None, now: datetime) -> Alert:
    """One alert per order and final state type, however many reconciliations see it again."""
    return Alert(order_id=order_id, step="reconcile", kind="gave_up", occurred_at=now,
                 dedupe_key=f"gave_up:{order_id}:reconcile:{run.state_type}",
                 message=f"order {order_id}: reconciliation gave up after {run.run_count} runs ended {run.state_type}; "
                         f"last error: {last_error or 'none recorded'}. Fix the cause, "
                         f"then `orderpipe replay {order_id}`.")


@dataclass(frozen=True)
class Callback:
    status: str  # fulfilled | failed
    failed_step: str | None


def callback_for(order_state: str, steps: Mapping[str, str]) -> Callback:
    """The status callback of a finished order: fulfilled, or failed naming its first failed step."""
    if order_state == OrderState.COMPLETED:
        return Callback("fulfilled", None)
    return Callback("failed", next((s for s, st in steps.items() if st == StepState.FAILED), None))
