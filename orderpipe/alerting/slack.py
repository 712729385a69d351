"""Ops alerts to a Slack channel through an incoming webhook.

Per alert: one ``POST <SLACK_WEBHOOK_URL>`` with JSON ``{"text": ...}``; Slack answers 200
with the plain text ``ok``. Failures are a non-200 status with a plain-text code
(``invalid_payload``, ``no_service``, ``channel_is_archived``...): 429 and 5xx are transient
(429 with Retry-After), other codes permanent. A 200 whose body is JSON ``"ok": false``
(the Web API's style) is handled as a permanent failure too, defensively.

The webhook URL is the secret: it never appears in messages or logs (errors say
"slack webhook"), and httpx's request log is redacted. No idempotency key exists: a retry
after a timeout can post twice (acceptable for alerts; the caller dedupes by dedupe_key).
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import httpx

from orderpipe.alerting.text import alert_text
from orderpipe.connectors.base import Alert
from orderpipe.connectors.vendor_http import (
    DEFAULT_TIMEOUT,
    RateLimited,
    Sleep,
    Throttle,
    no_throttle,
    redact_in_httpx_logs,
    request,
    retry_after_seconds,
    with_rate_limit_retries,
)
from orderpipe.errors import PermanentError, TransientError
from orderpipe.settings import Settings

WHERE = "slack webhook POST"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
MAX_TEXT = 40_000  # Slack truncates longer messages; alerts are one line anyway


def webhook_url_problem(url: str) -> str | None:
    """Why ``url`` is not an incoming-webhook URL (without repeating the URL), or None."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return "not a URL"
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in LOOPBACK):
        return "must be an https:// URL"
    if not parts.hostname:
        return "has no host"
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) != 4 or segments[0] != "services":
        return "must look like https://hooks.slack.com/services/T.../B.../<secret>"
    return None


class SlackAlerts:
    name = "slack"

    def __init__(self, settings: Settings, throttle: Throttle = no_throttle, *,
                 timeout: httpx.Timeout | float = DEFAULT_TIMEOUT, sleep: Sleep = time.sleep) -> None:
        if not settings.slack_webhook_url:
            raise PermanentError("slack alerts need SLACK_WEBHOOK_URL")
        self._url = settings.slack_webhook_url.strip()
        self._throttle = throttle
        self._sleep = sleep
        path = urlsplit(self._url).path
        redact_in_httpx_logs(path if len(path) > len("/services/") else self._url)
        self._client = httpx.Client(timeout=timeout, headers={"User-Agent": "orderpipe"})

    def close(self) -> None:
        self._client.close()

    def check(self) -> None:
        """Validates the URL's shape only: an incoming webhook has no call without a side
        effect (any accepted POST posts a message), so reachability is proven by the first alert."""
        problem = webhook_url_problem(self._url)
        if problem:
            raise PermanentError(f"SLACK_WEBHOOK_URL {problem}")

    def send(self, alert: Alert) -> None:
        text = alert_text(alert, MAX_TEXT)

        def attempt() -> None:
            response = request(WHERE, self._client, "POST", self._url, json={"text": text},
                               throttle=self._throttle, throttle_name="slack-webhook")
            _classify(response)

        with_rate_limit_retries(attempt, sleep=self._sleep)


def _classify(response: httpx.Response) -> None:
    status = response.status_code
    code = response.text.strip()[:200] or "(empty body)"
    if status == 200:
        try:
            body = json.loads(code)
        except ValueError:
            return  # the documented answer is the plain text "ok"
        if isinstance(body, dict) and body.get("ok") is False:
            raise PermanentError(f"{WHERE} -> 200 ok:false: {body.get('error') or 'no error code'}")
        return
    if status == 429:
        raise RateLimited(f"{WHERE} -> HTTP 429: {code}", retry_after=retry_after_seconds(response))
    if status >= 500 or status == 408:
        raise TransientError(f"{WHERE} -> HTTP {status}: {code}", retry_after=retry_after_seconds(response))
    raise PermanentError(f"{WHERE} -> HTTP {status}: {code}")
