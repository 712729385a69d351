"""Ops alerts: one row per dedupe key in the alerts table, then delivery to a sink.

The row is the durable record (a person can always list alerts); delivery to Telegram or
Slack is retried by reconciliation while the row is not marked delivered.
"""

from __future__ import annotations

import json
import logging

from sqlalchemy import Engine, select, update
from sqlmodel import Session

from orderpipe.connectors.base import Alert, AlertSink
from orderpipe.db import insert_ignore, session_scope
from orderpipe.errors import StepError
from orderpipe.tables import AlertRecord, utcnow

log = logging.getLogger("orderpipe.alerts")


def record(session: Session, alert: Alert) -> bool:
    """Insert the alert row inside the caller's transaction; False if the key already exists."""
    return insert_ignore(
        session,
        AlertRecord,
        dict(dedupe_key=alert.dedupe_key[:255], order_id=alert.order_id, step=alert.step, kind=alert.kind,
             message=alert.message, delivered=False, created_at=alert.occurred_at or utcnow()),
    )


def deliver(engine: Engine, sink: AlertSink, alert: Alert) -> bool:
    """Send an already recorded alert; True when the sink took it."""
    log.warning(json.dumps({"alert": alert.kind, "order_id": alert.order_id, "step": alert.step,
                            "message": alert.message}, ensure_ascii=False))
    try:
        sink.send(alert)
    except StepError as exc:
        log.error("alert %s not delivered via %s: %s (kept for redelivery)", alert.dedupe_key, sink.name, exc)
        return False
    with session_scope(engine) as s:
        s.execute(update(AlertRecord).where(AlertRecord.dedupe_key == alert.dedupe_key[:255]).values(delivered=True))
    return True


def raise_alert(engine: Engine, sink: AlertSink, alert: Alert) -> bool:
    """Record and deliver once per dedupe key; False when it had been raised before."""
    with session_scope(engine) as s:
        new = record(s, alert)
    if new:
        deliver(engine, sink, alert)
    return new


def undelivered(engine: Engine, limit: int = 100) -> list[Alert]:
    with Session(engine) as s:
        rows = s.scalars(select(AlertRecord).where(AlertRecord.delivered.is_(False))  # type: ignore[attr-defined]
                         .order_by(AlertRecord.id).limit(limit)).all()
    return [Alert(order_id=r.order_id, step=r.step, kind=r.kind, message=r.message, dedupe_key=r.dedupe_key,
                  occurred_at=r.created_at) for r in rows]


def list_alerts(engine: Engine, order_id: str | None = None) -> list[AlertRecord]:
    with Session(engine, expire_on_commit=False) as s:
        q = select(AlertRecord).order_by(AlertRecord.id)
        if order_id:
            q = q.where(AlertRecord.order_id == order_id)
        return list(s.scalars(q).all())
