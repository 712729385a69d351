"""Embedded production log: one entry per order in orderpipe's database."""

from __future__ import annotations

from sqlalchemy import Engine, select, update

from orderpipe.connectors.base import ProductionLogResult
from orderpipe.db import insert_ignore, ping, session_scope
from orderpipe.order import Order
from orderpipe.tables import ProductionLogEntry, utcnow


def items_text(order: Order) -> str:
    """One line per product line: '2 × Poster A3'."""
    return "\n".join(f"{line.quantity} × {line.description}" for line in order.lines if not line.is_shipping)


class LocalProductionLog:
    name = "local"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record_order(self, order: Order) -> ProductionLogResult:
        now = utcnow()
        with session_scope(self.engine) as s:
            created = insert_ignore(
                s, ProductionLogEntry,
                dict(order_id=order.order_id, customer=order.recipient_name or order.customer_email,
                     country=order.country, items=items_text(order), status="received", created_at=now,
                     updated_at=now),
            )
            entry = s.scalars(select(ProductionLogEntry).where(ProductionLogEntry.order_id == order.order_id)).one()
            return ProductionLogResult(entry_id=str(entry.id), created=created)

    def update_status(self, order_id: str, status: str) -> None:
        with session_scope(self.engine) as s:
            s.execute(update(ProductionLogEntry).where(ProductionLogEntry.order_id == order_id)
                      .values(status=status, updated_at=utcnow()))

    def check(self) -> None:
        ping(self.engine)
