"""PostNord stand-in: the EDI v3 booking + label API as shared/docs/vendor-apis.md section 4 shows it.

Stateful (bookings and labels by item id), with a request log (``requests``/``calls``) and
fault injection: HTTP faults through ``inject(Fault(...))`` (429, 5xx, slow, HTML 502), and
in-band failures through ``next_booking``:

- ``"status_fail"``: 200, ``idInformation[0].status == "ERROR"`` with a compositeFault, nothing booked
- ``"empty"``: 200 with an empty booking (no idInformation, no labelPrintout), nothing booked
- ``"label_fail"``: 200, booked, but ``labelPrintout[0].itemIds[0].status == "FAIL"``
- ``"no_label"``: 200, booked, ``labelPrintout`` present but its printout ``data`` empty

Like (what we must assume of) the real service it does NOT deduplicate on ``messageId``.
"""

from __future__ import annotations

import base64
import io
import threading
from dataclasses import dataclass, field
from typing import Any

from reportlab.pdfgen import canvas
from werkzeug.wrappers import Request, Response

from tests.standins.wsgi_thread import Recorded, StandIn, json_response

API_KEY = "pn-test-key-123"
BOOK_PATH = "/rest/shipment/v3/edi/labels/pdf"
LABEL_BY_ID_PATH = "/rest/shipment/v3/labels/ids/pdf"
SERVICE_CODES_PATH = "/rest/shipment/v3/edi/servicecodes"


def label_pdf(item_id: str) -> bytes:
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(420, 595))
    c.drawString(40, 540, f"PostNord stand-in label {item_id}")
    c.showPage()
    c.save()
    return buf.getvalue()


@dataclass
class Booking:
    message_id: str
    item_id: str
    shipment_id: str
    booking_id: str
    body: dict[str, Any]
    label: bytes = field(repr=False, default=b"")


class PostNordStandIn(StandIn):
    def __init__(self, api_key: str = API_KEY, *, refuse_countries: frozenset[str] = frozenset({"KP"})) -> None:
        super().__init__()
        self.api_key = api_key
        self.refuse_countries = refuse_countries
        self.bookings: list[Booking] = []
        self.next_booking: str | None = None
        self._seq = 0
        self._state = threading.Lock()

    # ---- dispatch ---------------------------------------------------------------------------
    def handle(self, request: Request, recorded: Recorded) -> Response:
        if recorded.query.get("apikey") != self.api_key:
            return json_response({"error": {"status_code": 403, "error_type": "Forbidden",
                                            "message": "Invalid API Key"}}, 403)
        if request.method == "POST" and recorded.path == BOOK_PATH:
            return self._book(recorded)
        if request.method == "POST" and recorded.path == LABEL_BY_ID_PATH:
            return self._labels_by_id(recorded)
        if request.method == "GET" and recorded.path == SERVICE_CODES_PATH:
            return json_response({"data": [{"serviceCode": "19", "serviceName": "MyPack Collect"},
                                           {"serviceCode": "17", "serviceName": "MyPack Home"}]})
        return json_response({"message": "Not found"}, 404)

    # ---- booking ------------------------------------------------------------------------------
    def _book(self, recorded: Recorded) -> Response:
        try:
            body = recorded.json()
            shipment = body["shipment"][0]
            consignee = shipment["parties"]["consignee"]["party"]
            address = consignee["address"]
            faults = [f"{name} is required" for name, value in (
                ("messageId", body.get("messageId")), ("service.basicServiceCode",
                                                       shipment["service"].get("basicServiceCode")),
                ("consignee.address.postalCode", address.get("postalCode")),
                ("consignee.address.countryCode", address.get("countryCode")),
                ("consignor.partyIdentification.partyId",
                 shipment["parties"]["consignor"]["partyIdentification"].get("partyId")),
            ) if not value]
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            faults = [f"unreadable EdiInstruction: {exc!r}"]
        if faults:
            return json_response({"message": "Invalid indata object EdiInstruction", "compositeFault": {
                "faults": [{"faultCode": "InvalidValue", "explanationText": f, "paramValues": []} for f in faults]}},
                400)
        mode, self.next_booking = self.next_booking, None
        country = address["countryCode"]
        if mode == "empty":
            return json_response({"bookingResponse": {"idInformation": []}, "labelPrintout": []})
        if mode == "status_fail" or country in self.refuse_countries:
            return json_response({"bookingResponse": {"idInformation": [{
                "status": "ERROR", "ids": [], "urls": [],
                "errorResponse": {"compositeFault": {"faults": [{
                    "faultCode": "ServiceNotAvailable",
                    "explanationText": f"Service {shipment['service']['basicServiceCode']} "
                                       f"is not available to {country}"}]}}}]}})
        booking = self._new_booking(body)
        answer: dict[str, Any] = {"bookingResponse": {"bookingId": booking.booking_id, "idInformation": [{
            "status": "OK",
            "ids": [{"idType": "itemId", "value": booking.item_id, "printId": "31eed2da"},
                    {"idType": "shipmentId", "value": booking.shipment_id, "printId": "8ab1"}],
            "urls": [{"type": "TRACKING", "url": f"https://tracking.postnord.com/fi/?id={booking.item_id}"}],
            "references": {"shipment": shipment.get("references", []), "item": []}}]}}
        if mode == "label_fail":
            answer["labelPrintout"] = [{"itemIds": [{"itemIds": booking.item_id, "status": "FAIL"}],
                                        "errorResponse": {"message": "Label could not be generated"}}]
        elif mode == "no_label":
            answer["labelPrintout"] = [{"itemIds": [{"itemIds": booking.item_id, "status": "OK"}],
                                        "printout": {"type": "LABEL", "labelFormat": "PDF", "encoding": "base64",
                                                     "data": ""},
                                        "printoutComposition": {"label": 0}}]
        else:
            answer["labelPrintout"] = [self._printout(booking)]
        return json_response(answer)

    def _new_booking(self, body: dict[str, Any]) -> Booking:
        with self._state:
            self._seq += 1
            item_id = f"0037350045454{self._seq:07d}"
            booking = Booking(message_id=str(body.get("messageId")), item_id=item_id,
                              shipment_id=f"7012345{self._seq:04d}", booking_id=f"BOOK{self._seq:026d}", body=body,
                              label=label_pdf(item_id))
            self.bookings.append(booking)
            return booking

    @staticmethod
    def _printout(booking: Booking) -> dict[str, Any]:
        return {"itemIds": [{"itemIds": booking.item_id, "status": "OK"}],
                "printout": {"type": "LABEL", "labelFormat": "PDF", "encoding": "base64",
                             "data": base64.b64encode(booking.label).decode()},
                "printoutComposition": {"label": 1}}

    def _labels_by_id(self, recorded: Recorded) -> Response:
        out: list[dict[str, Any]] = []
        for entry in recorded.json():
            found = [b for b in self.bookings if b.item_id == entry.get("id")]
            if found:
                out.append(self._printout(found[0]))
            else:
                out.append({"itemIds": [{"itemIds": entry.get("id"), "status": "FAIL"}],
                            "errorResponse": {"message": "id not found"}})
        return json_response(out)

    # ---- assertions -------------------------------------------------------------------------
    def bookings_for(self, message_id: str) -> list[Booking]:
        return [b for b in self.bookings if b.message_id == message_id]
