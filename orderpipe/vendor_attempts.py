"""Unknown outcomes: a non-idempotent vendor write is never repeated blindly.

Before a connector sends a write the vendor cannot deduplicate (a PostNord booking, an
email), it commits a ``vendor_attempts`` row (``begin``). The row goes away in the same
transaction that records the vendor's answer (``clear``, called by the connector's
journal), or when the vendor definitely did nothing (``abandon``: it answered 4xx/5xx, or
the connection was never made). A row still there when the step runs again means the
outcome is unknown: the answer was lost, the process was killed mid-call, or the answer
could not be recorded (database error, disk full). The connector then asks the vendor when
it can (Resend: the same idempotency key replays the first answer for 24 h) and otherwise
raises ``NeedsAttention`` with what a person should check: the step ends
``needs_attention`` and one alert goes out.

``resolve`` is what the person runs after checking (``orderpipe resolve``): the marker is
removed and the step is redone by the next replay.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, delete, update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from orderpipe.db import aware, insert_ignore, session_scope
from orderpipe.errors import TransientError
from orderpipe.tables import VendorAttempt, utcnow

log = logging.getLogger("orderpipe.attempts")


@dataclass(frozen=True)
class Attempt:
    order_id: str
    step: str
    vendor: str
    reference: str
    started_at: datetime
    detail: str | None


def _reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    lines = str(orig if orig is not None else exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]


def pending(engine: Engine, order_id: str, step: str) -> Attempt | None:
    """The attempt whose outcome is unknown, or None. A database error: nothing was sent by
    this call yet, so it is transient."""
    try:
        with Session(engine) as s:
            row = s.get(VendorAttempt, (order_id, step))
    except SQLAlchemyError as exc:
        raise TransientError(f"order {order_id}, step {step}: cannot read the attempt journal: "
                             f"{_reason(exc)}") from None
    if row is None:
        return None
    return Attempt(row.order_id, row.step, row.vendor, row.reference, aware(row.started_at) or utcnow(), row.detail)


def begin(engine: Engine, order_id: str, step: str, vendor: str, reference: str) -> None:
    """Commit the marker before the request is sent (an existing marker is kept as it is:
    its ``started_at`` is when the vendor may first have seen the write)."""
    try:
        with session_scope(engine) as s:
            insert_ignore(s, VendorAttempt, {"order_id": order_id, "step": step, "vendor": vendor,
                                             "reference": reference[:255], "started_at": utcnow(), "detail": None})
    except SQLAlchemyError as exc:
        raise TransientError(f"order {order_id}, step {step}: cannot write the attempt journal before calling "
                             f"{vendor} (nothing was sent): {_reason(exc)}") from None


def clear(session: Session, order_id: str, step: str) -> None:
    """Inside the transaction that records the vendor's answer."""
    session.execute(delete(VendorAttempt).where(VendorAttempt.order_id == order_id)
                    .where(VendorAttempt.step == step))


def abandon(engine: Engine, order_id: str, step: str) -> None:
    """The vendor definitely did nothing: a retry may send again. If even this cannot be
    written the marker stays, and the next attempt asks (or a person) instead of sending:
    safe, never a duplicate."""
    try:
        with session_scope(engine) as s:
            clear(s, order_id, step)
    except SQLAlchemyError as exc:
        log.error("order %s, step %s: attempt marker not removed (%s); the next try will ask first",
                  order_id, step, _reason(exc))


def note(engine: Engine, order_id: str, step: str, detail: str) -> None:
    """Best effort: what was learnt about the unknown outcome (shown by ``resolve``/status)."""
    try:
        with session_scope(engine) as s:
            s.execute(update(VendorAttempt).where(VendorAttempt.order_id == order_id)
                      .where(VendorAttempt.step == step).values(detail=detail[:2000]))
    except SQLAlchemyError as exc:
        log.error("order %s, step %s: attempt note not written (%s): %s", order_id, step, _reason(exc), detail)


def resolve(engine: Engine, order_id: str, step: str) -> Attempt | None:
    """A person checked the vendor and found nothing was done: drop the marker (and mark the
    step pending) so a replay redoes the step. Returns the marker that was removed."""
    from orderpipe.tables import OrderStep

    found = pending(engine, order_id, step)
    with session_scope(engine) as s:
        clear(s, order_id, step)
        s.execute(update(OrderStep).where(OrderStep.order_id == order_id).where(OrderStep.step == step)
                  .where(OrderStep.state == "needs_attention").values(state="pending", updated_at=utcnow()))
    return found
