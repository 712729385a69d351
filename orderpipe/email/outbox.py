"""Embedded email transport: the confirmation is written to ``outbox/<pi id>.eml``.

Idempotent by order via the ``emails`` table (``email_ledger``): once a row exists the
order's email counts as sent and nothing is written again. The file is written
(atomically) before the row is inserted, so a crash in between only means the same
message is written again next time.
"""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import Engine

from orderpipe.connectors.base import EmailResult
from orderpipe.connectors.file_store_local import atomic_write, check_writable, os_error
from orderpipe.email.ledger import already_sent, confirmation_message_id, record_sent
from orderpipe.order import Order

TRANSPORT = "outbox"


class OutboxEmail:
    """EmailConnector that delivers to files under ``<data dir>/outbox``."""

    name = "outbox"

    def __init__(self, engine: Engine, data_dir: Path) -> None:
        self.engine = engine
        self.outbox = Path(data_dir) / "outbox"

    def send(self, order: Order, message: EmailMessage, *, language: str, variables: dict[str, str]) -> EmailResult:
        done = already_sent(self.engine, order.order_id)
        if done is not None:
            return done
        path = (self.outbox / f"{order.order_id}.eml").resolve()
        try:
            atomic_write(path, message.as_bytes())
        except OSError as exc:
            raise os_error(f"order {order.order_id}: outbox cannot write {path.name} (step: email)", exc) from exc
        message_id = str(message["Message-ID"] or confirmation_message_id(order.order_id, "orderpipe.local"))
        result = EmailResult(message_id=message_id, language=language, transport=TRANSPORT, location=str(path),
                             created=True)
        return record_sent(self.engine, order.order_id, result)

    def check(self) -> None:
        check_writable(self.outbox, "email outbox")
