"""What every HTTP connector shares: one client per vendor and error classification.

``raise_for_vendor`` turns a response into TransientError (429, 5xx, with the vendor's
Retry-After hint) or PermanentError (other 4xx); ``call`` also maps timeouts and
connection errors to TransientError. Secrets never appear in the messages: only the
method, the path (without query string) and the vendor's own error text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
