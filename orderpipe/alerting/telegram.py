"""Ops alerts to a Telegram chat through the Bot API (``sendMessage``).

Per alert: one ``POST <TELEGRAM_API_BASE>/bot<token>/sendMessage`` with JSON
``{"chat_id", "text", "disable_notification": false}`` (plain text: no parse_mode, so
nothing needs escaping). A group upgraded to a supergroup answers with
``parameters.migrate_to_chat_id``: the alert is sent once more to the new chat and a
warning says to update ``TELEGRAM_CHAT_ID``.

Success is ``"ok": true`` in the body, not the HTTP status. Flood control (429 or
``parameters.retry_after``) is a RateLimited TransientError; other ``"ok": false`` answers
are permanent (chat not found, bot blocked, bad token), 5xx transient.

The bot token is part of the URL path: messages say ``/bot<token>`` instead, exceptions are
raised ``from None`` (httpx's own carry the URL) and httpx's request log is redacted.
Telegram has no idempotency key: a retry after a timeout can post twice (acceptable for
alerts; the caller dedupes by ``dedupe_key`` before sending).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx

from orderpipe.alerting.text import alert_text
from orderpipe.connectors.base import Alert
from orderpipe.connectors.vendor_http import (
    DEFAULT_TIMEOUT,
    RateLimited,
    Sleep,
    Throttle,
    make_client,
    no_throttle,
    redact_in_httpx_logs,
    request,
    retry_after_seconds,
    with_rate_limit_retries,
)
from orderpipe.errors import PermanentError, StepError, TransientError
from orderpipe.settings import Settings

log = logging.getLogger(__name__)

VENDOR = "telegram"
THROTTLE_NAME = "telegram-api"
MAX_TEXT = 4096


class TelegramAlerts:
    name = "telegram"

    def __init__(self, settings: Settings, throttle: Throttle = no_throttle, *,
                 timeout: httpx.Timeout | float = DEFAULT_TIMEOUT, sleep: Sleep = time.sleep) -> None:
        if not (settings.telegram_bot_token and settings.telegram_chat_id):
            raise PermanentError("telegram alerts need TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID")
        self._token = settings.telegram_bot_token
        self._chat_id: int | str = _chat_id(settings.telegram_chat_id)
        self._throttle = throttle
        self._sleep = sleep
        redact_in_httpx_logs(self._token)
        self._client = make_client(settings.telegram_api_base, timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def check(self) -> None:
        """``getMe``: proves the token without posting anything."""
        self._call("getMe", None)

    def send(self, alert: Alert) -> None:
        text = alert_text(alert, MAX_TEXT)
        payload: dict[str, Any] = {"chat_id": self._chat_id, "text": text, "disable_notification": False}
        try:
            self._call("sendMessage", payload)
        except _Migrated as moved:
            log.warning("telegram chat %s became supergroup %s: set TELEGRAM_CHAT_ID=%s",
                        self._chat_id, moved.new_chat_id, moved.new_chat_id)
            self._chat_id = moved.new_chat_id
            self._call("sendMessage", {**payload, "chat_id": moved.new_chat_id})

    # -- internals ----------------------------------------------------------------------
    def _call(self, method: str, payload: dict[str, Any] | None) -> Any:
        where = f"{VENDOR} POST /bot<token>/{method}"

        def attempt() -> Any:
            response = request(where, self._client, "POST", f"/bot{self._token}/{method}", json=payload,
                               throttle=self._throttle, throttle_name=THROTTLE_NAME)
            return _result(where, response)

        try:
            return with_rate_limit_retries(attempt, sleep=self._sleep)
        except StepError as exc:
            # Belt and braces: whatever the vendor echoed, the token never leaves this class.
            message = str(exc).replace(self._token, "<token>")
            if isinstance(exc, TransientError):
                raise type(exc)(message, retry_after=exc.retry_after) from None
            if isinstance(exc, _Migrated):
                raise
            raise type(exc)(message) from None


class _Migrated(PermanentError):
    def __init__(self, message: str, new_chat_id: int) -> None:
        super().__init__(message)
        self.new_chat_id = new_chat_id


def _result(where: str, response: httpx.Response) -> Any:
    """The ``result`` of an ``"ok": true`` answer; otherwise the classified error."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        status = response.status_code
        text = response.text[:200]
        if status == 429:
            raise RateLimited(f"{where} -> HTTP 429: {text}", retry_after=retry_after_seconds(response))
        if status >= 500 or status == 408:
            raise TransientError(f"{where} -> HTTP {status}: {text}")
        raise PermanentError(f"{where} -> HTTP {status}: not a Bot API answer: {text}")
    if body.get("ok") is True:
        return body.get("result")
    code = body.get("error_code") if isinstance(body.get("error_code"), int) else response.status_code
    description = str(body.get("description") or "no description")[:300]
    parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
    reason = f"{where} -> ok:false {code}: {description}"
    retry_after = parameters.get("retry_after")
    if code == 429 or response.status_code == 429 or isinstance(retry_after, int | float):
        # The body's retry_after is what Telegram documents; a Retry-After header is [U].
        hint = float(retry_after) if isinstance(retry_after, int | float) else retry_after_seconds(response)
        raise RateLimited(reason, retry_after=hint)
    new_chat = parameters.get("migrate_to_chat_id")
    if isinstance(new_chat, int):
        raise _Migrated(reason, new_chat)
    if response.status_code >= 500 or (isinstance(code, int) and code >= 500):
        raise TransientError(reason)
    raise PermanentError(reason)


def _chat_id(value: str) -> int | str:
    """Numeric ids go as JSON integers (as documented); ``@channel`` names as strings."""
    value = value.strip()
    try:
        return int(value)
    except ValueError:
        return value
