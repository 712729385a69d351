"""HTTP calls to vendors, for every HTTP connector: one client per vendor, answers and
transport failures classified, rate-limit hints honoured, secrets kept out of messages.

- ``make_client``: one ``httpx.Client`` per vendor (base URL, headers, auth, timeouts).
- ``call``: one request whose transport failures and non-2xx answers are raised:
  ``raise_for_vendor`` turns an answer into TransientError (408, 429, 5xx, with the
  vendor's Retry-After hint), AnswerLost (504: the vendor may have done the work) or
  PermanentError (other 4xx); ``transport_error`` tells "not sent" from "answer lost".
  Messages hold the method, the path (no query string) and the vendor's own error text.
- ``request``: the same request without the answer check, labelled by a caller-chosen
  ``where`` (Telegram's token and Slack's webhook path are secrets, so the URL never
  appears in a message); the caller checks the answer, e.g. with ``raise_for_status``,
  which raises a 429 as ``RateLimited``.
- ``with_rate_limit_retries``: waits out a short "slow down" hint in-process (bounded) and
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

from orderpipe.errors import AnswerLost, PermanentError, TransientError

#: Transport failures that happen before a request can reach the vendor: nothing was sent.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol,
            httpx.LocalProtocolError)


def transport_error(where: str, exc: httpx.TransportError) -> TransientError:
    """A transport failure as TransientError, or AnswerLost when the request may have arrived."""
    what = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
    if isinstance(exc, NOT_SENT):
        return TransientError(f"{where}: {what} ({type(exc).__name__})")
    return AnswerLost(f"{where}: {what} after sending, the answer was lost ({type(exc).__name__})")

DEFAULT_TIMEOUT = httpx.Timeout(20.0, connect=5.0)
Throttle = Callable[[str], None]


def no_throttle(_name: str) -> None:
    """Default throttle: no shared rate limit (tests, one-off CLI calls)."""


def make_client(base_url: str, *, headers: dict[str, str] | None = None, auth: Any = None,
                timeout: httpx.Timeout | float = DEFAULT_TIMEOUT) -> httpx.Client:
    return httpx.Client(base_url=base_url.rstrip("/"), headers=headers or {}, auth=auth, timeout=timeout)


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _error_text(response: httpx.Response, limit: int = 300) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:limit]
    if isinstance(body, dict):
        for key in ("message", "error", "description", "detail", "code"):
            if key in body and body[key]:
                value = body[key]
                if isinstance(value, dict):
                    value = value.get("message") or value.get("type") or value
                return str(value)[:limit]
    return str(body)[:limit]


def raise_for_vendor(vendor: str, response: httpx.Response) -> None:
    """Raise TransientError/PermanentError for a non-2xx answer; return for 2xx."""
    if response.is_success:
        return
    where = f"{vendor} {response.request.method} {response.request.url.path}"
    reason = _error_text(response)
    status = response.status_code
    if status == 504:
        # The gateway gave up waiting for the vendor, which may still have done the work.
        raise AnswerLost(f"{where} -> HTTP 504: {reason}", retry_after=retry_after_seconds(response))
    if status == 429 or status >= 500 or status == 408:
        raise TransientError(f"{where} -> HTTP {status}: {reason}", retry_after=retry_after_seconds(response))
    raise PermanentError(f"{where} -> HTTP {status}: {reason}")


def call(vendor: str, client: httpx.Client, method: str, url: str, *, throttle: Throttle = no_throttle,
         throttle_name: str | None = None, **kwargs: Any) -> httpx.Response:
    """One request with transport errors classified; the caller still checks in-band failures."""
    if throttle_name:
        throttle(throttle_name)
    where = f"{vendor} {method} {url.split('?')[0]}"
    try:
        response = client.request(method, url, **kwargs)
    except httpx.TransportError as exc:
        raise transport_error(where, exc) from None
    raise_for_vendor(vendor, response)
    return response


# Sending with rate-limit hints honoured (the email, alert and callback connectors).

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
