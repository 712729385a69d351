"""Confirmation email through Resend (``POST /emails`` with the rendered HTML and text).

Per order, at most one accepted ``POST /emails`` carrying the message's HTML and text
parts and the invoice PDF (base64), with ``Idempotency-Key: order-confirmation/<order id>``.

Idempotency, two layers:

- the ``emails`` ledger (``email_ledger``): a recorded order is never sent again;
- Resend's idempotency key (kept 24 h, vendor doc §7): a retry after a lost answer or a
  crash before the ledger row gets the original answer back instead of a second email.
  That is the lookup: an attempt marker (``vendor_attempts``) older than
  ``RESEND_KEY_SAFE`` (the key may be pruned) is not repeated; the step needs a person.
  If the retry's payload differs (e.g. re-rendered), Resend answers 409
  ``invalid_idempotent_request``: the key was used, so the email was accepted; it is
  recorded as sent (vendor id unknown) rather than sent again.
"""

from __future__ import annotations

import base64
import logging
import time
from email.message import EmailMessage

import httpx
from sqlalchemy import Engine

from orderpipe import vendor_attempts
from orderpipe.connectors.base import EmailResult
from orderpipe.connectors.vendor_http import (
    DEFAULT_TIMEOUT,
    RateLimited,
    Sleep,
    Throttle,
    make_client,
    no_throttle,
    raise_for_status,
    request,
    retry_after_seconds,
)
from orderpipe.email.ledger import (
    RESEND_KEY_SAFE,
    STEP,
    already_sent,
    idempotency_key,
    record_or_stop,
    resolve_hint,
)
from orderpipe.email.parts import api_call, json_or_text, message_parts
from orderpipe.errors import NeedsAttention, PermanentError, StepError, TransientError
from orderpipe.order import Order
from orderpipe.settings import Settings
from orderpipe.tables import utcnow

log = logging.getLogger(__name__)

VENDOR = "resend"
THROTTLE_NAME = "resend-api"


class ResendEmail:
    name = "resend"

    def __init__(self, settings: Settings, engine: Engine, throttle: Throttle = no_throttle, *,
                 timeout: httpx.Timeout | float = DEFAULT_TIMEOUT, sleep: Sleep = time.sleep) -> None:
        if not settings.resend_api_key:
            raise PermanentError("resend email needs RESEND_API_KEY")
        self._engine = engine
        self._throttle = throttle
        self._sleep = sleep
        self._client = make_client(settings.resend_api_base,
                                   headers={"Authorization": f"Bearer {settings.resend_api_key}",
                                            "User-Agent": "orderpipe"},
                                   timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def check(self) -> None:
        """``GET /domains`` (read-only).

        [U] A key restricted to sending cannot list domains; Resend is believed to answer
        401 ``restricted_api_key`` then. That still proves the key exists, so it passes."""
        response = request(f"{VENDOR} GET /domains", self._client, "GET", "/domains",
                           throttle=self._throttle, throttle_name=THROTTLE_NAME)
        if response.status_code in (401, 403) and _error_name(response) == "restricted_api_key":
            return
        raise_for_status(VENDOR, response)

    def send(self, order: Order, message: EmailMessage, *, language: str, variables: dict[str, str]) -> EmailResult:
        done = already_sent(self._engine, order.order_id)
        if done is not None:
            return done
        parts = message_parts(order.order_id, message)
        if not parts.html and not parts.text:
            raise PermanentError(f"order {order.order_id}, step email: the rendered message has no text or HTML part")
        payload: dict[str, object] = {
            "from": parts.sender,
            "to": parts.to,
            "subject": parts.subject,
            # Only X- headers: Resend accepts custom headers [C], but which standard ones it
            # lets a caller set is not documented; Content-Language stays in the tags.
            "headers": {"X-Orderpipe-Order": order.order_id},
            "tags": [{"name": "kind", "value": "order_confirmation"},
                     {"name": "language", "value": _tag_value(language)}],
        }
        if parts.html:
            payload["html"] = parts.html
        if parts.text:
            payload["text"] = parts.text
        if parts.reply_to:
            payload["reply_to"] = parts.reply_to
        if parts.attachments:
            # [C] attachments exist; their fields are not in the vendor doc. filename + base64
            # content is the SDK's minimal form; the type is inferred from the file name.
            payload["attachments"] = [{"filename": a.filename, "content": base64.b64encode(a.data).decode("ascii")}
                                      for a in parts.attachments]
        key = idempotency_key(order.order_id)
        check = (f"Resend's email log for the idempotency key {key} / header X-Orderpipe-Order {order.order_id}; "
                 + resolve_hint(order.order_id))
        unknown = vendor_attempts.pending(self._engine, order.order_id, STEP)
        if unknown is not None and utcnow() - unknown.started_at > RESEND_KEY_SAFE:
            raise NeedsAttention(
                f"order {order.order_id}, step email: an earlier Resend send (started "
                f"{unknown.started_at:%Y-%m-%d %H:%M:%S} UTC) has an unknown outcome and its idempotency key may "
                "have expired, so it is not sent again", what_to_check=check)
        # With a marker younger than the key, repeating is safe: Resend answers from its store.
        vendor_attempts.begin(self._engine, order.order_id, STEP, VENDOR, key)
        try:
            response = self._post(order.order_id, payload, key)
        except TransientError:
            raise  # incl. a lost answer: the retry carries the same key, so it cannot send twice
        except StepError:
            vendor_attempts.abandon(self._engine, order.order_id, STEP)  # refused: nothing was sent
            raise
        if response is None:  # 409 invalid_idempotent_request: an earlier attempt was accepted
            log.warning("order %s, step email: resend already accepted idempotency key %s with another payload; "
                        "recorded as sent, not sent again", order.order_id, key)
            result = EmailResult(message_id=key, language=language, transport=self.name,
                                 location=f"resend idempotency key {key}", created=False)
            return record_or_stop(self._engine, order.order_id, result, check, safe_to_repeat=True)
        vendor_id = response.get("id") if isinstance(response, dict) else None
        if not isinstance(vendor_id, str) or not vendor_id:
            # A retry with the same key would be answered from Resend's store, so this is safe to retry.
            raise TransientError(f"order {order.order_id}, step email: resend answered 2xx without an id")
        result = EmailResult(message_id=vendor_id, language=language, transport=self.name, location=vendor_id,
                             created=True)
        return record_or_stop(self._engine, order.order_id, result, check, safe_to_repeat=True)

    def _post(self, order_id: str, payload: dict[str, object], key: str) -> object | None:
        where = f"{VENDOR} POST /emails"

        def attempt() -> object | None:
            response = request(where, self._client, "POST", "/emails", json=payload,
                               headers={"Idempotency-Key": key}, throttle=self._throttle,
                               throttle_name=THROTTLE_NAME)
            name = _error_name(response)
            if response.status_code == 409 and name == "invalid_idempotent_request":
                return None
            if response.status_code == 409 and name == "concurrent_idempotent_requests":
                raise RateLimited(f"{where} -> HTTP 409: {name} (the first attempt is still in flight)",
                                  retry_after=retry_after_seconds(response) or 1.0)
            if response.status_code == 429 and name in ("daily_quota_exceeded", "monthly_quota_exceeded"):
                # Vendor doc: retry rate_limit_exceeded only, never quota errors.
                raise PermanentError(f"{where} -> HTTP 429: {name}: Resend sending quota used up")
            raise_for_status(VENDOR, response)
            return json_or_text(response)

        return api_call(order_id, attempt, sleep=self._sleep)


def _error_name(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    name = body.get("name") if isinstance(body, dict) else None
    return name if isinstance(name, str) else None


def _tag_value(value: str) -> str:
    """Resend tag values allow ASCII letters, digits, ``_`` and ``-`` only."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in value)[:256] or "unknown"
