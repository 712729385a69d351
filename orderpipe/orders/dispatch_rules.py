"""The dispatcher's choices, as pure functions: which orders are due, how long a refused
start backs off, and when and how a person hears that an order cannot be started.

The dispatcher (``dispatcher.py``) and the ledger's SQL (``ledger.due_for_dispatch``) act on
these; nothing here touches the database or Prefect.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from orderpipe.connectors.base import Alert
from orderpipe.states import DispatchState

#: An order whose run cannot be started for this long alerts a person (once per kind of failure).
ALERT_AFTER = timedelta(minutes=5)
#: Longest back-off between two attempts to start one order's run.
MAX_BACKOFF = timedelta(seconds=60)


@dataclass(frozen=True)
class DispatchRow:
    """What the dispatcher knows of an order (``orders.dispatch``, ``next_dispatch_at``, ``created_at``)."""

    order_id: str
    dispatch: str
    created_at: datetime
    next_dispatch_at: datetime | None = None


def is_due(row: DispatchRow, now: datetime) -> bool:
    """Pending, and not inside the back-off of a refused start (the SQL of ``ledger._due``)."""
    return row.dispatch == DispatchState.PENDING and (row.next_dispatch_at is None or row.next_dispatch_at <= now)


def due(rows: list[DispatchRow], now: datetime, limit: int) -> list[str]:
    """The order ids to start now, oldest order first, at most ``limit``."""
    return [r.order_id for r in sorted((r for r in rows if is_due(r, now)), key=lambda r: r.created_at)][:limit]


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th refused start: 1 s, 2 s, 4 s ... at most 60 s."""
    return min(MAX_BACKOFF, timedelta(seconds=0.5 * 2 ** min(attempts, 7)))


def should_alert(failing_since: datetime | None, now: datetime) -> bool:
    """Starts have failed in a row since ``failing_since``: time to tell a person?"""
    return failing_since is not None and now - failing_since >= ALERT_AFTER


def failure_reason(exc: BaseException) -> str:
    """``Type: first line of the message``: what the ledger keeps as the order's last error."""
    text = str(exc)
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def stuck_alert(order_id: str, *, since: datetime, reason: str, kind: str, deployment: str, now: datetime) -> Alert:
    """The "cannot be started" alert: one per order and kind of failure (``kind`` is
    ``errors.failure_kind``: never the text, which differs on every round)."""
    return Alert(order_id=order_id, step="dispatch", kind="dispatch_failing",
                 dedupe_key=f"dispatch_failing:{order_id}:dispatch:{kind}", occurred_at=now,
                 message=f"order {order_id}: its flow run cannot be started since {since:%Y-%m-%d %H:%M:%S} UTC "
                         f"({reason}); check that deployment {deployment} exists and the Prefect "
                         "server accepts runs. The order stays recorded and starts as soon as Prefect does.")
