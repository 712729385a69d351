"""PostNord shipping: book the shipment and get its PDF label in one call (EDI v3).

Wire format: shared/docs/vendor-apis.md section 4. Per order this connector makes, in the
normal case, exactly one request::

    POST {POSTNORD_API_BASE}/rest/shipment/v3/edi/labels/pdf?apikey=KEY&paperSize=A5

Idempotency. PostNord has no idempotency key. Every booking carries a stable reference
derived from the PaymentIntent id (``messageId = "<pi id>-1"`` and a ``CU`` shipment
reference ``<pi id>``), but whether PostNord deduplicates on ``messageId`` is unconfirmed
[U], so we do not rely on it. The doc offers no lookup of a booking by our reference, so
lookup-before-create happens on our side, as the doc advises ("persist itemId + label before
marking the step done; check your store before re-booking"): the moment PostNord answers
with a booking, the answer (item id, tracking URL, label) is committed to the booking
journal, table ``postnord_bookings`` in orderpipe's database (shared by every worker
machine, so a retry on another machine sees it); a later call for the same order finds it
and books nothing. A booking whose label was missing is journalled too, and a later call
fetches the label by item id (``POST /rest/shipment/v3/labels/ids/pdf``) instead of re-booking.

Unknown outcomes (``orderpipe.vendor_attempts``): before the booking is sent, an attempt
marker is committed; the journal write removes it in the same transaction. A response lost
in transit (read timeout, connection cut after sending, 504, a non-JSON 2xx), a process
killed mid-call, or a journal write that fails after PostNord booked leaves the marker
behind. PostNord offers no lookup of a booking by our reference (vendor doc section 4), so
the step is never repeated then: it raises ``NeedsAttention`` naming what to look for in
PostNord (the messageId / CU reference); a person checks and either cancels/records the
booking or runs ``orderpipe resolve <order> shipment`` when PostNord has none.

The API key travels as the ``apikey`` query parameter (PostNord's only auth for this API).
It never appears in our messages (``http.call`` strips query strings) and a logging filter
removes it from httpx's own request log line.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from orderpipe import vendor_attempts
from orderpipe.connectors.base import FileStore, ShipmentResult, StoredFile
from orderpipe.connectors.json_body import dumps
from orderpipe.connectors.vendor_http import DEFAULT_TIMEOUT, Throttle, call, make_client, no_throttle
from orderpipe.db import get_engine, insert_ignore, session_scope
from orderpipe.errors import AnswerLost, NeedsAttention, OrderDataError, PermanentError, StepError, TransientError
from orderpipe.order import Order
from orderpipe.settings import Settings
from orderpipe.tables import PostNordBooking, utcnow

VENDOR = "PostNord"
BOOK_PATH = "/rest/shipment/v3/edi/labels/pdf"
LABEL_BY_ID_PATH = "/rest/shipment/v3/labels/ids/pdf"
CHECK_PATH = "/rest/shipment/v3/edi/servicecodes"
# PostNord entity holding the agreement, by the seller's country (doc: issuerCode).
ISSUER_CODES = {"DK": "Z11", "SE": "Z12", "NO": "Z13", "FI": "Z14"}
# consignee address fields PostNord needs, as Order.shipping_address attributes
REQUIRED_ADDRESS = ("name", "line1", "postal_code", "city", "country")
DEFAULT_PARCEL_KG = Decimal("1.0")
LEGACY_JOURNAL_DIR = "postnord"  # <data dir>/postnord/<pi>.json, the journal before it moved to the database

STEP = "shipment"
#: In-process tries of the journal write after PostNord booked (the booking is never repeated).
JOURNAL_WRITE_TRIES = 3
log = logging.getLogger("orderpipe.postnord")
_APIKEY_RE = re.compile(r"(apikey=)[^&\s\"']+", re.IGNORECASE)


class _RedactApiKey(logging.Filter):
    """httpx logs every request URL at INFO; the PostNord key is a query parameter."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(_APIKEY_RE.sub(r"\1***", str(a)) if "apikey=" in str(a).lower() else a
                                for a in record.args)
        if isinstance(record.msg, str) and "apikey=" in record.msg.lower():
            record.msg = _APIKEY_RE.sub(r"\1***", record.msg)
        return True


def install_log_redaction() -> None:
    """Attach the apikey redaction filter to httpx's logger once."""
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactApiKey) for f in logger.filters):
        logger.addFilter(_RedactApiKey())


class PostNordShipping:
    """ShippingConnector booking PostNord parcels and storing their PDF labels."""

    name = "postnord"

    def __init__(self, settings: Settings, files: FileStore, tracking_url_template: str, *,
                 application_id: int | None = None, parcel_weight_kg: Decimal = DEFAULT_PARCEL_KG,
                 paper_size: str = "A5", timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
                 throttle: Throttle = no_throttle, engine: Engine | None = None) -> None:
        missing = [n for n, v in (("POSTNORD_API_KEY", settings.postnord_api_key),
                                  ("POSTNORD_CUSTOMER_NUMBER", settings.postnord_customer_number),
                                  ("POSTNORD_SERVICE_CODE", settings.postnord_service_code)) if not v]
        if missing:
            raise PermanentError(f"PostNord shipping is not configured: missing {', '.join(missing)}")
        self.settings = settings
        self.files = files
        self.tracking_url_template = tracking_url_template
        # The doc says PostNord issues an integer applicationId per integration; Settings has no
        # variable for it yet, so it is optional here and the field is sent only when known.
        self.application_id = application_id
        self.parcel_weight_kg = parcel_weight_kg
        self.paper_size = paper_size
        self.throttle = throttle
        self.engine = engine if engine is not None else get_engine(settings.db_url)  # the booking journal
        self._api_key = settings.postnord_api_key or ""
        install_log_redaction()
        self.client = make_client(settings.postnord_api_base, timeout=timeout,
                                  headers={"Accept": "application/json"})

    def close(self) -> None:
        self.client.close()

    # ---- ShippingConnector ----------------------------------------------------------------
    def create_shipment(self, order: Order) -> ShipmentResult:
        journal = self._read_journal(order.order_id) or self._import_legacy_journal(order.order_id)
        if journal is not None:
            return self._from_journal(order, journal)
        body = self.booking_body(order)  # validates the order before anything is sent
        unknown = vendor_attempts.pending(self.engine, order.order_id, STEP)
        if unknown is not None:
            raise NeedsAttention(
                f"order {order.order_id}, step shipment: an earlier PostNord booking (started "
                f"{unknown.started_at:%Y-%m-%d %H:%M:%S} UTC) has an unknown outcome"
                + (f" ({unknown.detail})" if unknown.detail else "")
                + "; PostNord offers no lookup by reference, so it is not booked again",
                what_to_check=_what_to_check(order.order_id))
        vendor_attempts.begin(self.engine, order.order_id, STEP, VENDOR, message_id(order.order_id))
        try:
            response = call(VENDOR, self.client, "POST", BOOK_PATH, throttle=self.throttle,
                            throttle_name="postnord", params=self._params(paperSize=self.paper_size),
                            content=dumps(body), headers=self._headers(json_body=True))
            answer = _json(response, order, "booking")
        except AnswerLost as exc:
            vendor_attempts.note(self.engine, order.order_id, STEP, str(exc))
            raise NeedsAttention(f"order {order.order_id}, step shipment: {exc}; PostNord may have booked it, "
                                 "so it is not booked again", what_to_check=_what_to_check(order.order_id)) from None
        except StepError:
            vendor_attempts.abandon(self.engine, order.order_id, STEP)  # PostNord answered: nothing booked
            raise
        booking = answer.get("bookingResponse")
        if not isinstance(booking, dict):
            booking = {}
        try:
            item_id = self._booked_item_id(order, booking)
        except PermanentError:
            vendor_attempts.abandon(self.engine, order.order_id, STEP)  # in-band refusal: nothing booked
            raise
        tracking_url = _tracking_url(booking) or self._template_url(item_id)
        record: dict[str, Any] = {"order_id": order.order_id, "item_id": item_id, "tracking_url": tracking_url,
                                  "booking_id": booking.get("bookingId"), "label_b64": None,
                                  "booked_at": datetime.now(UTC).isoformat()}
        label_error: str | None = None
        try:
            record["label_b64"] = _label_b64(answer.get("labelPrintout"), order)
        except PermanentError as exc:
            label_error = str(exc)
        # Journal first: from here on, a retry never books this order again.
        record = self._write_journal(order.order_id, record)
        if label_error is not None:
            raise PermanentError(
                f"{label_error} (PostNord booked item {item_id}; a replay fetches the label by id, "
                "it does not book again)"
            )
        return self._result(order, record, created=True)

    def check(self) -> None:
        """Authenticated, read-only: list the agreement's service codes (books nothing).

        Also proves the booking journal (orderpipe's database) is reachable and migrated:
        without it no booking is safe. Writes nothing."""
        _issuer_code(self.settings)
        self._check_journal()
        response = call(VENDOR, self.client, "GET", CHECK_PATH, params=self._params(), headers=self._headers())
        try:
            response.json()
        except ValueError:
            raise PermanentError(f"{VENDOR} GET {CHECK_PATH}: answer is not JSON") from None

    # ---- request body -----------------------------------------------------------------------
    def booking_body(self, order: Order) -> dict[str, Any]:
        s = self.settings
        address = order.shipping_address
        if address is None:
            raise OrderDataError(
                f"order {order.order_id}: Stripe gave no shipping address; PostNord needs "
                f"{', '.join(REQUIRED_ADDRESS)} (step: shipment)"
            )
        name = address.name or order.recipient_name
        values = {"name": name, "line1": address.line1, "postal_code": address.postal_code,
                  "city": address.city, "country": address.country}
        missing = [f for f in REQUIRED_ADDRESS if not values[f]]
        if missing:
            raise OrderDataError(
                f"order {order.order_id}: shipping address is missing {', '.join(missing)} (step: shipment)"
            )
        now = datetime.now(UTC).astimezone().isoformat(timespec="seconds")
        application: dict[str, Any] = {"name": "orderpipe", "version": "1.0"}
        if self.application_id is not None:
            application = {"applicationId": self.application_id, **application}
        consignee_contact: dict[str, str] = {"contactName": str(name)}
        if order.customer_email:
            consignee_contact["emailAddress"] = order.customer_email
        if order.customer_phone:
            consignee_contact["smsNo"] = order.customer_phone
        streets = [x for x in (address.line1, address.line2) if x]
        weight = {"value": self.parcel_weight_kg, "unit": "KGM"}
        return {
            "messageDate": now,
            "messageFunction": "Instruction",
            "messageId": message_id(order.order_id),
            "application": application,
            "updateIndicator": "Original",
            "shipment": [{
                "shipmentIdentification": {"shipmentId": "0"},
                "dateAndTimes": {"loadingDate": now},
                "service": {"basicServiceCode": s.postnord_service_code},
                "numberOfPackages": {"value": 1},
                "totalGrossWeight": weight,
                "references": [{"referenceNo": order.order_id, "referenceType": "CU"}],
                "parties": {
                    "consignor": {
                        "issuerCode": _issuer_code(s),
                        "partyIdentification": {"partyId": s.postnord_customer_number, "partyIdType": "160"},
                        "party": {
                            "nameIdentification": {"name": s.orderpipe_seller_name},
                            "address": {"streets": [s.orderpipe_seller_street],
                                        "postalCode": s.orderpipe_seller_postcode,
                                        "city": s.orderpipe_seller_city,
                                        "countryCode": s.orderpipe_seller_country},
                            "contact": {"emailAddress": s.orderpipe_seller_email},
                        },
                    },
                    "consignee": {
                        "party": {
                            "nameIdentification": {"name": str(name)},
                            "address": {"streets": streets, "postalCode": address.postal_code,
                                        "city": address.city, "countryCode": str(address.country).upper()},
                            "contact": consignee_contact,
                        },
                    },
                },
                "goodsItem": [{"packageTypeCode": "PC", "items": [{
                    "itemIdentification": {"itemId": "0", "itemIdType": "SSCC"},
                    "grossWeight": weight,
                }]}],
            }],
        }

    # ---- answers --------------------------------------------------------------------------
    def _booked_item_id(self, order: Order, booking: dict[str, Any]) -> str:
        infos = booking.get("idInformation")
        if not isinstance(infos, list) or not infos:
            raise _cannot_ship(order, "the answer holds no booking (empty bookingResponse / idInformation)")
        for info in infos:
            status = str(info.get("status", "")).upper() if isinstance(info, dict) else ""
            if status != "OK":
                raise _cannot_ship(order, f"booking status {status or 'missing'}: {_fault_text(info)}")
        for info in infos:
            for ident in info.get("ids") or []:
                if isinstance(ident, dict) and ident.get("idType") == "itemId" and ident.get("value"):
                    return str(ident["value"])
        raise _cannot_ship(order, "the booking answer names no itemId (tracking number)")

    def _from_journal(self, order: Order, record: dict[str, Any]) -> ShipmentResult:
        if not record.get("label_b64"):
            response = call(VENDOR, self.client, "POST", LABEL_BY_ID_PATH, throttle=self.throttle,
                            throttle_name="postnord", params=self._params(paperSize=self.paper_size),
                            content=dumps([{"id": record["item_id"]}]), headers=self._headers(json_body=True))
            answer = _json(response, order, "label")
            printouts = answer if isinstance(answer, list) else answer.get("labelPrintout")
            record["label_b64"] = _label_b64(printouts, order)
            self._store_label(order.order_id, record)
        return self._result(order, record, created=False)

    def _result(self, order: Order, record: dict[str, Any], *, created: bool) -> ShipmentResult:
        pdf = base64.b64decode(record["label_b64"])
        label: StoredFile = self.files.put(f"labels/{order.order_id}.pdf", pdf, "application/pdf")
        return ShipmentResult(tracking_number=record["item_id"], carrier=self.name,
                              tracking_url=record["tracking_url"], label=label, created=created)

    # ---- journal ------------------------------------------------------------------------------
    @staticmethod
    def _valid_order_id(order_id: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", order_id):
            raise OrderDataError(f"order id {order_id!r} is not a PaymentIntent id (step: shipment)")
        return order_id

    def _read_journal(self, order_id: str) -> dict[str, Any] | None:
        self._valid_order_id(order_id)
        try:
            with Session(self.engine) as session:
                row = session.scalars(select(PostNordBooking).where(PostNordBooking.order_id == order_id)).first()
        except SQLAlchemyError as exc:
            # Nothing was booked yet by this call: a retry is safe.
            raise TransientError(f"PostNord booking journal: cannot read order {order_id}'s booking: "
                                 f"{_db_reason(exc)}") from None
        if row is None:
            return None
        return {"order_id": row.order_id, "item_id": row.item_id, "tracking_url": row.tracking_url,
                "booking_id": row.booking_id, "label_b64": row.label_b64, "booked_at": row.booked_at}

    def _write_journal(self, order_id: str, record: dict[str, Any]) -> dict[str, Any]:
        """Commit a fresh booking; the journalled one when another call got there first."""
        values = {"order_id": order_id, "item_id": record["item_id"], "tracking_url": record["tracking_url"],
                  "booking_id": None if record.get("booking_id") is None else str(record["booking_id"]),
                  "label_b64": record.get("label_b64"), "booked_at": utcnow(), "updated_at": utcnow()}
        for attempt in range(1, JOURNAL_WRITE_TRIES + 1):
            try:
                with session_scope(self.engine) as session:
                    inserted = insert_ignore(session, PostNordBooking, values)
                    vendor_attempts.clear(session, order_id, STEP)
                break
            except SQLAlchemyError as exc:
                if attempt < JOURNAL_WRITE_TRIES:
                    time.sleep(0.5 * 2 ** (attempt - 1))  # only the journal write is repeated, never the booking
                    continue
                # The attempt marker (committed before booking) stays: no retry or replay books again.
                raise NeedsAttention(
                    f"order {order_id}, step shipment: PostNord booked item {record['item_id']} (tracking "
                    f"{record['tracking_url']}) but the booking journal could not be written ({_db_reason(exc)}); "
                    "it is not booked again",
                    what_to_check=f"the database (disk space, errors); the booking is real: item {record['item_id']}, "
                                  f"messageId {message_id(order_id)}",
                ) from None
        if inserted:
            return record
        first = self._read_journal(order_id)
        if first is None:  # pragma: no cover - a journal row is never deleted
            raise PermanentError(f"PostNord booking journal of order {order_id} vanished; check PostNord")
        log.warning("order %s was booked twice at PostNord at the same time: keeping item %s, item %s is a "
                    "duplicate to cancel (messageId %s)", order_id, first["item_id"], record["item_id"],
                    message_id(order_id))
        if not first.get("label_b64") and record.get("label_b64") and first["item_id"] == record["item_id"]:
            first["label_b64"] = record["label_b64"]
        return first

    def _import_legacy_journal(self, order_id: str) -> dict[str, Any] | None:
        """A booking journalled by an older orderpipe in ``<data dir>/postnord/<pi>.json``: moved
        into the database, so an order booked before the upgrade is not booked again."""
        path = self.settings.data_dir / LEGACY_JOURNAL_DIR / f"{order_id}.json"
        try:
            data = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            raise PermanentError(f"PostNord booking journal {path} for order {order_id} is unreadable; "
                                 "check the booking in PostNord before removing it") from None
        if not isinstance(data, dict) or not data.get("item_id"):
            return None
        record = {"order_id": order_id, "item_id": str(data["item_id"]),
                  "tracking_url": str(data.get("tracking_url") or self._template_url(str(data["item_id"]))),
                  "booking_id": data.get("booking_id"), "label_b64": data.get("label_b64")}
        return self._write_journal(order_id, record)

    def _store_label(self, order_id: str, record: dict[str, Any]) -> None:
        """Complete a journalled booking with the label fetched by item id."""
        try:
            with session_scope(self.engine) as session:
                session.execute(update(PostNordBooking).where(PostNordBooking.order_id == order_id)
                                .values(label_b64=record["label_b64"], updated_at=utcnow()))
        except SQLAlchemyError as exc:
            # The label is fetched by id again next time; nothing is booked twice.
            raise TransientError(f"PostNord booking journal: cannot store order {order_id}'s label: "
                                 f"{_db_reason(exc)}") from None

    def _check_journal(self) -> None:
        try:
            with Session(self.engine) as session:
                session.scalars(select(PostNordBooking.order_id).limit(1)).first()
        except SQLAlchemyError as exc:
            raise PermanentError(f"PostNord booking journal: orderpipe's database cannot be read "
                                 f"({_db_reason(exc)}); without it no booking is safe") from None

    # ---- helpers ------------------------------------------------------------------------------
    def _params(self, **extra: str) -> dict[str, str]:
        return {"apikey": self._api_key, **extra}

    @staticmethod
    def _headers(*, json_body: bool = False) -> dict[str, str]:
        headers = {"X-External-Request-ID": str(uuid.uuid4())}
        if json_body:
            headers["Content-Type"] = "application/json"
        return headers

    def _template_url(self, tracking_number: str) -> str:
        return self.tracking_url_template.format(tracking_number=tracking_number)


def _db_reason(exc: SQLAlchemyError) -> str:
    """The driver's first line (no SQL, no parameters: labels are long, URLs hold nothing secret)."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _what_to_check(order_id: str) -> str:
    return (f"PostNord's shipment list for messageId {message_id(order_id)} / CU reference {order_id}: if it was "
            f"booked, cancel or use that shipment; if not, run `orderpipe resolve {order_id} shipment` and "
            f"`orderpipe replay {order_id}`")


def message_id(order_id: str) -> str:
    """The stable reference of an order's booking (doc sample: ``"pi_1-1"``)."""
    return f"{order_id}-1"


def _issuer_code(settings: Settings) -> str:
    code = ISSUER_CODES.get(settings.orderpipe_seller_country)
    if code is None:
        country = settings.orderpipe_seller_country
        raise PermanentError(f"PostNord books only from DK, SE, NO or FI; ORDERPIPE_SELLER_COUNTRY is {country}")
    return code


def _cannot_ship(order: Order, reason: str) -> PermanentError:
    return PermanentError(f"PostNord cannot ship to {order.country or '?'} for order {order.order_id}: {reason}")


def _json(response: httpx.Response, order: Order, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        # A 2xx that is not JSON: we cannot tell whether PostNord booked, so no blind retry.
        raise AnswerLost(f"{VENDOR}: the {what} answer (HTTP {response.status_code}) is not JSON") from None


def _fault_text(info: Any) -> str:
    if not isinstance(info, dict):
        return "no details"
    err = info.get("errorResponse") or {}
    texts: list[str] = []
    if isinstance(err, dict):
        if err.get("message"):
            texts.append(str(err["message"]))
        faults = (err.get("compositeFault") or {}).get("faults") or []
        texts += [str(f.get("explanationText") or f.get("faultCode")) for f in faults if isinstance(f, dict)]
    return "; ".join(texts)[:300] or "no details"


def _tracking_url(booking: dict[str, Any]) -> str | None:
    for info in booking.get("idInformation") or []:
        for url in (info.get("urls") or []) if isinstance(info, dict) else []:
            if isinstance(url, dict) and url.get("type") == "TRACKING" and url.get("url"):
                return str(url["url"])
    return None


def _label_b64(printouts: Any, order: Order) -> str:
    """The base64 label of the answer; any FAIL, empty or non-PDF label is a hard error."""
    if not isinstance(printouts, list) or not printouts:
        raise _cannot_ship(order, "the answer holds no label (labelPrintout missing or empty)")
    for p in printouts:
        for item in (p.get("itemIds") or []) if isinstance(p, dict) else []:
            if isinstance(item, dict) and str(item.get("status", "OK")).upper() != "OK":
                raise _cannot_ship(order, f"label status {item.get('status')}: {_fault_text(item)}")
    for p in printouts:
        printout = p.get("printout") if isinstance(p, dict) else None
        data = printout.get("data") if isinstance(printout, dict) else None
        if not data:
            continue
        try:
            pdf = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise _cannot_ship(order, "the label is not valid base64") from None
        if not pdf.startswith(b"%PDF"):
            raise _cannot_ship(order, "the label is not a PDF")
        return str(data)
    # uriResource instead of data [3P] is not followed: we asked for the PDF inline.
    raise _cannot_ship(order, "the answer holds no label data (empty printout)")
