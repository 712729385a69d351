"""Embedded email transport: the confirmation is written to ``outbox/<pi id>.eml``.

Idempotent by order via the ``emails`` table: once a row exists the order's email counts
as sent and nothing is written again. The file is written (atomically) before the row is
inserted, so a crash in between only means the same file is written again next time.
"""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import Engine

from orderpipe.connectors.base import EmailResult
from orderpipe.connectors.file_store_local import atomic_write, check_writable, os_error
from orderpipe.db import insert_ignore, session_scope
from orderpipe.order import Order
from orderpipe.tables import EmailSent, utcnow

TRANSPORT = "outbox"


def _result(row: EmailSent, *, created: bool) -> EmailResult:
    return EmailResult(
        message_id=row.message_id, language=row.language, transport=row.transport, location=row.location,
        created=created,
    )


class OutboxEmail:
    """EmailConnector that delivers to files under ``<data dir>/outbox``."""

    name = "outbox"

    def __init__(self, engine: Engine, data_dir: Path) -> None:
        self.engine = engine
        self.outbox = Path(data_dir) / "outbox"

    def _sent(self, order_id: str) -> EmailSent | None:
        with session_scope(self.engine) as session:
            return session.get(EmailSent, order_id)

    def send(self, order: Order, message: EmailMessage, *, language: str, variables: dict[str, str]) -> EmailResult:
        existing = self._sent(order.order_id)
        if existing is not None:
            return _result(existing, created=False)
        path = (self.outbox / f"{order.order_id}.eml").resolve()
        try:
            atomic_write(path, message.as_bytes())
        except OSError as exc:
            raise os_error(f"order {order.order_id}: outbox cannot write {path.name} (step: email)", exc) from exc
        values = {
            "order_id": order.order_id,
            "message_id": str(message["Message-ID"] or f"<order-{order.order_id}@orderpipe.local>"),
            "language": language,
            "transport": TRANSPORT,
            "location": str(path),
            "created_at": utcnow(),
        }
        with session_scope(self.engine) as session:
            inserted = insert_ignore(session, EmailSent, values)
            row = session.get(EmailSent, order.order_id)
        assert row is not None
        return _result(row, created=inserted)

    def check(self) -> None:
        check_writable(self.outbox, "email outbox")
