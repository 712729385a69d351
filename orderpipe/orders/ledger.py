"""The event ledger and order records: what the receiver writes before it answers 2xx.

All writes rely on unique constraints (event id, order id), so concurrent deliveries of
one event, or of sibling events of one order, record one order exactly once.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, or_, select, update
from sqlmodel import Session

from orderpipe.alerting import alerts
from orderpipe.connectors.base import Alert
from orderpipe.db import aware, insert_ignore, reader, session_scope, upsert, write_one
from orderpipe.orders import dispatch_rules
from orderpipe.orders.refund_ledger import (
    CHARGE_REFUNDED,
    DISPUTE_EVENT_TYPES,
    REFUND_EVENT_TYPES,
    record_refund_event,
    refund_event_order,
)
from orderpipe.orders.wakeup import notify_in_transaction
from orderpipe.states import (  # STEPS and FULFILMENT_TYPES are imported from here too
    FULFILMENT_TYPES,
    PAYMENT_FAILED_TYPES,
    STEPS,
    DispatchState,
    EventStatus,
    OrderState,
    Step,
    StepState,
)
from orderpipe.tables import Event, OrderRecord, OrderStep, utcnow


@dataclass(frozen=True)
class Classified:
    """What an event means for orderpipe."""

    action: str  # fulfil | payment_failed | refund | ignore
    order_id: str | None
    reason: str = ""


def _checkout_order_id(obj: dict[str, Any]) -> str | None:
    """A Checkout Session's order: its PaymentIntent, or for a free order (no payment
    required, no PaymentIntent) the session itself (contract, "Order identity")."""
    pi = obj.get("payment_intent")
    if isinstance(pi, dict):
        pi = pi.get("id")
    if isinstance(pi, str) and pi:
        return pi
    if obj.get("payment_status") == "no_payment_required" and str(obj.get("id", "")).startswith("cs_"):
        return str(obj["id"])
    return None


def classify(event: dict[str, Any]) -> Classified:
    """Decide from the (verified) event what to do. Order data itself is never taken from here."""
    etype = event.get("type", "")
    obj = (event.get("data") or {}).get("object") or {}
    if not isinstance(obj, dict):
        return Classified("ignore", None, "event has no data.object")
    if etype in REFUND_EVENT_TYPES or etype in DISPUTE_EVENT_TYPES or etype == CHARGE_REFUNDED:
        return Classified("refund", refund_event_order(obj))  # refunds and disputes: refund_ledger
    if etype.startswith("payment_intent."):
        order_id = obj.get("id") if str(obj.get("id", "")).startswith("pi_") else None
        if obj.get("invoice") and etype in FULFILMENT_TYPES:  # API versions before 2025-03-31 name it here
            invoice = obj["invoice"] if isinstance(obj["invoice"], str) else obj["invoice"].get("id")
            return Classified("ignore", order_id, f"paid through Stripe invoice {invoice} (Billing): not a shop order")
    elif etype.startswith("checkout.session."):
        order_id = _checkout_order_id(obj)
    else:
        order_id = None
    if etype in FULFILMENT_TYPES:
        if etype == "checkout.session.completed" and obj.get("payment_status") not in ("paid", "no_payment_required"):
            return Classified("ignore", order_id,
                              f"checkout session payment_status is {str(obj.get('payment_status'))[:40]!r}")
        if not order_id:
            return Classified("ignore", None, "paid event without a PaymentIntent id")
        return Classified("fulfil", order_id)
    if etype in PAYMENT_FAILED_TYPES:
        return Classified("payment_failed", order_id)
    return Classified("ignore", order_id, f"event type {etype} needs no action")


@dataclass(frozen=True)
class Recorded:
    status: str  # accepted | duplicate | ignored
    event_id: str
    order_id: str | None
    alert: Alert | None = None
    new_event: bool = True  # False: the ledger had this event id already (a redelivery, or a race)


def _text(value: Any, limit: int = 2000) -> str:
    """Text from an event as a database takes it: no NUL, no lone surrogates, bounded."""
    return str(value)[:limit].replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


class _RecentlyRecorded:
    """Event ids this process knows are in the ledger (recorded here, or read back), per
    database, most recent kept. A ledger row is never taken back, so a hit is a true
    duplicate: a retry storm of one event is answered without touching the database."""

    MAX = 50_000

    def __init__(self) -> None:
        self._ids: dict[str, OrderedDict[str, None]] = {}
        self._lock = threading.Lock()

    def __contains__(self, key: tuple[Engine, str]) -> bool:
        engine, event_id = key
        with self._lock:
            ids = self._ids.get(str(engine.url))
            if ids is None or event_id not in ids:
                return False
            ids.move_to_end(event_id)
            return True

    def add(self, engine: Engine, event_id: str) -> None:
        with self._lock:
            ids = self._ids.setdefault(str(engine.url), OrderedDict())
            ids[event_id] = None
            ids.move_to_end(event_id)
            if len(ids) > self.MAX:
                ids.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._ids.clear()


recently_recorded = _RecentlyRecorded()


def already_recorded(engine: Engine, event_id: str) -> bool:
    """Is this event in the ledger? From memory, else one read (no write lock, no transaction)."""
    if (engine, event_id) in recently_recorded:
        return True
    with reader(engine).connect() as conn:
        found = conn.execute(select(Event.id).where(Event.id == event_id)).first() is not None  # type: ignore[arg-type]
    if found:
        recently_recorded.add(engine, event_id)
    return found


def record_event(engine: Engine, event: dict[str, Any], raw_body: str, classified: Classified | None = None
                 ) -> Recorded:
    """Durably record a verified event and, for a paid one, its order (at most once).

    A redelivery (Stripe retries, a retry storm) is answered from one indexed read; only
    an event not seen yet opens a write transaction (whose unique constraints still decide
    races between concurrent first deliveries)."""
    event_id = str(event["id"])
    c = classified or classify(event)
    if already_recorded(engine, event_id):
        return Recorded(EventStatus.DUPLICATE, event_id, c.order_id, new_event=False)
    status = {"fulfil": EventStatus.ACCEPTED, "payment_failed": EventStatus.IGNORED,
              "ignore": EventStatus.IGNORED, "refund": EventStatus.ACCEPTED}[c.action]
    alert: Alert | None = None
    with session_scope(engine) as s:
        inserted = insert_ignore(
            s,
            Event,
            dict(
                id=event_id, type=str(event.get("type", "")), order_id=c.order_id,
                livemode=bool(event.get("livemode", False)), raw_body=raw_body,
                received_at=utcnow(), status=status, error=_text(c.reason) or None,
            ),
        )
        if not inserted:
            return Recorded(EventStatus.DUPLICATE, event_id, c.order_id, new_event=False)
        if c.action == "refund":
            outcome = record_refund_event(s, event, event_id)
            if outcome.status != status:
                s.execute(update(Event).where(Event.id == event_id).values(status=outcome.status))
            return Recorded(outcome.status, event_id, c.order_id, outcome.alert)
        if c.action == "fulfil":
            assert c.order_id
            new_order = insert_ignore(
                s, OrderRecord, dict(order_id=c.order_id, first_event_id=event_id, created_at=utcnow(),
                                     updated_at=utcnow(), state=OrderState.RECEIVED, dispatch=DispatchState.PENDING),
            )
            if not new_order:
                s.execute(update(Event).where(Event.id == event_id).values(status=EventStatus.DUPLICATE))
                return Recorded(EventStatus.DUPLICATE, event_id, c.order_id)
            for step in STEPS:
                insert_ignore(s, OrderStep, dict(order_id=c.order_id, step=step, state=StepState.PENDING,
                                                 updated_at=utcnow()))
            notify_in_transaction(s.connection(), c.order_id)
        elif c.action == "payment_failed":
            obj = (event.get("data") or {}).get("object")
            obj = obj if isinstance(obj, dict) else {}
            last_error = obj.get("last_payment_error")
            err = last_error.get("message") if isinstance(last_error, dict) else None
            message = _text(f"payment failed for {c.order_id or obj.get('id')} ({event.get('type')})" + (
                f": {err}" if err else ""
            ) + "; nothing was fulfilled")
            alert = Alert(
                dedupe_key=f"payment_failed:{event_id}", order_id=c.order_id, step=None,
                kind="payment_failed", message=message, occurred_at=utcnow(),
            )
            alerts.record(s, alert)
    recently_recorded.add(engine, event_id)  # committed
    return Recorded(status, event_id, c.order_id, alert)


def record_missing_order(engine: Engine, order_id: str, source: str) -> bool:
    """Reconciliation: record an order Stripe knows as paid but the ledger lacks. True if new."""
    with session_scope(engine) as s:
        new = insert_ignore(
            s, OrderRecord, dict(order_id=order_id, first_event_id=source, created_at=utcnow(), updated_at=utcnow(),
                                 state=OrderState.RECEIVED, dispatch=DispatchState.PENDING),
        )
        if new:
            for step in STEPS:
                insert_ignore(s, OrderStep, dict(order_id=order_id, step=step, state=StepState.PENDING,
                                                 updated_at=utcnow()))
            notify_in_transaction(s.connection(), order_id)
        return new


def record_ignored(engine: Engine, source: str, order_id: str, reason: str) -> bool:
    """Reconciliation: note a payment it skipped (e.g. a Billing invoice's) once, with the reason."""
    with session_scope(engine) as s:
        return insert_ignore(s, Event, dict(id=source, type="reconcile.skipped", order_id=order_id, livemode=False,
                                            raw_body="{}", received_at=utcnow(), status="ignored", error=reason))


def record_reconciled_event(engine: Engine, event: dict[str, Any]) -> Recorded:
    """An event found by listing Stripe events (missed by the webhook) goes through the same ledger.

    Its ``raw_body`` is the event as the Events API returned it, re-serialised as compact
    JSON: no webhook delivered it, so there are no signed bytes to keep. Its ``data.object``
    is still what the webhook would have carried (Stripe renders a listed event in the API
    version of its creation), and a later delivery of it is a ``duplicate`` by its id."""
    return record_event(engine, event, json.dumps(event, separators=(",", ":")))


def _due(now: datetime) -> Any:
    """``dispatch_rules.due`` in SQL: pending, past any back-off, oldest first."""
    return (select(OrderRecord.order_id)
            .where(OrderRecord.dispatch == DispatchState.PENDING)
            .where(or_(OrderRecord.next_dispatch_at.is_(None), OrderRecord.next_dispatch_at <= now))  # type: ignore[union-attr]
            .order_by(OrderRecord.created_at))


def due_for_dispatch(engine: Engine, limit: int = 50) -> list[str]:
    with Session(reader(engine)) as s:
        return list(s.scalars(_due(utcnow()).limit(limit)).all())


def claim_for_dispatch(session: Session, limit: int) -> list[str]:
    """Pending orders, locked for this transaction; on Postgres rows another dispatcher holds
    are skipped (FOR UPDATE SKIP LOCKED), so several workers never start the same order at once."""
    q = _due(utcnow()).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True, of=OrderRecord)  # type: ignore[arg-type]
    return list(session.scalars(q).all())


def mark_dispatched(session: Session, order_id: str, flow_run_id: str) -> None:
    session.execute(
        update(OrderRecord).where(OrderRecord.order_id == order_id).values(
            dispatch=DispatchState.STARTED, flow_run_id=flow_run_id, last_error=None, updated_at=utcnow(),
            dispatch_failing_since=None,
            dispatch_attempts=OrderRecord.dispatch_attempts + 1, next_dispatch_at=None,
        )
    )
    session.execute(update(Event).where(Event.order_id == order_id).where(Event.flow_run_id.is_(None))  # type: ignore[union-attr]
                    .values(flow_run_id=flow_run_id))


def mark_dispatch_failed(session: Session, order_id: str, error: str) -> datetime | None:
    """Prefect unreachable or refused: keep the order pending and back off (max 60 s).
    Returns since when this order's starts have been failing in a row."""
    row = session.get(OrderRecord, order_id)
    if row is None:
        return None
    if row.dispatch_failing_since is None:
        row.dispatch_failing_since = utcnow()
    attempts = row.dispatch_attempts + 1
    row.dispatch_attempts = attempts
    row.next_dispatch_at = utcnow() + dispatch_rules.backoff(attempts)
    row.last_error = error[:2000]
    row.updated_at = utcnow()
    session.add(row)
    return aware(row.dispatch_failing_since)


def set_order_state(engine: Engine, order_id: str, state: str, **fields: Any) -> None:
    write_one(engine, update(OrderRecord).where(OrderRecord.order_id == order_id)  # type: ignore[arg-type]
              .values(state=state, updated_at=utcnow(), **fields))


def set_order_fields(engine: Engine, order_id: str, **fields: Any) -> None:
    write_one(engine, update(OrderRecord).where(OrderRecord.order_id == order_id)  # type: ignore[arg-type]
              .values(updated_at=utcnow(), **fields))


def set_step(engine: Engine, order_id: str, step: str, state: str, error: str | None = None) -> None:
    """One statement (a step changes state twice per attempt, on every order)."""
    columns = OrderStep.__table__.c  # type: ignore[attr-defined]
    running = state == StepState.RUNNING
    now = utcnow()
    upsert(engine, OrderStep,
           dict(order_id=order_id, step=str(step), state=str(state), error=error, updated_at=now,
                attempts=1 if running else 0),
           dict(state=str(state), error=error, updated_at=now,
                **({"attempts": columns.attempts + 1} if running else {})))


def steps_of(engine: Engine, order_id: str) -> dict[Step, str]:
    with Session(reader(engine)) as s:
        rows = s.scalars(select(OrderStep).where(OrderStep.order_id == order_id)).all()
    found = {r.step: r.state for r in rows}
    return {step: found.get(step, StepState.PENDING) for step in STEPS}


def get_order(engine: Engine, order_id: str) -> OrderRecord | None:
    with Session(reader(engine), expire_on_commit=False) as s:
        return s.get(OrderRecord, order_id)


def recent_orders(engine: Engine, limit: int = 20) -> list[OrderRecord]:
    with Session(reader(engine), expire_on_commit=False) as s:
        return list(s.scalars(select(OrderRecord).order_by(OrderRecord.created_at.desc()).limit(limit)).all())  # type: ignore[attr-defined]


def orders_in_states(engine: Engine, states: list[str], since: datetime | None = None) -> list[OrderRecord]:
    with Session(reader(engine), expire_on_commit=False) as s:
        q = select(OrderRecord).where(OrderRecord.state.in_(states))  # type: ignore[attr-defined]
        if since is not None:
            q = q.where(OrderRecord.created_at >= since.astimezone(UTC))
        return list(s.scalars(q).all())


def known_event_ids(engine: Engine, ids: list[str]) -> set[str]:
    if not ids:
        return set()
    with Session(reader(engine)) as s:
        return set(s.scalars(select(Event.id).where(Event.id.in_(ids))).all())  # type: ignore[attr-defined]
