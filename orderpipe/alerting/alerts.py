"""Ops alerts: one row per dedupe key in the alerts table (the outbox), then delivery to a sink.

The row is the durable record (a person can always list alerts). Whoever writes it — the
receiver for a failed payment, a flow step — need not deliver it: the worker's loop sends
every undelivered row (`Outbox.deliver_pending`, with backoff) and reconciliation does too.
Each delivery holds a claim on its row — the row lock on Postgres (`FOR UPDATE SKIP
LOCKED`), a file lock beside the database on SQLite — and re-reads `delivered` under it,
so however many processes deliver, an alert is sent once (barring a vendor that took it
and then failed to say so).
"""

from __future__ import annotations

import fcntl
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, select, update
from sqlmodel import Session

from orderpipe.connectors.base import Alert, AlertSink
from orderpipe.db import insert_ignore, reader, session_scope
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


class Busy(RuntimeError):
    """Another process is delivering alerts right now (SQLite, non-blocking claim)."""


def _lock_path(engine: Engine) -> Path | None:
    db = engine.url.database if engine.dialect.name == "sqlite" else None
    return Path(db + ".alerts.lock") if db and db != ":memory:" else None


@contextmanager
def _claim(engine: Engine, key: str, *, wait: bool = True) -> Iterator[Session | None]:
    """A transaction in which this process alone may deliver alert `key`; yields None when
    it is delivered already (or, on Postgres, being delivered by another process)."""
    lock = _lock_path(engine)
    handle = open(lock, "a+") if lock is not None else None  # noqa: SIM115 - closed below
    try:
        if handle is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                raise Busy("alert delivery busy in another process") from None
            with Session(reader(engine)) as s:
                pending = s.scalars(select(AlertRecord.id).where(AlertRecord.dedupe_key == key)
                                    .where(AlertRecord.delivered.is_(False))).first()  # type: ignore[attr-defined]
            if pending is None:
                yield None
            else:
                with session_scope(engine) as s:  # opened after the send: no write lock over HTTP
                    yield s
            return
        with session_scope(engine) as s:
            q = (select(AlertRecord.id).where(AlertRecord.dedupe_key == key)
                 .where(AlertRecord.delivered.is_(False)).with_for_update(skip_locked=True))  # type: ignore[attr-defined]
            yield s if s.scalars(q).first() is not None else None
    finally:
        if handle is not None:
            handle.close()  # releases the flock


def deliver(engine: Engine, sink: AlertSink, alert: Alert, *, wait: bool = True) -> bool:
    """Send a recorded alert unless it was delivered already; True when the sink took it now."""
    key = alert.dedupe_key[:255]
    with _claim(engine, key, wait=wait) as s:
        if s is None:
            return False
        log.warning(json.dumps({"alert": alert.kind, "order_id": alert.order_id, "step": alert.step,
                                "message": alert.message}, ensure_ascii=False))
        try:
            sink.send(alert)
        except StepError as exc:
            log.error("alert %s not delivered via %s: %s (kept for redelivery)", key, sink.name, exc)
            return False
        s.execute(update(AlertRecord).where(AlertRecord.dedupe_key == key).values(delivered=True))
    return True


class Outbox:
    """The worker's side of the alerts table: delivers undelivered rows, each with its own
    exponential backoff (2 s doubling to 5 min) after a failed attempt."""

    FIRST_BACKOFF = 2.0
    MAX_BACKOFF = 300.0

    def __init__(self, engine: Engine, sink: AlertSink, clock: object = time.monotonic) -> None:
        self.engine = engine
        self.sink = sink
        self._clock = clock
        self._retry: dict[str, tuple[float, float]] = {}  # key -> (next attempt at, backoff)

    def deliver_pending(self, limit: int = 100) -> int:
        """One round; returns how many alerts were delivered now."""
        now = self._clock()  # type: ignore[operator]
        sent = 0
        for alert in undelivered(self.engine, limit):
            key = alert.dedupe_key[:255]
            due, backoff = self._retry.get(key, (0.0, 0.0))
            if now < due:
                continue
            try:
                ok = deliver(self.engine, self.sink, alert, wait=False)
            except Busy:
                return sent  # another process is at it; the next round continues
            if ok:
                sent += 1
                self._retry.pop(key, None)
            elif self._still_undelivered(key):
                backoff = min(self.MAX_BACKOFF, backoff * 2 or self.FIRST_BACKOFF)
                self._retry[key] = (now + backoff, backoff)
            else:
                self._retry.pop(key, None)
        return sent

    def _still_undelivered(self, key: str) -> bool:
        with Session(reader(self.engine)) as s:
            return s.scalars(select(AlertRecord.id).where(AlertRecord.dedupe_key == key)
                             .where(AlertRecord.delivered.is_(False))).first() is not None  # type: ignore[attr-defined]


def raise_alert(engine: Engine, sink: AlertSink, alert: Alert) -> bool:
    """Record and deliver once per dedupe key; False when it had been raised before."""
    with session_scope(engine) as s:
        new = record(s, alert)
    if new:
        deliver(engine, sink, alert)
    return new


def undelivered(engine: Engine, limit: int = 100) -> list[Alert]:
    with Session(reader(engine)) as s:
        rows = s.scalars(select(AlertRecord).where(AlertRecord.delivered.is_(False))  # type: ignore[attr-defined]
                         .order_by(AlertRecord.id).limit(limit)).all()
    return [Alert(order_id=r.order_id, step=r.step, kind=r.kind, message=r.message, dedupe_key=r.dedupe_key,
                  occurred_at=r.created_at) for r in rows]


def list_alerts(engine: Engine, order_id: str | None = None) -> list[AlertRecord]:
    with Session(reader(engine), expire_on_commit=False) as s:
        q = select(AlertRecord).order_by(AlertRecord.id)
        if order_id:
            q = q.where(AlertRecord.order_id == order_id)
        return list(s.scalars(q).all())
