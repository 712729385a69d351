"""Once-per-order email sending, shared by the SMTP, Mailgun and Resend connectors.

The ``emails`` table (``EmailSent``, primary key = order id) records every confirmation a
vendor accepted. A connector asks ``already_sent`` first and returns the recorded result
instead of sending again; after the vendor accepts, it calls ``record_sent``.

Unknown outcomes (``orderpipe.vendor_attempts``): before the message goes out ``begin``
commits an attempt marker; ``record_sent`` removes it in the transaction that records the
vendor's answer, ``abandon`` when the vendor definitely refused. A marker left behind (a
lost answer, an SMTP session cut after DATA, a crash, a failed ``record_sent``) means the
outcome is unknown. Then, per vendor:

- Resend: ``Idempotency-Key: order-confirmation/<order id>``; Resend replays the first
  answer for 24 h instead of sending again, so within ``RESEND_KEY_SAFE`` of the first
  attempt the send is simply repeated (that *is* the lookup); later a person is asked.
- Mailgun: no documented server-side dedupe and no lookup in the vendor doc (section 6):
  the step raises ``NeedsAttention``; the person looks for ``v:order_id`` / the
  deterministic ``Message-Id`` in Mailgun's logs.
- SMTP: no idempotency and no lookup (section 8): ``NeedsAttention``; the person checks
  the relay's log or the customer's inbox for the deterministic ``Message-ID``.

Two concurrent sends for one order are not prevented here (one flow run per order does
that); the table's primary key keeps exactly one record either way.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from email.utils import parseaddr

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from orderpipe import vendor_attempts
from orderpipe.connectors.base import EmailResult
from orderpipe.db import insert_ignore, session_scope
from orderpipe.errors import NeedsAttention, TransientError
from orderpipe.tables import EmailSent, utcnow

log = logging.getLogger(__name__)

#: What the vendor-side idempotency keys and Message-IDs are derived from.
KEY_PREFIX = "order-confirmation"
STEP = "email"
#: Resend keeps an idempotency key 24 h; repeating within this is answered from its store.
RESEND_KEY_SAFE = timedelta(hours=23)


def resolve_hint(order_id: str) -> str:
    return f"if it was not sent, run `orderpipe resolve {order_id} email` and `orderpipe replay {order_id}`"


def unknown_outcome(engine: Engine, order_id: str, vendor: str, what_to_check: str) -> None:
    """Raise NeedsAttention when an earlier send of this order has an unknown outcome."""
    unknown = vendor_attempts.pending(engine, order_id, STEP)
    if unknown is not None:
        raise NeedsAttention(
            f"order {order_id}, step email: an earlier {unknown.vendor} send (started "
            f"{unknown.started_at:%Y-%m-%d %H:%M:%S} UTC) has an unknown outcome"
            + (f" ({unknown.detail})" if unknown.detail else "")
            + f"; {vendor} offers no lookup, so it is not sent again",
            what_to_check=what_to_check)


def lost(engine: Engine, order_id: str, vendor: str, error: Exception, what_to_check: str) -> NeedsAttention:
    """The send's answer was lost: keep the marker, note why, and stop for a person."""
    vendor_attempts.note(engine, order_id, STEP, str(error))
    return NeedsAttention(f"order {order_id}, step email: {error}; {vendor} may have accepted the message, "
                          "so it is not sent again", what_to_check=what_to_check)


def record_or_stop(engine: Engine, order_id: str, result: EmailResult, what_to_check: str, *,
                   safe_to_repeat: bool = False) -> EmailResult:
    """``record_sent``; if the record cannot be written the vendor's yes is not lost into a
    blind retry: NeedsAttention (or, when a repeat is answered from the vendor's
    idempotency store, a plain TransientError)."""
    try:
        return record_sent(engine, order_id, result)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
        text = (f"order {order_id}, step email: {result.transport} accepted the message ({result.message_id}) "
                f"but it could not be recorded ({reason})")
        if safe_to_repeat:
            raise TransientError(text + "; a retry is answered from the vendor's idempotency store") from None
        raise NeedsAttention(text + "; it is not sent again",
                             what_to_check=f"the database (disk space, errors); the email was sent: "
                                           f"{result.message_id}") from None


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
        vendor_attempts.clear(session, order_id, STEP)
    if inserted:
        return result
    stored = already_sent(engine, order_id)
    if stored is not None and stored.message_id != result.message_id:
        log.warning("order %s: a confirmation email was already recorded (%s via %s); %s via %s is a duplicate",
                    order_id, stored.message_id, stored.transport, result.message_id, result.transport)
    return stored or result
