"""Netvisor stand-in: ``salesinvoice.nv?method=add`` and ``salesinvoicelist.nv`` as
shared/docs/vendor-apis.md section 5 shows them.

Every request is authenticated the way the doc says: all ``X-Netvisor-*`` headers present,
the HMAC-SHA256 MAC recomputed here (independently of the client) over the exact URL
received, the transaction id never seen before (else ``REQUEST_NOT_UNIQUE``). Failures come
back as HTTP 200 with ``<Status>FAILED</Status>`` and ``CODE :: message``, like Netvisor's
default. The body is decoded with the charset of its Content-Type (ISO-8859-15 or UTF-8).

Stateful: ``invoices`` keeps every added invoice (a replayed add makes a second one, as the
real service does); fault injection: HTTP faults through ``inject(Fault(...))`` and in-band
ones through ``fail_next_add = ("INVALID_DATA", "message")``.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from xml.sax.saxutils import escape

from lxml import etree
from werkzeug.wrappers import Request, Response

from tests.standins.wsgi_thread import Recorded, StandIn

CREDENTIALS = {
    "sender": "orderpipe-test", "customer_id": "CUST-ID-1", "customer_key": "customer-key-secret",
    "partner_id": "PARTNER-1", "partner_key": "partner-key-secret", "organisation_id": "1967543-8",
}
HEADERS = ("Sender", "CustomerId", "PartnerId", "Timestamp", "TimestampUnix", "TransactionId", "MAC",
           "MACHashCalculationAlgorithm")
MANDATORY_INVOICE = ("salesinvoicedate", "salesinvoiceamount", "salesinvoicestatus", "invoicingcustomeridentifier")
MANDATORY_LINE = ("productidentifier", "productname", "productunitprice", "productvatpercentage",
                  "salesinvoiceproductlinequantity")


@dataclass
class StoredInvoice:
    key: str
    number: str
    our_reference: str
    amount: str
    root: etree._Element = field(repr=False)
    raw: bytes = field(repr=False, default=b"")


def expected_mac(url: str, h: dict[str, str], customer_key: str, partner_key: str) -> str:
    msg = "&".join([url, h["x-netvisor-authentication-sender"], h["x-netvisor-authentication-customerid"],
                    h["x-netvisor-authentication-timestamp"], h.get("x-netvisor-interface-language", ""),
                    h.get("x-netvisor-organisation-id", ""), h["x-netvisor-authentication-transactionid"],
                    h["x-netvisor-authentication-timestampunix"], customer_key, partner_key])
    key = f"{customer_key}&{partner_key}"
    return hmac.new(key.encode("ISO-8859-1"), msg.encode("ISO-8859-1"), hashlib.sha256).hexdigest()


def xml_response(body: str) -> Response:
    return Response(f"<Root>{body}</Root>", status=200, content_type="text/xml; charset=utf-8")


def ok(extra: str = "") -> Response:
    stamp = datetime.now().strftime("%-d.%-m.%Y %H:%M:%S")
    return xml_response(f"<ResponseStatus><Status>OK</Status><TimeStamp>{stamp}</TimeStamp></ResponseStatus>{extra}")


def failed(code: str, message: str) -> Response:
    stamp = datetime.now().strftime("%-d.%-m.%Y %H:%M:%S")
    return xml_response(f"<ResponseStatus><Status>FAILED</Status><Status>{escape(code)} :: {escape(message)}</Status>"
                        f"<TimeStamp>{stamp}</TimeStamp></ResponseStatus>")


class NetvisorStandIn(StandIn):
    def __init__(self, *, customers: frozenset[str] = frozenset({"ORDERPIPE"})) -> None:
        super().__init__()
        self.creds = dict(CREDENTIALS)
        self.customers = customers
        self.invoices: list[StoredInvoice] = []
        self.matches: list[tuple[str, str]] = []  # (credit note key, invoice key) from matchcreditnote.nv
        self.fail_next_add: tuple[str, str] | None = None
        self.auth_failures: list[str] = []
        self._seen_transactions: set[str] = set()
        self._next_key = 1800
        self._state = threading.Lock()

    # ---- dispatch ---------------------------------------------------------------------------
    def handle(self, request: Request, recorded: Recorded) -> Response:
        problem = self._authenticate(request, recorded)
        if problem is not None:
            self.auth_failures.append(problem[1])
            return failed(*problem)
        if request.method == "POST" and recorded.path == "/salesinvoice.nv":
            if recorded.query.get("method") != "add":
                return failed("INVALID_DATA", "unsupported method")
            return self._add(request, recorded)
        if request.method == "POST" and recorded.path == "/matchcreditnote.nv":
            return self._match(request, recorded)
        if request.method == "GET" and recorded.path == "/salesinvoicelist.nv":
            return self._list(recorded)
        return Response("Not found", status=404)

    def _authenticate(self, request: Request, recorded: Recorded) -> tuple[str, str] | None:
        h = recorded.headers
        missing = [n for n in HEADERS if not h.get(f"x-netvisor-authentication-{n.lower()}")]
        if not h.get("x-netvisor-organisation-id"):
            missing.append("X-Netvisor-Organisation-ID")
        if missing:
            return "AUTHENTICATION_FAILED", f"missing headers: {', '.join(missing)}"
        if h["x-netvisor-authentication-machashcalculationalgorithm"] not in ("HMACSHA256", "SHA256"):
            return "AUTHENTICATION_FAILED", "unsupported MAC algorithm"
        c = self.creds
        if (h["x-netvisor-authentication-sender"], h["x-netvisor-authentication-customerid"],
                h["x-netvisor-authentication-partnerid"], h["x-netvisor-organisation-id"]) != (
                c["sender"], c["customer_id"], c["partner_id"], c["organisation_id"]):
            return "AUTHENTICATION_FAILED", "Integraatiokumppania ei löydy, katso dokumentaatio"
        if abs(time.time() - int(h["x-netvisor-authentication-timestampunix"])) > 600:
            return "AUTHENTICATION_FAILED", "timestamp too old"
        raw_uri = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.full_path
        url = f"http://{request.host}{raw_uri}"
        mac = expected_mac(url, h, c["customer_key"], c["partner_key"])
        if not hmac.compare_digest(mac, h["x-netvisor-authentication-mac"]):
            return "AUTHENTICATION_FAILED", "MAC does not match"
        with self._state:
            tid = h["x-netvisor-authentication-transactionid"]
            if tid in self._seen_transactions:
                return "REQUEST_NOT_UNIQUE", "transaction id already used"
            self._seen_transactions.add(tid)
        return None

    # ---- resources ----------------------------------------------------------------------------
    def _add(self, request: Request, recorded: Recorded) -> Response:
        if self.fail_next_add is not None:
            code, message = self.fail_next_add
            self.fail_next_add = None
            return failed(code, message)
        charset = request.mimetype_params.get("charset", "utf-8")
        try:
            root = etree.fromstring(recorded.body.decode(charset))
        except (etree.XMLSyntaxError, UnicodeDecodeError, LookupError, ValueError) as exc:
            return failed("INVALID_DATA", f"XML could not be read: {exc}")
        invoice = root.find("salesinvoice")
        if root.tag != "root" or invoice is None:
            return failed("INVALID_DATA", "root/salesinvoice missing")
        empty = [t for t in MANDATORY_INVOICE if not (invoice.findtext(t) or "").strip()]
        if not (invoice.findtext("salesinvoiceduedate") or "").strip():
            empty.append("salesinvoiceduedate")
        lines = invoice.findall("invoicelines/invoiceline/salesinvoiceproductline")
        if not lines:
            empty.append("invoicelines")
        for line in lines:
            empty += [t for t in MANDATORY_LINE if not (line.findtext(t) or "").strip()]
            vat = line.find("productvatpercentage")
            if vat is not None and not vat.get("vatcode"):
                empty.append("productvatpercentage@vatcode")
        if empty:
            return failed("INVALID_DATA", f"mandatory elements missing or empty: {', '.join(sorted(set(empty)))}")
        if invoice.find("salesinvoicedate").get("format") != "ansi":
            return failed("INVALID_DATA", "salesinvoicedate needs format=\"ansi\"")
        customer = invoice.find("invoicingcustomeridentifier")
        if customer.get("type") == "customer" and customer.text not in self.customers:
            return failed("INVALID_DATA", f"customer code {customer.text} not found")
        with self._state:
            key = str(self._next_key)
            self._next_key += 1
            number = invoice.findtext("salesinvoicenumber") or key
            self.invoices.append(StoredInvoice(key=key, number=number,
                                               our_reference=invoice.findtext("salesinvoiceourreference") or "",
                                               amount=invoice.findtext("salesinvoiceamount") or "", root=root,
                                               raw=recorded.body))
        return ok(f"<Replies><InsertedDataIdentifier>{key}</InsertedDataIdentifier></Replies>")

    def _match(self, request: Request, recorded: Recorded) -> Response:
        charset = request.mimetype_params.get("charset", "utf-8")
        try:
            root = etree.fromstring(recorded.body.decode(charset))
        except (etree.XMLSyntaxError, UnicodeDecodeError, LookupError, ValueError) as exc:
            return failed("INVALID_DATA", f"XML could not be read: {exc}")
        credit, invoice = root.findtext("matchcreditnote/creditnotenetvisorkey"), root.findtext(
            "matchcreditnote/invoicenetvisorkey")
        keys = {i.key: i for i in self.invoices}
        if credit not in keys or invoice not in keys:
            return failed("INVALID_DATA", "credit note or invoice not found")
        if keys[credit].root.findtext("salesinvoice/salesinvoiceamount", "").startswith("-") is False:
            return failed("INVALID_DATA", "the credit note's sum is not negative")
        if (credit, invoice) not in self.matches:
            self.matches.append((credit, invoice))
        return ok()

    def _list(self, recorded: Recorded) -> Response:
        number = recorded.query.get("InvoiceNumber")
        rows = [i for i in self.invoices if number is None or i.number == number]
        body = "".join(
            f"<SalesInvoice><NetvisorKey>{i.key}</NetvisorKey><InvoiceDate format=\"ansi\">"
            f"{escape(i.root.findtext('salesinvoice/salesinvoicedate') or '')}</InvoiceDate>"
            f"<InvoiceNumber>{escape(i.number)}</InvoiceNumber><InvoiceStatus>open</InvoiceStatus>"
            f"<InvoiceSum>{escape(i.amount)}</InvoiceSum>"
            f"<Uri>https://isvapi.netvisor.fi/getsalesinvoice.nv?netvisorkey={i.key}</Uri></SalesInvoice>"
            for i in rows
        )
        return ok(f"<SalesInvoiceList counter=\"{len(rows)}\">{body}</SalesInvoiceList>")

    # ---- assertions -------------------------------------------------------------------------
    def invoices_numbered(self, number: str) -> list[StoredInvoice]:
        return [i for i in self.invoices if i.number == number]
