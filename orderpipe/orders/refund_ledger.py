"""Refunds and disputes in the ledger: what the receiver records for them, and their dispatch.

* ``refund.created`` / ``refund.updated`` / ``charge.refund.updated`` name one refund: its
  row (primary key = the ``re_`` id) is inserted once, however many events name it; the
  first event is ``accepted``, every later one ``duplicate``.
* ``charge.refunded`` names a charge: the receiver does no vendor I/O and never trusts the
  body's list of refunds, so it records a *refund scan* of the PaymentIntent; the
  dispatcher lists that PaymentIntent's refunds from the Stripe API and records each.
* ``charge.dispute.*``: one row per dispute; the first event raises one ops alert (order,
  amount, reason); a dispute closed ``lost`` becomes a refund row of kind ``dispute`` (id
  ``du_...``), credited by the refund flow like a refund.

Amounts and statuses the receiver sees in a body are only bookkeeping; the refund flow
reads every refund and dispute back from Stripe before it credits anything.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, func, or_, select, update
from sqlmodel import Session

from orderpipe.alerting import alerts
from orderpipe.connectors.base import Alert
from orderpipe.db import insert_ignore, session_scope
from orderpipe.money import to_decimal
from orderpipe.orders.wakeup import notify_in_transaction
from orderpipe.states import DISPUTE_TYPES
from orderpipe.tables import CreditNoteRecord, DisputeRecord, RefundRecord, RefundScan, utcnow

REFUND_EVENT_TYPES = frozenset({"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"})
CHARGE_REFUNDED = "charge.refunded"
DISPUTE_EVENT_TYPES = frozenset(DISPUTE_TYPES)
CLOSED_DISPUTE = frozenset({"won", "lost", "warning_closed", "prevented"})
NOT_DISPUTED = frozenset({"won", "warning_closed", "prevented"})
COUNTED_REFUND = frozenset({"succeeded", "pending", "requires_action"})  # what Stripe's amount_refunded counts
log = logging.getLogger("orderpipe.refunds")


_STRIPE_ID = re.compile(r"[A-Za-z0-9_]{1,255}")


def _id(value: Any) -> str | None:
    """A Stripe object id (or an expanded object's), else None: the receiver stores what it
    can trust to fit its columns."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and _STRIPE_ID.fullmatch(value) else None


def _short(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def refund_event_order(obj: dict[str, Any]) -> str | None:
    """The PaymentIntent a refund, charge or dispute object names."""
    return _id(obj.get("payment_intent"))


@dataclass(frozen=True)
class RefundOutcome:
    status: str  # accepted | duplicate | ignored
    alert: Alert | None = None


def _new_refund(s: Session, refund_id: str, *, kind: str, order_id: str | None, charge_id: str | None,
                source: str) -> bool:
    now = utcnow()
    new = insert_ignore(s, RefundRecord, dict(
        refund_id=refund_id, kind=kind, order_id=order_id, charge_id=charge_id, first_event_id=source,
        state="received", dispatch="pending", dispatch_attempts=0, created_at=now, updated_at=now,
    ))
    if new:
        notify_in_transaction(s.connection(), refund_id)
    return new


def record_refund_event(s: Session, event: dict[str, Any], event_id: str) -> RefundOutcome:
    """Within the receiver's transaction: the refund, scan or dispute an event names."""
    etype = str(event.get("type", ""))
    obj = (event.get("data") or {}).get("object") if isinstance(event.get("data"), dict) else None
    if not isinstance(obj, dict):
        return RefundOutcome("ignored")
    order_id = refund_event_order(obj)
    if etype in REFUND_EVENT_TYPES:
        refund_id = _id(obj.get("id"))
        if not refund_id:
            return RefundOutcome("ignored")
        if _new_refund(s, refund_id, kind="refund", order_id=order_id, charge_id=_id(obj.get("charge")),
                       source=event_id):
            return RefundOutcome("accepted")
        row = s.get(RefundRecord, refund_id)
        if row is not None and row.credit_note_number and obj.get("status") in ("failed", "canceled"):
            alert = Alert(
                dedupe_key=f"refund_failed_after_credit:{refund_id}", order_id=row.order_id, step="credit_note",
                kind="refund_failed", occurred_at=utcnow(),
                message=f"order {row.order_id}: refund {refund_id} is {obj.get('status')} at Stripe after credit "
                        f"note {row.credit_note_number} was issued; a person must check (re-invoice the amount)")
            alerts.record(s, alert)
            return RefundOutcome("duplicate", alert)
        return RefundOutcome("duplicate")
    if etype == CHARGE_REFUNDED:
        if not order_id:
            return RefundOutcome("ignored")
        named = [_id(r) for r in ((obj.get("refunds") or {}).get("data") or []) if isinstance(r, dict)]
        if named and all(s.get(RefundRecord, r) is not None for r in named if r):
            return RefundOutcome("duplicate")  # every refund it names is known already
        if not insert_ignore(s, RefundScan, dict(order_id=order_id, charge_id=_id(obj.get("id")), pending=True,
                                                 requested_at=utcnow())):
            s.execute(update(RefundScan).where(RefundScan.order_id == order_id)
                      .values(pending=True, requested_at=utcnow()))
        notify_in_transaction(s.connection(), order_id)
        return RefundOutcome("accepted")
    if etype in DISPUTE_EVENT_TYPES:
        return _record_dispute(s, obj, order_id, event_id)
    return RefundOutcome("ignored")


def _record_dispute(s: Session, obj: dict[str, Any], order_id: str | None, event_id: str) -> RefundOutcome:
    dispute_id = _id(obj.get("id"))
    if not dispute_id:
        return RefundOutcome("ignored")
    status = _short(obj.get("status"), 40) or "needs_response"
    now = utcnow()
    amount = obj.get("amount") if isinstance(obj.get("amount"), int) and not isinstance(obj.get("amount"), bool) \
        and 0 <= obj["amount"] < 2**62 else None
    currency = obj.get("currency") if isinstance(obj.get("currency"), str) and len(obj["currency"]) == 3 else None
    reason = _short(obj.get("reason"), 64)
    new = insert_ignore(s, DisputeRecord, dict(
        dispute_id=dispute_id, order_id=order_id, charge_id=_id(obj.get("charge")), amount=amount,
        currency=currency, reason=reason, status=status, created_at=now, updated_at=now,
    ))
    alert = None
    outcome = "accepted" if new else "ignored"
    if new:
        money = f"{to_decimal(amount, currency)} {str(currency).upper()}" if amount is not None and currency else "?"
        alert = Alert(
            dedupe_key=f"dispute:{dispute_id}", order_id=order_id, step=None, kind="dispute", occurred_at=now,
            message=f"order {order_id or '(unknown)'}: dispute {dispute_id} for {money}, reason "
                    f"{reason or 'unknown'}, status {status}; respond in the Stripe Dashboard",
        )
        alerts.record(s, alert)
    else:
        row = s.get(DisputeRecord, dispute_id)
        assert row is not None
        # Events come in any order: a closed dispute is never reopened by an older event.
        if row.status != status and not (row.status in CLOSED_DISPUTE and status not in CLOSED_DISPUTE):
            row.status, row.updated_at = status, now
            s.add(row)
            outcome = "duplicate"
    if status == "lost" and _new_refund(s, dispute_id, kind="dispute", order_id=order_id,
                                        charge_id=_id(obj.get("charge")), source=event_id):
        outcome = "accepted"  # credited like a refund, by the refund flow
    return RefundOutcome(outcome, alert)


def record_refund(engine: Engine, refund_id: str, order_id: str | None, charge_id: str | None, source: str,
                  *, kind: str = "refund") -> bool:
    """A refund found by listing Stripe (a scan or reconciliation); True when it was new."""
    with session_scope(engine) as s:
        return _new_refund(s, refund_id, kind=kind, order_id=order_id, charge_id=charge_id, source=source)


# ---- scans (charge.refunded) --------------------------------------------------------

def pending_scans(engine: Engine, limit: int = 50) -> list[str]:
    with Session(engine) as s:
        return list(s.scalars(select(RefundScan.order_id).where(RefundScan.pending.is_(True))  # type: ignore[attr-defined]
                              .order_by(RefundScan.requested_at).limit(limit)).all())


def finish_scan(engine: Engine, order_id: str, error: str | None = None) -> None:
    with session_scope(engine) as s:
        s.execute(update(RefundScan).where(RefundScan.order_id == order_id)
                  .values(pending=error is not None, last_error=error))


# ---- dispatch -----------------------------------------------------------------------

def _due() -> Any:
    now = utcnow()
    return (select(RefundRecord.refund_id).where(RefundRecord.dispatch == "pending")
            .where(or_(RefundRecord.next_dispatch_at.is_(None), RefundRecord.next_dispatch_at <= now))  # type: ignore[union-attr]
            .order_by(RefundRecord.created_at))


def due_for_dispatch(engine: Engine, limit: int = 50) -> list[str]:
    with Session(engine) as s:
        return list(s.scalars(_due().limit(limit)).all())


def claim_for_dispatch(session: Session, limit: int) -> list[str]:
    q = _due().limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True, of=RefundRecord)  # type: ignore[arg-type]
    return list(session.scalars(q).all())


def mark_dispatched(session: Session, refund_id: str, flow_run_id: str) -> None:
    session.execute(update(RefundRecord).where(RefundRecord.refund_id == refund_id).values(
        dispatch="started", flow_run_id=flow_run_id, last_error=None, updated_at=utcnow(),
        dispatch_attempts=RefundRecord.dispatch_attempts + 1, next_dispatch_at=None))


def mark_dispatch_failed(session: Session, refund_id: str, error: str) -> None:
    row = session.get(RefundRecord, refund_id)
    if row is None:
        return
    row.dispatch_attempts += 1
    row.next_dispatch_at = utcnow() + timedelta(seconds=min(60.0, 0.5 * 2 ** min(row.dispatch_attempts, 7)))
    row.last_error = error[:2000]
    row.updated_at = utcnow()
    session.add(row)


# ---- reads and updates --------------------------------------------------------------

def get_refund(engine: Engine, refund_id: str) -> RefundRecord | None:
    with Session(engine, expire_on_commit=False) as s:
        return s.get(RefundRecord, refund_id)


def set_refund(engine: Engine, refund_id: str, **fields: Any) -> None:
    with session_scope(engine) as s:
        s.execute(update(RefundRecord).where(RefundRecord.refund_id == refund_id)
                  .values(updated_at=utcnow(), **fields))


def refunds_of(engine: Engine, order_id: str) -> list[RefundRecord]:
    with Session(engine, expire_on_commit=False) as s:
        return list(s.scalars(select(RefundRecord).where(RefundRecord.order_id == order_id)
                              .order_by(RefundRecord.created_at)).all())  # type: ignore[arg-type]


def refunds_in_states(engine: Engine, states: list[str]) -> list[RefundRecord]:
    with Session(engine, expire_on_commit=False) as s:
        return list(s.scalars(select(RefundRecord).where(RefundRecord.state.in_(states))).all())  # type: ignore[attr-defined]


def payment_summary(engine: Engine, order_id: str, amount_total: int | None) -> dict[str, Any]:
    """``payment_status``, ``refunded_amount`` and ``credit_notes`` as the contract's status JSON has them.

    ``refunded_amount``: the order's Stripe refunds as read back (what Stripe's
    ``amount_refunded`` counts: not failed or cancelled ones). ``disputed`` while a dispute
    is open or was lost."""
    with Session(engine) as s:
        refunded = int(s.scalar(
            select(func.coalesce(func.sum(RefundRecord.amount), 0))
            .where(RefundRecord.order_id == order_id, RefundRecord.kind == "refund")
            .where(RefundRecord.stripe_status.in_(COUNTED_REFUND))  # type: ignore[union-attr]
        ) or 0)
        disputed = s.scalar(
            select(func.count()).select_from(DisputeRecord)
            .where(DisputeRecord.order_id == order_id, DisputeRecord.status.not_in(NOT_DISPUTED))  # type: ignore[attr-defined]
        )
        notes = s.scalars(select(CreditNoteRecord).where(CreditNoteRecord.order_id == order_id)
                          .order_by(CreditNoteRecord.id)).all()  # type: ignore[arg-type]
        credit_notes = [{"number": n.number, "amount": n.amount_total, "refund_id": n.refund_id} for n in notes]
    if disputed:
        status = "disputed"
    elif refunded and amount_total is not None and refunded >= amount_total:
        status = "refunded"
    elif refunded:
        status = "partially_refunded"
    else:
        status = "paid"
    return {"payment_status": status, "refunded_amount": refunded, "credit_notes": credit_notes}
