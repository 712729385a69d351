"""The signed order-status callback to the shop's own API (contract: "The status callback").

Per order and status: ``POST`` (or ``PATCH``, ``ORDERPIPE_STATUS_CALLBACK_METHOD``) to
``ORDERPIPE_STATUS_CALLBACK_URL`` with the JSON body

    {"order_id", "status": "fulfilled"|"failed", "tracking_number", "invoice_number",
     "failed_step", "occurred_at"}

and the headers

- ``X-Orderpipe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256("<t>.<raw body>")>`` keyed
  with ``ORDERPIPE_STATUS_CALLBACK_SECRET`` (Stripe's scheme; ``verify_signature`` is the
  shop side), freshly signed on every attempt;
- ``Idempotency-Key: <order id>-<status>``, the same on every attempt, so a shop can drop a
  redelivery.

Idempotent by order + status through the ``status_callbacks`` table (``CallbackSent``): a
row is written once the shop answered 2xx, and an order/status with a row is never sent
again. A crash between the shop's 2xx and the row means one redelivery with the same
Idempotency-Key.

Failure policy (decided): the contract says "retried until the shop answers 2xx", so every
non-2xx answer, timeout and connection error is a TransientError; nothing is permanent,
because a shop's 4xx (bad deploy, rotated secret, wrong route) is fixed on the shop's side
and the callback must still arrive afterwards. Non-2xx answers raise ``CallbackRejected``
(a TransientError with ``status_code``) so the caller can raise an ops alert when a 4xx
keeps coming. Redirects are not followed (the signed body goes only to the configured URL).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Engine

from orderpipe.connectors.vendor_http import DEFAULT_TIMEOUT, request, retry_after_seconds
from orderpipe.db import insert_ignore, session_scope
from orderpipe.errors import PermanentError, TransientError
from orderpipe.settings import Settings
from orderpipe.tables import CallbackSent, utcnow

SIGNATURE_HEADER = "X-Orderpipe-Signature"
ORDER_STATUSES = ("fulfilled", "failed")
REFUND_STATUSES = ("refunded", "partially_refunded")  # sent by the refund flow (contract: "Refunds, ...")
STATUSES = ORDER_STATUSES + REFUND_STATUSES
FIELDS = ("order_id", "status", "tracking_number", "invoice_number", "failed_step", "occurred_at")


class CallbackRejected(TransientError):
    """The shop answered non-2xx; retried (contract), ``status_code`` tells what it said."""

    def __init__(self, message: str, *, status_code: int, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status_code = status_code


def callback_payload(order_id: str, status: str, *, tracking_number: str | None = None,
                     invoice_number: str | None = None, failed_step: str | None = None,
                     occurred_at: datetime | None = None) -> dict[str, Any]:
    """The contract's body for one status change (``occurred_at`` defaults to now, UTC)."""
    when = (occurred_at or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    return {"order_id": order_id, "status": status, "tracking_number": tracking_number,
            "invoice_number": invoice_number, "failed_step": failed_step,
            "occurred_at": when.strftime("%Y-%m-%dT%H:%M:%SZ")}


def sign(raw: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``X-Orderpipe-Signature`` value for ``raw`` (``t=<unix>,v1=<hex>``)."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    digest = hmac.new(secret.encode("utf-8"), str(t).encode("ascii") + b"." + raw, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify_signature(raw: bytes, header: str, secret: str, tolerance: int = 300) -> bool:
    """Shop side: does ``header`` sign exactly ``raw`` with ``secret``, within ``tolerance`` seconds?

    Same rules as Stripe's: any ``v1`` may match (constant-time), other schemes are ignored,
    a timestamp older than ``tolerance`` is rejected."""
    parts = [p.strip().split("=", 1) for p in (header or "").split(",") if "=" in p]
    stamps = [v for k, v in parts if k == "t"]
    candidates = [v for k, v in parts if k == "v1"]
    if len(stamps) != 1 or not stamps[0].isdigit() or not candidates or not secret:
        return False
    message = stamps[0].encode("ascii") + b"." + raw
    expected = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    matched = any(hmac.compare_digest(expected, c) for c in candidates)
    return matched and int(stamps[0]) >= time.time() - tolerance


class StatusCallbackClient:
    name = "status-callback"

    def __init__(self, settings: Settings, engine: Engine, *,
                 timeout: httpx.Timeout | float = DEFAULT_TIMEOUT) -> None:
        self._engine = engine
        self._url = (settings.orderpipe_status_callback_url or "").strip() or None
        self._secret = settings.orderpipe_status_callback_secret or ""
        self._method = settings.orderpipe_status_callback_method
        self._client = httpx.Client(timeout=timeout, follow_redirects=False,
                                    headers={"User-Agent": "orderpipe", "Content-Type": "application/json"})

    @property
    def enabled(self) -> bool:
        return self._url is not None

    def close(self) -> None:
        self._client.close()

    def check(self) -> None:
        """Configuration only: calling the shop would be a status change it has to handle."""
        if self._url is None:
            return
        parts = urlsplit(self._url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PermanentError("ORDERPIPE_STATUS_CALLBACK_URL must be an http(s):// URL with a host")
        if not self._secret:
            raise PermanentError("ORDERPIPE_STATUS_CALLBACK_SECRET is not set: callbacks are always signed")

    def notify(self, payload: dict[str, Any]) -> bool:
        """Deliver one status change; True when sent now, False when off or already acknowledged."""
        if self._url is None:
            return False
        body = _body(payload)
        order_id, status = body["order_id"], body["status"]
        if self._acknowledged(order_id, status):
            return False
        self.check()
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        where = f"order {order_id}, step status_callback ({status}): {self._method} {_safe(self._url)}"
        headers = {SIGNATURE_HEADER: sign(raw, self._secret), "Idempotency-Key": f"{order_id}-{status}"}
        response = request(where, self._client, self._method, self._url, content=raw, headers=headers)
        if not response.is_success:
            reason = response.text.strip()[:200] or "(empty body)"
            raise CallbackRejected(f"{where} -> HTTP {response.status_code}: {reason}",
                                   status_code=response.status_code, retry_after=retry_after_seconds(response))
        with session_scope(self._engine) as session:
            insert_ignore(session, CallbackSent, {"order_id": order_id, "status": status, "sent_at": utcnow()})
        return True

    def _acknowledged(self, order_id: str, status: str) -> bool:
        with session_scope(self._engine) as session:
            return session.get(CallbackSent, (order_id, status)) is not None


def _body(payload: dict[str, Any]) -> dict[str, Any]:
    """The contract's fields in the contract's order; a wrong payload is a programming error."""
    unknown = set(payload) - set(FIELDS)
    if unknown:
        raise ValueError(f"status callback payload has unknown fields {sorted(unknown)}")
    if not payload.get("order_id") or payload.get("status") not in STATUSES:
        raise ValueError(f"status callback payload needs order_id and status in {STATUSES}")
    if not payload.get("occurred_at"):
        raise ValueError("status callback payload needs occurred_at (use callback_payload())")
    body = {name: payload.get(name) for name in FIELDS}
    if isinstance(body["occurred_at"], datetime):
        body["occurred_at"] = callback_payload("x", "failed", occurred_at=body["occurred_at"])["occurred_at"]
    return body


def _safe(url: str) -> str:
    """Scheme, host and path only (a query string could carry a shop's token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}"
