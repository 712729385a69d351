"""Confirmation email through Mailgun (EU region) with a stored template.

Per order, at most: ``POST /v3/<domain>/messages`` (multipart: template, ``t:variables``,
``t:version`` = the language, the invoice PDF as ``attachment``). When the template has no
version for that language Mailgun answers 400 and the send is repeated once without
``t:version`` (the template's active version, with ``language`` still in the variables).

Idempotency: the ``emails`` ledger (one row per order, see ``email_ledger``). Mailgun has no
documented server-side dedupe and the vendor doc offers no lookup, so a POST whose answer
was lost (timeout, dropped connection, 504, a 2xx without an id) or whose answer could not
be recorded is never repeated: the step raises ``NeedsAttention`` and the person looks in
Mailgun's logs for ``v:order_id`` / the deterministic ``h:Message-Id``.
"""

from __future__ import annotations

import json
import logging
import time
from email.message import EmailMessage

import httpx
from sqlalchemy import Engine

from orderpipe import vendor_attempts
from orderpipe.connectors.base import EmailResult
from orderpipe.connectors.vendor_http import (
    DEFAULT_TIMEOUT,
    Sleep,
    Throttle,
    make_client,
    no_throttle,
    raise_for_status,
    request,
)
from orderpipe.email.ledger import (
    STEP,
    already_sent,
    confirmation_message_id,
    idempotency_key,
    is_confirmation_message_id,
    lost,
    record_or_stop,
    resolve_hint,
    unknown_outcome,
)
from orderpipe.email.parts import api_call, json_or_text, message_parts
from orderpipe.errors import AnswerLost, NeedsAttention, PermanentError, StepError
from orderpipe.order import Order
from orderpipe.settings import Settings

log = logging.getLogger(__name__)

VENDOR = "mailgun"
#: Mailgun: all o:/h:/v:/t: options of one message together at most 16 KB (vendor doc §6).
OPTIONS_LIMIT = 16 * 1024
_VERSION_REJECTED = object()


class MailgunEmail:
    name = "mailgun"

    def __init__(self, settings: Settings, engine: Engine, *, throttle: Throttle = no_throttle,
                 timeout: httpx.Timeout | float = DEFAULT_TIMEOUT, sleep: Sleep = time.sleep) -> None:
        if not (settings.mailgun_api_key and settings.mailgun_domain and settings.mailgun_template):
            raise PermanentError("mailgun email needs MAILGUN_API_KEY, MAILGUN_DOMAIN and MAILGUN_TEMPLATE")
        self._engine = engine
        self._domain = settings.mailgun_domain
        self._template = settings.mailgun_template
        self._throttle = throttle
        self._sleep = sleep
        self._client = make_client(settings.mailgun_api_base, auth=("api", settings.mailgun_api_key),
                                   timeout=timeout)

    def close(self) -> None:
        self._client.close()

    # -- EmailConnector --------------------------------------------------------------
    def check(self) -> None:
        """GET the sending domain (read-only): proves key, region and domain.

        The domain endpoint is not in the vendor doc [U]; ``/v3/domains/<domain>`` is
        Mailgun's long-standing read-only one. A 404 is also the wrong-region symptom."""
        where = f"{VENDOR} GET /v3/domains/{self._domain}"
        response = request(where, self._client, "GET", f"/v3/domains/{self._domain}",
                           throttle=self._throttle, throttle_name="mailgun-api")
        raise_for_status(VENDOR, response)

    def send(self, order: Order, message: EmailMessage, *, language: str, variables: dict[str, str]) -> EmailResult:
        done = already_sent(self._engine, order.order_id)
        if done is not None:
            return done
        parts = message_parts(order.order_id, message)
        message_id = str(message.get("Message-ID") or "")
        if not is_confirmation_message_id(order.order_id, message_id):
            message_id = confirmation_message_id(order.order_id, self._domain)
        fields: dict[str, str | list[str]] = {
            "from": parts.sender,
            "to": parts.to,
            "subject": parts.subject,
            "template": self._template,
            "t:variables": json.dumps({"language": language, **variables}, ensure_ascii=False),
            "t:text": "yes",
            "t:version": language,
            "o:tag": "order-confirmation",
            "v:order_id": order.order_id,
            # [U] Mailgun is not documented to keep a caller-set Message-Id; if it does, the
            # recipient's copy carries it. We store whatever id Mailgun answers with.
            "h:Message-Id": message_id,
            # The official SDK's "IdempotencyGuard" header; nothing shows Mailgun deduplicating
            # on it [C SDK, U server], so it only labels a duplicate.
            "h:X-Idempotency-Key": idempotency_key(order.order_id),
            "h:Content-Language": language,
        }
        if parts.reply_to:
            fields["h:Reply-To"] = parts.reply_to
        self._check_options_size(order.order_id, fields)
        files = [("attachment", (a.filename, a.data, a.content_type)) for a in parts.attachments]
        check = (f"Mailgun's logs of domain {self._domain} for user variable order_id={order.order_id} / Message-Id "
                 f"{message_id}; " + resolve_hint(order.order_id))
        unknown_outcome(self._engine, order.order_id, "Mailgun", check)
        vendor_attempts.begin(self._engine, order.order_id, STEP, VENDOR, message_id)
        try:
            body = self._send(order.order_id, fields, files, language)
        except AnswerLost as exc:
            raise lost(self._engine, order.order_id, "Mailgun", exc, check) from None
        except StepError:
            vendor_attempts.abandon(self._engine, order.order_id, STEP)  # Mailgun answered: nothing queued
            raise
        vendor_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(vendor_id, str) or not vendor_id:
            # 2xx without an id: the outcome is unknown, and retrying could send twice.
            vendor_attempts.note(self._engine, order.order_id, STEP, "2xx without a message id")
            raise NeedsAttention(f"order {order.order_id}, step email: mailgun answered 2xx without a message id "
                                 f"({str(body)[:200]}); it is not sent again", what_to_check=check)
        result = EmailResult(message_id=vendor_id, language=language, transport=self.name, location=vendor_id,
                             created=True)
        return record_or_stop(self._engine, order.order_id, result, check)

    def _send(self, order_id: str, fields: dict[str, str | list[str]],
              files: list[tuple[str, tuple[str, bytes, str]]], language: str) -> object:
        body = self._post(order_id, fields, files, version_fallback=True)
        if body is _VERSION_REJECTED:
            # [U] the error for a missing template version is not documented: any 400 with
            # t:version set gets one more try on the template's active version (the language
            # is still in t:variables, so a single-version template can switch on it).
            log.warning("order %s, step email: mailgun rejected template %s version %r; "
                        "retrying with the active version", order_id, self._template, language)
            fields.pop("t:version")
            body = self._post(order_id, fields, files, version_fallback=False)
        return body

    # -- internals ----------------------------------------------------------------------
    def _post(self, order_id: str, fields: dict[str, str | list[str]],
              files: list[tuple[str, tuple[str, bytes, str]]], *, version_fallback: bool) -> object:
        path = f"/v3/{self._domain}/messages"
        where = f"{VENDOR} POST {path}"

        def attempt() -> object:
            response = request(where, self._client, "POST", path, data=fields, files=files or None,
                               throttle=self._throttle, throttle_name="mailgun-api")
            if version_fallback and response.status_code == 400:
                return _VERSION_REJECTED
            raise_for_status(VENDOR, response)
            return json_or_text(response)

        return api_call(order_id, attempt, sleep=self._sleep)

    @staticmethod
    def _check_options_size(order_id: str, fields: dict[str, str | list[str]]) -> None:
        options = [(k, v) for k, v in fields.items() if k[:2] in ("o:", "h:", "v:", "t:")]
        size = sum(len(k.encode()) + len(str(v).encode()) for k, v in options)
        if size > OPTIONS_LIMIT:
            raise PermanentError(f"order {order_id}, step email: mailgun options are {size} bytes, "
                                 f"over Mailgun's {OPTIONS_LIMIT}-byte limit (too many template variables)")
