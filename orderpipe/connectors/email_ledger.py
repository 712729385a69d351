"""Once-per-order email sending, shared by the SMTP, Mailgun and Resend connectors.

The ``emails`` table (``EmailSent``, primary key = order id) records every confirmation a
vendor accepted. A connector asks ``already_sent`` first and returns the recorded result
instead of sending again; after the vendor accepts, it calls ``record_sent``.

The residual window: a crash (or a lost answer) between the vendor accepting the message
and ``record_sent`` leaves no row, so a retry sends again. Each connector narrows it:

- Resend: ``Idempotency-Key: order-confirmation/<order id>``; Resend replays the first
  answer for 24 h instead of sending again. Closed within 24 h.
- Mailgun: no documented server-side dedupe (vendor doc section 6). The message carries a
  deterministic ``Message-Id`` (``h:Message-Id``), ``v:order_id`` and
  ``h:X-Idempotency-Key`` so a duplicate is recognisable (mail clients and Mailgun's event
  log show the same id/variable). Not closed.
- SMTP: no idempotency at all (section 8); the deterministic ``Message-ID`` makes a
  duplicate recognisable (and lets receiving systems drop it). Not closed.

Two concurrent sends for one order are not prevented here (one flow run per order does
that); the table's primary key keeps exactly one record either way.
"""

from __future__ import annotations

import logging
from email.utils import parseaddr

from sqlalchemy import Engine

from orderpipe.connectors.base import EmailResult
from orderpipe.db import insert_ignore, session_scope
from orderpipe.tables import EmailSent, utcnow

log = logging.getLogger(__name__)

#: What the vendor-side idempotency keys and Message-IDs are derived from.
KEY_PREFIX = "order-confirmation"


def idempotency_key(order_id: str) -> str:
    """The vendor idempotency key of an order's confirmation (stable across retries)."""
    return f"{KEY_PREFIX}/{order_id}"


def confirmation_message_id(order_id: str, domain: str) -> str:
    """Deterministic RFC 5322 Message-ID, e.g. ``<order-confirmation.pi_1@shop.example.fi>``."""
    host = domain.strip().strip("<>").lower() or "orderpipe.invalid"
    return f"<{KEY_PREFIX}.{_local_part(order_id)}@{host}>"


def is_confirmation_message_id(order_id: str, value: str | None) -> bool:
    """Is ``value`` this order's deterministic Message-ID (whatever domain was chosen)?"""
    return bool(value) and str(value).strip().startswith(f"<{KEY_PREFIX}.{_local_part(order_id)}@")


def _local_part(order_id: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in order_id)


def domain_of(address: str) -> str:
    """The domain part of an address header value (``Shop <orders@x.fi>`` -> ``x.fi``)."""
    addr = parseaddr(address)[1]
    return addr.rsplit("@", 1)[-1] if "@" in addr else ""


def already_sent(engine: Engine, order_id: str) -> EmailResult | None:
    """The recorded confirmation of this order (``created=False``), or None."""
    with session_scope(engine) as session:
        row = session.get(EmailSent, order_id)
        if row is None:
            return None
        return EmailResult(message_id=row.message_id, language=row.language, transport=row.transport,
                           location=row.location, created=False)


def record_sent(engine: Engine, order_id: str, result: EmailResult) -> EmailResult:
    """Record an accepted confirmation; returns the row that is stored (the first one wins)."""
    with session_scope(engine) as session:
        inserted = insert_ignore(session, EmailSent, {
            "order_id": order_id, "message_id": result.message_id[:255], "language": result.language[:16],
            "transport": result.transport[:20], "location": (result.location or None) and result.location[:1024],
            "created_at": utcnow(),
        })
    if inserted:
        return result
    stored = already_sent(engine, order_id)
    if stored is not None and stored.message_id != result.message_id:
        log.warning("order %s: a confirmation email was already recorded (%s via %s); %s via %s is a duplicate",
                    order_id, stored.message_id, stored.transport, result.message_id, result.transport)
    return stored or result
