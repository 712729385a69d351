"""Zoho CRM (EU data centre): a contact per customer email and one deal per order.

Calls for a new order (the access token is cached, see ``zoho_tokens``):

1. ``GET  /crm/v8/Deals/search?criteria=(Stripe_PaymentIntent:equals:pi_...)`` -> 204 when none
2. ``POST /crm/v8/Contacts/upsert`` with ``duplicate_check_fields: ["Email"]``
3. ``POST /crm/v8/Deals/upsert`` with ``duplicate_check_fields: ["Stripe_PaymentIntent"]``

A repeat (crash after Zoho answered, replay) stops at step 1 and writes nothing.

After a refund or lost dispute (``record_refund``) the order's deal gets the Stage naming the
payment status ("Refunded", "Partially refunded"): the same search finds the deal, then, only
when its Stage differs, ``POST /crm/v8/Deals/upsert`` keyed on ``Stripe_PaymentIntent`` (the
update vendor-apis.md documents) with the Stage and the deal's own ``Deal_Name`` and
``Closing_Date`` as Zoho has them (whether an upsert that updates needs the layout's mandatory
fields is unconfirmed [U]; sending their current values changes nothing). A repeat finds the
Stage already set and writes nothing; no deal (none found) writes nothing either. The deal
upsert keyed on the PaymentIntent is what makes a duplicate impossible even when the search
misses (two runs at once, search index lag): the org needs a custom Deals field
``Stripe_PaymentIntent`` set to "Do not allow duplicate values". Searching first keeps a
replay from overwriting a deal that sales people have since moved on.

Zoho answers 2xx even when a record fails: every ``data[]`` entry's ``status`` is checked.
A 401 ``INVALID_TOKEN`` gets one forced token refresh and one retry. Each call is repeated in
place up to 3 times on a 429, 5xx, timeout or lost answer (0.5 s, 1 s, or Zoho's Retry-After up
to 10 s): the calls are reads and keyed upserts, so a repeat never duplicates, and the step's
own retries are kept for longer trouble.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from typing import Any

import httpx
from babel import Locale
from sqlalchemy import Engine

from orderpipe.connectors.base import CrmResult
from orderpipe.connectors.json_body import JSON_HEADERS, dumps
from orderpipe.connectors.vendor_http import DEFAULT_TIMEOUT, Throttle, call, make_client, no_throttle
from orderpipe.crm import refund_stage
from orderpipe.crm.zoho_tokens import ZohoTokens
from orderpipe.errors import OrderDataError, PermanentError, StepError, TransientError
from orderpipe.money import to_decimal
from orderpipe.order import Address, Order
from orderpipe.settings import Settings

log = logging.getLogger(__name__)

API_PATH = "/crm/v8"
THROTTLE_NAME = "zoho-api"
REQUEST_ATTEMPTS = 3  # per call, in place (reads and keyed upserts only)
REQUEST_BACKOFF = 0.5  # seconds before the second attempt; doubled before the third
MAX_INLINE_WAIT = 10.0  # a longer Retry-After goes back to the step's own retry
DEAL_KEY_FIELD = "Stripe_PaymentIntent"
DEAL_STAGE = "Closed Won"
# Codes Zoho uses for an expired, revoked or superseded access token.
TOKEN_REJECTED = frozenset({"INVALID_TOKEN", "INVALID_OAUTHTOKEN"})


class ZohoOAuth(httpx.Auth):
    """``Authorization: Zoho-oauthtoken <t>``; on 401 INVALID_TOKEN one refresh and one retry."""

    requires_response_body = True

    def __init__(self, tokens: ZohoTokens) -> None:
        self._tokens = tokens

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._tokens.access_token()
        request.headers["Authorization"] = f"Zoho-oauthtoken {token}"
        response = yield request
        if response.status_code == 401 and _zoho_code(response) in TOKEN_REJECTED:
            log.info("zoho: access token rejected (%s); refreshing once", _zoho_code(response))
            token = self._tokens.access_token(rejected=token)
            request.headers["Authorization"] = f"Zoho-oauthtoken {token}"
            yield request


class ZohoCrm:
    """``CrmConnector`` for Zoho CRM."""

    name = "zoho"

    def __init__(self, settings: Settings, engine: Engine, throttle: Throttle = no_throttle, *,
                 tokens: ZohoTokens | None = None, timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
                 deal_key_field: str = DEAL_KEY_FIELD, attempts: int = REQUEST_ATTEMPTS,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._owns_tokens = tokens is None
        self._tokens = tokens or ZohoTokens(settings, engine, timeout=timeout)
        base = settings.zoho_api_base.rstrip("/")
        if not base.endswith(API_PATH):
            base += API_PATH
        self._http = make_client(base, auth=ZohoOAuth(self._tokens), timeout=timeout)
        self._throttle = throttle
        self._deal_key = deal_key_field
        self._attempts = max(1, attempts)
        self._sleep = sleep

    def close(self) -> None:
        self._http.close()
        if self._owns_tokens:
            self._tokens.close()

    # ---- CrmConnector ---------------------------------------------------------------------
    def record_order(self, order: Order) -> CrmResult:
        if not order.customer_email:
            raise OrderDataError(f"crm (zoho) for order {order.order_id}: the order has no customer email")
        try:
            deal = self._find_deal(order.order_id)
            contact_ref = deal.get("Contact_Name") if deal else None
            if deal and isinstance(contact_ref, dict) and contact_ref.get("id"):
                log.info("zoho: deal %s for order %s exists; nothing written", deal["id"], order.order_id)
                return CrmResult(contact_id=str(contact_ref["id"]), deal_id=str(deal["id"]), created=False)
            contact_id = self._upsert_contact(order)
            if deal:
                return CrmResult(contact_id=contact_id, deal_id=str(deal["id"]), created=False)
            deal_id, created = self._upsert_deal(order, contact_id)
        except StepError as exc:
            raise _for_order(exc, order.order_id) from exc
        log.info("zoho: order %s -> contact %s, deal %s (%s)", order.order_id, contact_id, deal_id,
                 "created" if created else "existing")
        return CrmResult(contact_id=contact_id, deal_id=deal_id, created=created)

    def record_refund(self, order_id: str, payment_status: str, refunded_amount: int) -> bool:
        """The order's deal after a refund or lost dispute: its Stage names the payment status.

        Idempotent (sets the Stage, writes nothing when it is already set); False when Zoho has
        no deal for the order. Errors as ``record_order``'s (transient: retried)."""
        stage = refund_stage(payment_status)
        try:
            deal = self._find_deal(order_id)
            if deal is None:
                log.warning("zoho: no deal carries %s=%s; stage %r not set", self._deal_key, order_id, stage)
                return False
            if deal.get("Stage") == stage:
                log.info("zoho: deal %s of order %s is already %r; nothing written", deal["id"], order_id, stage)
                return True
            fields: dict[str, Any] = {self._deal_key: order_id, "Stage": stage}
            fields |= {k: deal[k] for k in ("Deal_Name", "Closing_Date") if deal.get(k) not in (None, "")}
            body = {"data": [fields], "duplicate_check_fields": [self._deal_key], "trigger": []}
            response = self._request("POST", "/Deals/upsert", content=dumps(body), headers=JSON_HEADERS)
            record = _only_record(response, "deal stage update")
            if record.get("action") != "update":
                raise PermanentError(f"zoho deal stage update: deal {deal['id']} was not updated "
                                     f"(action {record.get('action')!r})")
        except StepError as exc:
            raise _for_order(exc, order_id) from exc
        log.info("zoho: deal %s of order %s -> stage %r (refunded %s)", deal["id"], order_id, stage, refunded_amount)
        return True

    def check(self) -> None:
        response = self._request("GET", "/users", params={"type": "CurrentUser"})
        body = _json(response)
        if not isinstance(body.get("users"), list) or not body["users"]:
            raise PermanentError("zoho GET /crm/v8/users: answer names no current user")

    # ---- calls ------------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One Zoho call, repeated in place on a transient failure: every call made here is a
        read or an upsert keyed by ``duplicate_check_fields``, so a repeat cannot duplicate.
        A step makes up to four calls; retrying the step for one flaky call would redo all."""
        for attempt in range(1, self._attempts + 1):
            try:
                return call("zoho", self._http, method, path, throttle=self._throttle,
                            throttle_name=THROTTLE_NAME, **kwargs)
            except TransientError as exc:
                wait = exc.retry_after if exc.retry_after is not None else REQUEST_BACKOFF * 2 ** (attempt - 1)
                if attempt == self._attempts or wait > MAX_INLINE_WAIT:
                    raise
                log.info("zoho: %s %s failed (%s); again in %.1f s (attempt %d of %d)", method, path,
                         str(exc)[:200], wait, attempt + 1, self._attempts)
                self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _find_deal(self, order_id: str) -> dict[str, Any] | None:
        criteria = f"({self._deal_key}:equals:{_criteria_value(order_id)})"
        response = self._request("GET", "/Deals/search", params={"criteria": criteria})
        if response.status_code == 204 or not response.content:
            return None  # "no match" is an empty 204: never json-parse it
        records = _json(response).get("data")
        if not isinstance(records, list) or not records:
            return None
        if len(records) > 1:
            log.warning("zoho: %d deals carry %s=%s; using the first", len(records), self._deal_key, order_id)
        first = records[0]
        if not isinstance(first, dict) or not first.get("id"):
            raise PermanentError("zoho GET /crm/v8/Deals/search: a matching record has no id")
        return first

    def _upsert_contact(self, order: Order) -> str:
        body = {"data": [contact_fields(order)], "duplicate_check_fields": ["Email"],
                # The default automation when `trigger` is omitted is unconfirmed [U]: say what we
                # want. Contact workflows run, as in Zoho's own example.
                "trigger": ["workflow"]}
        response = self._request("POST", "/Contacts/upsert", content=dumps(body), headers=JSON_HEADERS)
        record = _only_record(response, "contact upsert")
        return _record_id(record, "contact upsert")

    def _upsert_deal(self, order: Order, contact_id: str) -> tuple[str, bool]:
        body = {"data": [deal_fields(order, contact_id, self._deal_key)], "duplicate_check_fields": [self._deal_key],
                "trigger": []}  # no automation on the deal, so a repeat cannot fire it twice
        response = self._request("POST", "/Deals/upsert", content=dumps(body), headers=JSON_HEADERS)
        record = _only_record(response, "deal upsert")
        return _record_id(record, "deal upsert"), record.get("action") != "update"


# ---- record bodies --------------------------------------------------------------------------
def contact_fields(order: Order) -> dict[str, Any]:
    first, last = _split_name(order.customer_name or order.recipient_name, str(order.customer_email))
    address: Address | None = order.billing_address or order.shipping_address
    fields: dict[str, Any] = {"Last_Name": last, "First_Name": first, "Email": order.customer_email,
                              "Phone": order.customer_phone}
    if address:
        fields |= {"Mailing_Street": ", ".join(x for x in (address.line1, address.line2) if x) or None,
                   "Mailing_City": address.city, "Mailing_Zip": address.postal_code,
                   "Mailing_State": address.state, "Mailing_Country": _country_name(address.country)}
    # Absent, not null: null would clear what the CRM already knows on an update.
    return {k: v for k, v in fields.items() if v not in (None, "")}


def deal_fields(order: Order, contact_id: str, key_field: str = DEAL_KEY_FIELD) -> dict[str, Any]:
    currency = order.currency.upper()
    amount = to_decimal(order.amount_total, order.currency)
    items = "; ".join(f"{line.quantity} x {line.description}" for line in order.lines if not line.is_shipping)
    # Mandatory deal fields depend on the org's layout [U]: Deal_Name, Stage and Closing_Date
    # are sent because they are the usual ones. Zoho's `Currency` field exists only in
    # multi-currency orgs [U], so the currency goes into the description instead.
    return {
        "Deal_Name": f"Order {order.reference or order.order_id}",
        "Stage": DEAL_STAGE,
        "Amount": amount,
        "Closing_Date": order.created.date().isoformat(),
        "Contact_Name": {"id": contact_id},
        key_field: order.order_id,
        "Description": f"Stripe order {order.order_id}: {amount} {currency}. {items}".strip(),
    }


def _split_name(name: str | None, email: str) -> tuple[str | None, str]:
    parts = (name or "").split()
    if not parts:
        return None, email.split("@", 1)[0]  # Last_Name is mandatory for Contacts
    if len(parts) == 1:
        return None, parts[0]
    return " ".join(parts[:-1]), parts[-1]


def _country_name(code: str | None) -> str | None:
    if not code:
        return None
    return Locale("en").territories.get(code.upper(), code.upper())


def _criteria_value(value: str) -> str:
    # Zoho criteria need ( ) , and \ escaped with a backslash inside values.
    for ch in ("\\", "(", ")", ","):
        value = value.replace(ch, "\\" + ch)
    return value


# ---- answers --------------------------------------------------------------------------------
def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise PermanentError(
            f"zoho {response.request.method} {response.request.url.path}: answer is not JSON"
        ) from None
    return body if isinstance(body, dict) else {}


def _zoho_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return str(body.get("code")) if isinstance(body, dict) and body.get("code") else None


def _only_record(response: httpx.Response, what: str) -> dict[str, Any]:
    """The single data[] entry of a write, which must say status=success (2xx is not enough)."""
    records = _json(response).get("data")
    if not isinstance(records, list) or len(records) != 1 or not isinstance(records[0], dict):
        raise PermanentError(f"zoho {what}: expected one data[] entry in the answer")
    record = records[0]
    if record.get("status") != "success":
        details = record.get("details") if isinstance(record.get("details"), dict) else {}
        field = details.get("api_name") or details.get("json_path")
        raise PermanentError(
            f"zoho {what} rejected: {record.get('code') or 'error'}: {record.get('message') or 'no message'}"
            + (f" (field {field})" if field else "")
        )
    return record


def _record_id(record: dict[str, Any], what: str) -> str:
    details = record.get("details")
    if not isinstance(details, dict) or not details.get("id"):
        raise PermanentError(f"zoho {what}: success without a record id")
    return str(details["id"])


def _for_order(exc: StepError, order_id: str) -> StepError:
    message = f"crm (zoho) for order {order_id}: {exc}"
    if isinstance(exc, TransientError):
        return TransientError(message, retry_after=exc.retry_after)
    return type(exc)(message)
