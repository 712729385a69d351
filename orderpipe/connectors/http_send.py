"""Sending one vendor request with rate-limit hints honoured and secrets kept out of messages.

``orderpipe.connectors.http`` classifies answers; this module adds what the email, alert
and callback connectors need on top of it:

- ``request``: one request with timeouts and connection errors mapped to TransientError,
  labelled by a caller-chosen ``where`` (Telegram's token and Slack's webhook path are
  secrets, so the URL itself never appears in a message).
- ``RateLimited``: a TransientError for an explicit "slow down" answer (429, Telegram flood
  control). ``with_rate_limit_retries`` waits out a short hint in-process (bounded), and
  leaves longer waits to the caller (the Prefect task), with ``retry_after`` set.
- ``redact_in_httpx_logs``: httpx logs every request URL at INFO; a URL holding a secret
  is masked there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from orderpipe.connectors.vendor_http import (
    Throttle,
    no_throttle,
    raise_for_vendor,
    retry_after_seconds,
    transport_error,
)
from orderpipe.errors import TransientError

T = TypeVar("T")
Sleep = Callable[[float], None]

#: Longest vendor wait served in-process; longer hints go back to the caller.
MAX_INLINE_WAIT = 10.0
#: Attempts per call when the vendor keeps answering "slow down" with short hints.
RATE_LIMIT_ATTEMPTS = 3


class RateLimited(TransientError):
    """The vendor said "slow down" (HTTP 429 or an in-band flood-control answer)."""


def request(where: str, client: httpx.Client, method: str, url: str, *, throttle: Throttle = no_throttle,
            throttle_name: str | None = None, **kwargs: Any) -> httpx.Response:
    """One request; transport failures become TransientError naming ``where`` only."""
    if throttle_name:
        throttle(throttle_name)
    try:
        return client.request(method, url, **kwargs)
    except httpx.TransportError as exc:
        raise transport_error(where, exc) from None


def raise_for_status(vendor: str, response: httpx.Response) -> None:
    """``raise_for_vendor`` with 429 raised as RateLimited (so it may be waited out in-process)."""
    if response.status_code == 429:
        try:
            raise_for_vendor(vendor, response)
        except TransientError as exc:
            raise RateLimited(str(exc), retry_after=retry_after_seconds(response)) from None
    raise_for_vendor(vendor, response)


def with_rate_limit_retries(attempt: Callable[[], T], *, sleep: Sleep = time.sleep,
                            max_wait: float = MAX_INLINE_WAIT, attempts: int = RATE_LIMIT_ATTEMPTS) -> T:
    """Run ``attempt``; on RateLimited with a short hint, sleep that long and try again.

    Only explicit rate-limit answers are retried here: nothing was accepted, so a retry
    cannot duplicate. Timeouts and 5xx (outcome unknown) go back to the caller.
    """
    for n in range(1, attempts + 1):
        try:
            return attempt()
        except RateLimited as exc:
            wait = exc.retry_after
            if n == attempts or wait is None or wait > max_wait:
                raise
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


class _RedactFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__("orderpipe-redact")
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if any(s in text for s in self.secrets):
            for secret in self.secrets:
                text = text.replace(secret, "***")
            record.msg, record.args = text, None
        return True


_filter = _RedactFilter()


def redact_in_httpx_logs(secret: str) -> None:
    """Mask ``secret`` in httpx's INFO request lines (they contain the full URL).

    httpcore's DEBUG trace names host and port, never the path, so it needs no filter."""
    if not secret:
        return
    _filter.secrets.add(secret)
    logger = logging.getLogger("httpx")
    if _filter not in logger.filters:
        logger.addFilter(_filter)
