"""Airtable production log: one record per order in the configured table, keyed on "Order ID".

Calls for a new order:

1. ``GET   /v0/{base}/{table}?filterByFormula={Order ID}='pi_...'&maxRecords=1``
2. ``PATCH /v0/{base}/{table}`` with ``performUpsert: {fieldsToMergeOn: ["Order ID"]}``

A repeat (crash after Airtable answered, replay) stops at step 1 and writes nothing, so it
cannot reset a Status that later steps have moved on. Airtable has no idempotency key; the
upsert merged on "Order ID" is what makes a second record impossible even when two runs race
past the lookup. ``update_status`` finds the record (remembered or looked up) and PATCHes it.

The table needs the fields Order ID (text), Customer (text), Country (text), Items (long
text), Status (single select; new options are created through ``typecast``), Amount
(number or currency) and Currency (text). Airtable allows 5 requests/s per base: the caller
injects a shared ``throttle`` ("airtable-api"); after a 429 Airtable wants 30 s of silence.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import httpx

from orderpipe.connectors.base import ProductionLogResult
from orderpipe.connectors.json_body import JSON_HEADERS, dumps
from orderpipe.connectors.vendor_http import (
    DEFAULT_TIMEOUT,
    Throttle,
    call,
    make_client,
    no_throttle,
    retry_after_seconds,
)
from orderpipe.errors import PermanentError, StepError, TransientError
from orderpipe.money import to_decimal
from orderpipe.order import Order
from orderpipe.settings import Settings

log = logging.getLogger(__name__)

THROTTLE_NAME = "airtable-api"
ORDER_FIELD = "Order ID"
INITIAL_STATUS = "Queued"
RATE_LIMIT_PENALTY = 30.0  # seconds Airtable wants after a 429, whatever Retry-After says [U if sent]


class AirtableProductionLog:
    """``ProductionLogConnector`` for an Airtable table."""

    name = "airtable"

    def __init__(self, settings: Settings, throttle: Throttle = no_throttle, *,
                 timeout: httpx.Timeout | float = DEFAULT_TIMEOUT) -> None:
        if not settings.airtable_token or not settings.airtable_base_id:
            missing = [n for n, v in (("AIRTABLE_TOKEN", settings.airtable_token),
                                      ("AIRTABLE_BASE_ID", settings.airtable_base_id)) if not v]
            raise PermanentError("airtable: missing " + ", ".join(missing))
        self._http = make_client(settings.airtable_api_base.rstrip("/") + "/v0",
                                 headers={"Authorization": f"Bearer {settings.airtable_token}"}, timeout=timeout)
        self._http.event_hooks = {"request": [], "response": [_rate_limit_penalty]}
        # Table names are URL-encoded (spaces, slashes); table ids (tbl...) pass unchanged.
        self._path = f"/{quote(settings.airtable_base_id, safe='')}/{quote(settings.airtable_table, safe='')}"
        self._throttle = throttle
        self._record_ids: dict[str, str] = {}

    def close(self) -> None:
        self._http.close()

    # ---- ProductionLogConnector -----------------------------------------------------------
    def record_order(self, order: Order) -> ProductionLogResult:
        try:
            existing = self._find(order.order_id)
            if existing:
                log.info("airtable: entry %s for order %s exists; nothing written", existing, order.order_id)
                return ProductionLogResult(entry_id=existing, created=False)
            body = {"performUpsert": {"fieldsToMergeOn": [ORDER_FIELD]},
                    "records": [{"fields": entry_fields(order)}], "typecast": True}
            response = self._request("PATCH", self._path, content=dumps(body), headers=JSON_HEADERS)
            answer = _json(response)
            records = answer.get("records")
            if not isinstance(records, list) or len(records) != 1 or not records[0].get("id"):
                raise PermanentError(f"airtable PATCH {self._path}: upsert answer has no record")
            entry_id = str(records[0]["id"])
        except StepError as exc:
            raise _for_order(exc, "production_log (airtable)", order.order_id) from exc
        created = entry_id in (answer.get("createdRecords") or [])
        self._record_ids[order.order_id] = entry_id
        log.info("airtable: order %s -> entry %s (%s)", order.order_id, entry_id, "created" if created else "merged")
        return ProductionLogResult(entry_id=entry_id, created=created)

    def update_status(self, order_id: str, status: str) -> None:
        try:
            entry_id = self._record_ids.get(order_id) or self._find(order_id)
            if not entry_id:
                raise PermanentError(f"no record with {ORDER_FIELD} = {order_id} in the production log")
            body = {"fields": {"Status": status}, "typecast": True}
            self._request("PATCH", f"{self._path}/{quote(entry_id, safe='')}", content=dumps(body),
                          headers=JSON_HEADERS)
        except StepError as exc:
            raise _for_order(exc, "production_log status (airtable)", order_id) from exc
        self._record_ids[order_id] = entry_id

    def check(self) -> None:
        answer = _json(self._request("GET", self._path, params={"maxRecords": "1"}))
        if not isinstance(answer.get("records"), list):
            raise PermanentError(f"airtable GET {self._path}: answer has no records list")

    # ---- calls ------------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return call("airtable", self._http, method, path, throttle=self._throttle, throttle_name=THROTTLE_NAME,
                    **kwargs)

    def _find(self, order_id: str) -> str | None:
        formula = f"{{{_field_ref(ORDER_FIELD)}}}='{_string_literal(order_id)}'"
        answer = _json(self._request("GET", self._path, params={"filterByFormula": formula, "maxRecords": "1"}))
        records = answer.get("records")
        if not isinstance(records, list):
            raise PermanentError(f"airtable GET {self._path}: answer has no records list")
        if not records:
            return None
        entry_id = records[0].get("id") if isinstance(records[0], dict) else None
        if not entry_id:
            raise PermanentError(f"airtable GET {self._path}: a matching record has no id")
        self._record_ids[order_id] = str(entry_id)
        return str(entry_id)


def entry_fields(order: Order) -> dict[str, Any]:
    items = "\n".join(f"{line.quantity} x {line.description}" for line in order.lines if not line.is_shipping)
    fields: dict[str, Any] = {
        ORDER_FIELD: order.order_id,
        "Customer": order.recipient_name or order.customer_name or order.customer_email,
        "Country": order.country,
        "Items": items,
        "Status": INITIAL_STATUS,
        "Amount": to_decimal(order.amount_total, order.currency),
        "Currency": order.currency.upper(),
    }
    return {k: v for k, v in fields.items() if v not in (None, "")}


def _rate_limit_penalty(response: httpx.Response) -> None:
    """Response hook: a 429 becomes TransientError asking for at least Airtable's 30 s pause."""
    if response.status_code != 429:
        return
    response.read()
    hint = retry_after_seconds(response) or 0.0
    raise TransientError(
        f"airtable {response.request.method} {response.request.url.path} -> HTTP 429: rate limited "
        f"(Airtable blocks the base for {RATE_LIMIT_PENALTY:.0f} s)",
        retry_after=max(RATE_LIMIT_PENALTY, hint),
    )


def _field_ref(name: str) -> str:
    return name.replace("\\", "\\\\").replace("}", "\\}")


def _string_literal(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise PermanentError(
            f"airtable {response.request.method} {response.request.url.path}: answer is not JSON"
        ) from None
    return body if isinstance(body, dict) else {}


def _for_order(exc: StepError, step: str, order_id: str) -> StepError:
    message = f"{step} for order {order_id}: {exc}"
    if isinstance(exc, TransientError):
        return TransientError(message, retry_after=exc.retry_after)
    return type(exc)(message)
